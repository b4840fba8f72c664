"""One ONNX model: its session, checked against its card before it may serve.

`OnnxModel.run` is synchronous and is only ever called from the inference
thread pool (see `service.py`); ONNX Runtime releases the GIL while it
computes, so the event loop keeps serving requests meanwhile.
"""

from __future__ import annotations

import hashlib
import math
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import onnxruntime as ort
from pydantic import ValidationError

from tessera_inference.domain.card import CARD_FILE, ONNX_FILE, ModelCard, TensorSpec

Rows = npt.NDArray[np.float32]

# ONNX Runtime's element type strings for the Open Inference Protocol datatypes we serve.
_ORT_TYPES = {"FP32": "tensor(float)"}


class ModelRefused(Exception):
    """A model directory that must not serve; the message says why."""


def session_options(intra_op_threads: int, inter_op_threads: int) -> Any:
    options = ort.SessionOptions()
    # The models are tiny (a 10-feature MLP, one call is cheap): splitting one call
    # over threads costs more than it saves, and on a 2-core pod a spinning
    # intra-op pool would steal the core the event loop needs. Parallelism comes
    # from batching rows and from the inference thread pool instead.
    options.intra_op_num_threads = intra_op_threads
    options.inter_op_num_threads = inter_op_threads
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    options.log_severity_level = 3  # errors only; warnings about unused initialisers are noise
    return options


def inference_executor(threads: int) -> ThreadPoolExecutor:
    """The threads every ONNX Runtime call runs on, so the event loop never blocks on one."""
    return ThreadPoolExecutor(max_workers=threads, thread_name_prefix="onnx")


class OnnxModel:
    """A loaded model whose ONNX graph agrees with its card."""

    def __init__(self, card: ModelCard, session: Any) -> None:
        self.card = card
        self._session = session
        self._input = card.inputs[0].name
        self._outputs = [card.outputs[0].name]
        self.n_features = card.inputs[0].shape[1]
        self.labels = card.labels

    @property
    def key(self) -> str:
        return f"{self.card.name}/{self.card.version}"

    def run(self, rows: Rows) -> Rows:
        """Class probabilities, shape [N, len(labels)], for float32 rows of shape [N, n_features]."""
        (probabilities,) = self._session.run(self._outputs, {self._input: rows})
        result: Rows = probabilities
        return result

    @classmethod
    def load(
        cls, directory: Path, *, intra_op_threads: int = 1, inter_op_threads: int = 1
    ) -> OnnxModel:
        """Load `directory` (`<name>/<version>/`) or raise `ModelRefused` saying what is wrong."""
        card = _read_card(directory)
        onnx_path = directory / ONNX_FILE
        try:
            onnx_bytes = onnx_path.read_bytes()
        except OSError as error:
            raise ModelRefused(f"cannot read {ONNX_FILE}: {error}") from error
        digest = hashlib.sha256(onnx_bytes).hexdigest()
        if digest != card.onnx_sha256:
            raise ModelRefused(
                f"{ONNX_FILE} sha256 {digest[:12]}... does not match the card's {card.onnx_sha256[:12]}..."
            )
        try:
            session = ort.InferenceSession(
                onnx_bytes,
                sess_options=session_options(intra_op_threads, inter_op_threads),
                providers=["CPUExecutionProvider"],
            )
        except Exception as error:  # ORT raises its own untyped exceptions for a bad graph
            raise ModelRefused(f"ONNX Runtime cannot load {ONNX_FILE}: {error}") from error
        _check_tensors("input", card.inputs, session.get_inputs())
        _check_tensors("output", card.outputs, session.get_outputs())
        model = cls(card, session)
        _smoke_test(model)
        return model


def _read_card(directory: Path) -> ModelCard:
    try:
        card = ModelCard.model_validate_json((directory / CARD_FILE).read_bytes())
    except OSError as error:
        raise ModelRefused(f"cannot read {CARD_FILE}: {error}") from error
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'card'}: {e['msg']}" for e in error.errors()
        )
        raise ModelRefused(f"invalid {CARD_FILE}: {problems}") from error
    expected = (directory.parent.name, directory.name)
    if (card.name, card.version) != expected:
        raise ModelRefused(
            f"card says {card.name}/{card.version} but the directory is {expected[0]}/{expected[1]}"
        )
    if len(card.inputs) != 1 or len(card.inputs[0].shape) != 2:
        raise ModelRefused("only models with one input of shape [batch, features] are served")
    if len(card.outputs) != 1 or card.outputs[0].shape[1:] != [len(card.labels)]:
        raise ModelRefused(
            f"the card must declare one output of shape [-1, {len(card.labels)}] (one column per label)"
        )
    return card


def _check_tensors(kind: str, declared: list[TensorSpec], actual: list[Any]) -> None:
    if len(declared) != len(actual):
        raise ModelRefused(
            f"the card declares {len(declared)} {kind}(s) but the ONNX graph has {len(actual)}: "
            f"{[a.name for a in actual]}"
        )
    for spec, node in zip(declared, actual, strict=True):
        if spec.name != node.name:
            raise ModelRefused(
                f"{kind} {spec.name!r} of the card is named {node.name!r} in the graph"
            )
        if _ORT_TYPES[spec.datatype] != node.type:
            raise ModelRefused(
                f"{kind} {spec.name!r} is {node.type} in the graph, card says {spec.datatype}"
            )
        graph_shape = list(node.shape)
        if len(graph_shape) != len(spec.shape) or any(
            want != -1 and got != want for want, got in zip(spec.shape, graph_shape, strict=True)
        ):
            raise ModelRefused(
                f"{kind} {spec.name!r} has shape {graph_shape} in the graph, card says {spec.shape}"
            )


def _smoke_test(model: OnnxModel) -> None:
    # Declared shapes can be symbolic; one real call proves the probabilities
    # tensor has one column per label and holds probabilities.
    try:
        out = np.asarray(model.run(np.ones((2, model.n_features), dtype=np.float32)))
    except Exception as error:  # ORT raises its own untyped exceptions
        raise ModelRefused(f"a test inference failed: {error}") from error
    if out.shape != (2, len(model.labels)):
        raise ModelRefused(
            f"a test inference returned shape {list(out.shape)}, expected [2, {len(model.labels)}]"
        )
    if not (np.isfinite(out).all() and all(math.isclose(s, 1.0, abs_tol=1e-3) for s in out.sum(1))):
        raise ModelRefused("a test inference returned rows that are not probabilities")
