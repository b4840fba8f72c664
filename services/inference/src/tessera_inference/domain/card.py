"""The model card: `model.json` next to every `model.onnx`.

Training writes it and the registry reads it, so this module is the one place
that says what a card holds. It is strict (`extra="forbid"`): a typo in a
hand-edited card should refuse the model, not be silently ignored.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

CARD_FILE = "model.json"
ONNX_FILE = "model.onnx"

# Versions are "<major>.<minor>" so that the v1 API's "v1.0" and the Open
# Inference Protocol's "1.0" (or "1") name the same directory.
VERSION_PATTERN = re.compile(r"^\d+\.\d+$")
NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._-]*$")


class _Card(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TensorSpec(_Card):
    name: str
    datatype: Literal["FP32"]
    """Open Inference Protocol datatype of the ONNX tensor."""
    shape: list[int]
    """-1 marks the variable batch dimension."""


class DatasetInfo(_Card):
    name: str
    source: str
    n_samples: int
    features: list[str]
    target: str


class SplitInfo(_Card):
    method: str
    test_size: float
    random_state: int
    n_train: int
    n_test: int


class HeldOutMetrics(_Card):
    accuracy: float
    roc_auc: float
    precision: float
    recall: float
    f1: float
    log_loss: float


class TrainingInfo(_Card):
    estimator: str
    params: dict[str, str | int | float | bool | None | list[int]]
    random_state: int
    sklearn_version: str
    skl2onnx_version: str
    opset: int


class ModelCard(_Card):
    name: str
    version: str
    description: str
    inputs: list[TensorSpec] = Field(min_length=1)
    outputs: list[TensorSpec] = Field(min_length=1)
    labels: list[str] = Field(min_length=2)
    """Class names, in the order of the probability columns."""
    positive_label: str
    """The class `confidence_threshold` applies to in the v1 API."""
    dataset: DatasetInfo
    split: SplitInfo
    metrics: HeldOutMetrics
    """Measured on the held-out split, with the exported ONNX graph."""
    training: TrainingInfo
    onnx_sha256: str

    @field_validator("version")
    @classmethod
    def _version_format(cls, value: str) -> str:
        if not VERSION_PATTERN.match(value):
            raise ValueError(f"version must look like '1.0', got {value!r}")
        return value

    @field_validator("name")
    @classmethod
    def _name_format(cls, value: str) -> str:
        if not NAME_PATTERN.match(value):
            raise ValueError(
                f"name must be lower-case letters, digits, '.', '_' or '-', got {value!r}"
            )
        return value

    @model_validator(mode="after")
    def _positive_label_known(self) -> ModelCard:
        if self.positive_label not in self.labels:
            raise ValueError(f"positive_label {self.positive_label!r} is not one of {self.labels}")
        return self

    @property
    def positive_index(self) -> int:
        return self.labels.index(self.positive_label)
