"""v2 prediction: Open Inference Protocol (KServe v2) REST bodies.

Follows https://kserve.github.io/website/latest/modelserving/data_plane/v2_protocol/
(the REST/JSON half). Errors are `InferenceErrorResponse` on the OIP routes,
as the protocol requires, rather than `Problem`.
"""

from __future__ import annotations

import math
from typing import Any, Final, Literal

from pydantic import Field, model_validator

from tessera_contracts._base import Contract

Datatype = Literal[
    "BOOL",
    "UINT8",
    "UINT16",
    "UINT32",
    "UINT64",
    "INT8",
    "INT16",
    "INT32",
    "INT64",
    "FP16",
    "FP32",
    "FP64",
    "BYTES",
]
"""Tensor element types of the protocol."""

Parameters = dict[str, str | int | float | bool]
"""Free-form protocol parameters: values are strings, numbers or booleans."""


def _element_count(data: list[Any]) -> int:
    # The protocol allows data flattened (row-major) or nested like the shape.
    return sum(_element_count(item) if isinstance(item, list) else 1 for item in data)


def _data_matches_shape(tensor: RequestInput | ResponseOutput) -> Any:
    expected = math.prod(tensor.shape)
    actual = _element_count(tensor.data)
    if actual != expected:
        raise ValueError(
            f"tensor {tensor.name!r}: shape {tensor.shape} needs {expected} elements, got {actual}"
        )
    return tensor


_DATA_MATCHES_SHAPE: Final = model_validator(mode="after")(_data_matches_shape)
"""The model validator of both tensor models (`RequestInput`, `ResponseOutput`)."""


class ServerLiveResponse(Contract):
    """Body of `GET /v2/health/live`."""

    live: bool
    """True when the server process is alive."""


class ServerReadyResponse(Contract):
    """Body of `GET /v2/health/ready`."""

    ready: bool
    """True when every model is ready to infer."""


class ModelReadyResponse(Contract):
    """Body of `GET /v2/models/{name}[/versions/{version}]/ready`."""

    name: str
    """Model name."""
    ready: bool
    """True when the model can infer."""


class ServerMetadataResponse(Contract):
    """Body of `GET /v2`."""

    name: str
    """Server name."""
    version: str
    """Server version."""
    extensions: list[str] = Field(default_factory=list)
    """Protocol extensions the server supports."""


class MetadataTensor(Contract):
    """Description of one model input or output."""

    name: str
    """Tensor name."""
    datatype: Datatype
    """Element type."""
    shape: list[int]
    """Dimensions; -1 marks a variable dimension (usually the batch)."""


class ModelMetadataResponse(Contract):
    """Body of `GET /v2/models/{name}[/versions/{version}]`."""

    name: str
    """Model name."""
    versions: list[str] | None = None
    """Versions the server can serve."""
    platform: str
    """Framework and format, e.g. `onnxruntime_onnx`."""
    inputs: list[MetadataTensor]
    """Inputs the model expects."""
    outputs: list[MetadataTensor]
    """Outputs the model produces."""


class RequestInput(Contract):
    """One input tensor of an inference request."""

    name: str
    """Input name, as in the model metadata."""
    shape: list[int] = Field(min_length=1)
    """Dimensions, e.g. `[batch, 10]`; their product is the number of elements."""
    datatype: Datatype
    """Element type."""
    parameters: Parameters | None = None
    """Input parameters, e.g. `binary_data_size` (unsupported here)."""
    data: list[Any]
    """Elements in row-major order, flat or nested like `shape`."""

    _data_matches_shape = _DATA_MATCHES_SHAPE


class RequestOutput(Contract):
    """An output the client asks for."""

    name: str
    """Output name, as in the model metadata."""
    parameters: Parameters | None = None
    """Output parameters."""


class InferenceRequest(Contract):
    """Body of `POST /v2/models/{name}[/versions/{version}]/infer`."""

    id: str | None = None
    """Request identifier, echoed in the response."""
    parameters: Parameters | None = None
    """Request parameters."""
    inputs: list[RequestInput] = Field(min_length=1)
    """Input tensors."""
    outputs: list[RequestOutput] | None = None
    """Outputs to return; all of them when absent."""


class ResponseOutput(Contract):
    """One output tensor of an inference response."""

    name: str
    """Output name."""
    shape: list[int]
    """Dimensions."""
    datatype: Datatype
    """Element type."""
    parameters: Parameters | None = None
    """Output parameters."""
    data: list[Any]
    """Elements in row-major order, flat or nested like `shape`."""

    _data_matches_shape = _DATA_MATCHES_SHAPE


class InferenceResponse(Contract):
    """Body of a successful inference."""

    model_name: str
    """Model that answered."""
    model_version: str | None = None
    """Version of the model that answered."""
    id: str | None = None
    """The request's identifier."""
    parameters: Parameters | None = None
    """Response parameters."""
    outputs: list[ResponseOutput]
    """Output tensors."""


class InferenceErrorResponse(Contract):
    """Body of every failed request on the OIP routes (4xx/5xx)."""

    error: str
    """What went wrong."""
