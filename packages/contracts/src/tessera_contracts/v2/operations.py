"""v2 HTTP operations: the catalog with exact money and cursors, and the Open Inference
Protocol (KServe v2) REST API (see `tessera_contracts.operations`)."""

from __future__ import annotations

from typing import Any, Final

from pydantic import BaseModel

from tessera_contracts._catalog_operations import catalog_read, product_operations
from tessera_contracts.operations import (
    INFERENCE,
    INFERENCE_PREDICT,
    Answer,
    Method,
    Operation,
    table,
)
from tessera_contracts.parameters import ModelPath, ModelVersionPath, ProductCursorQuery
from tessera_contracts.v2.catalog import (
    EnrichedProduct,
    Product,
    ProductCreate,
    ProductPage,
    ProductUpdate,
)
from tessera_contracts.v2.inference import (
    InferenceErrorResponse,
    InferenceRequest,
    InferenceResponse,
    ModelMetadataResponse,
    ModelReadyResponse,
    ServerLiveResponse,
    ServerMetadataResponse,
    ServerReadyResponse,
)

_OIP_TAGS: Final = ("inference",)

_PRODUCT_EXAMPLE: Final[dict[str, Any]] = {
    "sku": "TSR-0042",
    "name": "Oak desk lamp",
    "description": "Warm light, solid oak base.",
    "category": "lighting",
    "price": {"amount": "49.90", "currency": "EUR"},
    "features": [0.42, 0.13, 0.77, 0.05, 0.91, 0.33, 0.28, 0.64, 0.12, 0.58],
}
_INFER_EXAMPLE: Final[dict[str, Any]] = {
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

LIST_PRODUCTS: Final = catalog_read(
    "v2",
    "list_products",
    "/products",
    "List products, oldest first, one keyset page at a time.",
    query=ProductCursorQuery,
    response=ProductPage,
    errors=(400, 422),
)
_PRODUCTS: Final = product_operations(
    "v2",
    product=Product,
    create=(ProductCreate, _PRODUCT_EXAMPLE),
    update=(ProductUpdate, {"price": {"amount": "44.90", "currency": "EUR"}}),
    enriched=(
        EnrichedProduct,
        "Product, recent reviews with summary, inventory and a prediction with class "
        "probabilities.",
    ),
)
CREATE_PRODUCT, GET_PRODUCT, UPDATE_PRODUCT, DELETE_PRODUCT, GET_ENRICHED_PRODUCT = _PRODUCTS

# The Open Inference Protocol's errors are its `{"error": ...}` body, which existing
# OIP clients parse: 400 for any bad request (invalid input included, so no 422),
# 404 for an unknown model or version, 503 while the server shuts down.
_OIP_ERROR_DESCRIPTIONS: Final = {
    400: "Bad request or tensor",
    404: "Unknown model or version",
    503: "Shutting down",
}
_OIP_ERRORS: Final = (400, 404, 503)


def _oip(id: str, path: str, summary: str, method: Method = "GET", **fields: Any) -> Operation:
    """An Open Inference Protocol operation at `/v2{path}`; its reads are anonymous."""
    return Operation(
        id=id,
        version="v2",
        method=method,
        path=f"/v2{path}",
        anonymous=method == "GET",
        owner=INFERENCE,
        scope=INFERENCE_PREDICT,
        summary=summary,
        error_model=InferenceErrorResponse,
        error_media_type="application/json",
        validation_status=400,
        error_descriptions=_OIP_ERROR_DESCRIPTIONS,
        tags=_OIP_TAGS,
        **fields,
    )


def _infer(id: str, path: str, summary: str, path_params: type[BaseModel]) -> Operation:
    """`POST .../infer`: an inference changes nothing, so a failed attempt may be repeated."""
    return _oip(
        id,
        path,
        summary,
        method="POST",
        path_params=path_params,
        body=InferenceRequest,
        body_examples={"two rows": _INFER_EXAMPLE},
        response=InferenceResponse,
        errors=_OIP_ERRORS,
        retry="always",
    )


SERVER_METADATA: Final = _oip(
    "server_metadata",
    "",
    "Open Inference Protocol: server name, version and extensions.",
    response=ServerMetadataResponse,
)
SERVER_LIVE: Final = _oip(
    "server_live",
    "/health/live",
    "Open Inference Protocol: whether the inference server is alive.",
    response=ServerLiveResponse,
)
SERVER_READY: Final = _oip(
    "server_ready",
    "/health/ready",
    "Open Inference Protocol: whether the inference server can infer "
    "(models loaded, not shutting down).",
    response=ServerReadyResponse,
    answers=(Answer(503, "Not ready", ServerReadyResponse),),
)
MODEL_METADATA: Final = _oip(
    "model_metadata",
    "/models/{name}",
    "Inputs, outputs and versions of a model (its latest version).",
    path_params=ModelPath,
    response=ModelMetadataResponse,
    errors=_OIP_ERRORS,
)
MODEL_VERSION_METADATA: Final = _oip(
    "model_version_metadata",
    "/models/{name}/versions/{version}",
    "Inputs, outputs and versions of one model version (`1.0`, `1`, `v1` name the same).",
    path_params=ModelVersionPath,
    response=ModelMetadataResponse,
    errors=_OIP_ERRORS,
)
MODEL_READY: Final = _oip(
    "model_ready",
    "/models/{name}/ready",
    "Whether a model can infer (every loaded model can; unknown ones are 404).",
    path_params=ModelPath,
    response=ModelReadyResponse,
    errors=_OIP_ERRORS,
)
MODEL_VERSION_READY: Final = _oip(
    "model_version_ready",
    "/models/{name}/versions/{version}/ready",
    "Whether a model version can infer.",
    path_params=ModelVersionPath,
    response=ModelReadyResponse,
    errors=_OIP_ERRORS,
)
INFER: Final = _infer(
    "infer",
    "/models/{name}/infer",
    "Class probabilities for a batch of rows, from the model's latest version.",
    ModelPath,
)
INFER_VERSION: Final = _infer(
    "infer_version",
    "/models/{name}/versions/{version}/infer",
    "Class probabilities for a batch of rows, from one model version.",
    ModelVersionPath,
)

OPERATIONS: Final = table(
    (
        LIST_PRODUCTS,
        *_PRODUCTS,
        SERVER_METADATA,
        SERVER_LIVE,
        SERVER_READY,
        MODEL_METADATA,
        MODEL_VERSION_METADATA,
        MODEL_READY,
        MODEL_VERSION_READY,
        INFER,
        INFER_VERSION,
    )
)
"""Every v2 operation."""
