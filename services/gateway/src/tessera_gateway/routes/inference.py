"""Inference operations: `POST /v1/predict` and the Open Inference Protocol under `/v2`.

Errors of the `/v2` operations that come from the inference service keep the
protocol's `{"error": "..."}` shape (OIP clients parse it); the gateway's own
errors (401, 403, 413, 429, 502-504) are problem+json on every route.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Body
from tessera_contracts import v1, v2

from tessera_gateway.auth import INFERENCE_PREDICT
from tessera_gateway.operations import Operations

ops = Operations("inference", tags=["inference"])

# The inference service answers invalid input on these with 400 `{"error"}`, never
# 422: the operations below say `validation_errors=False`.
_OIP_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": v2.InferenceErrorResponse, "description": "Bad request or tensor"},
    404: {"model": v2.InferenceErrorResponse, "description": "Unknown model or version"},
}

_PREDICT_EXAMPLE = {
    "features": [0.42, 0.13, 0.77, 0.05, 0.91, 0.33, 0.28, 0.64, 0.12, 0.58],
    "model_version": "v1.0",
    "confidence_threshold": 0.5,
}
_INFER_EXAMPLE = {
    "id": "req-1",
    "inputs": [
        {
            "name": "input-0",
            "shape": [2, 10],
            "datatype": "FP32",
            "data": [0.42, 0.13, 0.77, 0.05, 0.91, 0.33, 0.28, 0.64, 0.12, 0.58]
            + [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0],
        }
    ],
}


# Predictions change nothing upstream: a POST that failed on its way (an inference
# pod shutting down closed the connection) is repeated like a GET.
@ops.post("/v1/predict", scope=INFERENCE_PREDICT, errors=(404, 422), retry_safe=True)
async def predict(
    body: Annotated[
        v1.PredictionRequest, Body(openapi_examples={"one sample": {"value": _PREDICT_EXAMPLE}})
    ],
) -> v1.PredictionResponse:
    """Classify one sample with the default model (`model_version` picks its version)."""
    raise NotImplementedError  # pragma: no cover - documentation only (see operations.py)


@ops.get("/v2", scope=INFERENCE_PREDICT)
async def server_metadata() -> v2.ServerMetadataResponse:
    """Open Inference Protocol: server name, version and extensions."""
    raise NotImplementedError  # pragma: no cover


@ops.get("/v2/health/live", scope=INFERENCE_PREDICT)
async def server_live() -> v2.ServerLiveResponse:
    """Open Inference Protocol: whether the inference server is alive."""
    raise NotImplementedError  # pragma: no cover


@ops.get(
    "/v2/health/ready",
    scope=INFERENCE_PREDICT,
    responses={503: {"model": v2.ServerReadyResponse, "description": "Not ready"}},
)
async def server_ready() -> v2.ServerReadyResponse:
    """Open Inference Protocol: whether the inference server can infer."""
    raise NotImplementedError  # pragma: no cover


@ops.get(
    "/v2/models/{name}", scope=INFERENCE_PREDICT, responses=_OIP_ERRORS, validation_errors=False
)
async def model_metadata(name: str) -> v2.ModelMetadataResponse:
    """Inputs, outputs and versions of a model (its latest version)."""
    raise NotImplementedError  # pragma: no cover


@ops.get(
    "/v2/models/{name}/versions/{version}",
    scope=INFERENCE_PREDICT,
    responses=_OIP_ERRORS,
    validation_errors=False,
)
async def model_version_metadata(name: str, version: str) -> v2.ModelMetadataResponse:
    """Inputs, outputs and versions of one model version (`1.0`, `1`, `v1` name the same)."""
    raise NotImplementedError  # pragma: no cover


@ops.get(
    "/v2/models/{name}/ready",
    scope=INFERENCE_PREDICT,
    responses=_OIP_ERRORS,
    validation_errors=False,
)
async def model_ready(name: str) -> v2.ModelReadyResponse:
    """Whether a model can infer."""
    raise NotImplementedError  # pragma: no cover


@ops.get(
    "/v2/models/{name}/versions/{version}/ready",
    scope=INFERENCE_PREDICT,
    responses=_OIP_ERRORS,
    validation_errors=False,
)
async def model_version_ready(name: str, version: str) -> v2.ModelReadyResponse:
    """Whether a model version can infer."""
    raise NotImplementedError  # pragma: no cover


@ops.post(
    "/v2/models/{name}/infer",
    scope=INFERENCE_PREDICT,
    responses=_OIP_ERRORS,
    validation_errors=False,
    response_model_exclude_none=True,
    retry_safe=True,
)
async def infer(
    name: str,
    body: Annotated[
        v2.InferenceRequest, Body(openapi_examples={"two rows": {"value": _INFER_EXAMPLE}})
    ],
) -> v2.InferenceResponse:
    """Class probabilities for a batch of rows, from the model's latest version."""
    raise NotImplementedError  # pragma: no cover


@ops.post(
    "/v2/models/{name}/versions/{version}/infer",
    scope=INFERENCE_PREDICT,
    responses=_OIP_ERRORS,
    validation_errors=False,
    response_model_exclude_none=True,
    retry_safe=True,
)
async def infer_version(
    name: str,
    version: str,
    body: Annotated[
        v2.InferenceRequest, Body(openapi_examples={"two rows": {"value": _INFER_EXAMPLE}})
    ],
) -> v2.InferenceResponse:
    """Class probabilities for a batch of rows, from one model version."""
    raise NotImplementedError  # pragma: no cover
