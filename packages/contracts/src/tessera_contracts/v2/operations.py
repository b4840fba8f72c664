"""v2 HTTP operations: the catalog with exact money and cursors, and the Open Inference
Protocol (KServe v2) REST API (see `tessera_contracts.operations`)."""

from __future__ import annotations

from typing import Any, Final

from tessera_contracts.operations import (
    CATALOG,
    CATALOG_READ,
    CATALOG_WRITE,
    INFERENCE,
    INFERENCE_PREDICT,
    Answer,
    Operation,
    table,
)
from tessera_contracts.parameters import (
    IdempotencyHeaders,
    IfMatchHeaders,
    IfNoneMatchHeaders,
    ModelPath,
    ModelVersionPath,
    ProductCursorQuery,
    ProductPath,
)
from tessera_contracts.v1.operations import (
    NOT_MODIFIED,
    PRODUCT_CREATED_HEADERS,
    PRODUCT_ETAG,
)
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

_CATALOG_TAGS: Final = ("catalog v2",)
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

LIST_PRODUCTS: Final = Operation(
    id="list_products",
    version="v2",
    method="GET",
    path="/v2/products",
    owner=CATALOG,
    scope=CATALOG_READ,
    anonymous=True,
    summary="List products, oldest first, one keyset page at a time.",
    query=ProductCursorQuery,
    response=ProductPage,
    errors=(400, 422),
    tags=_CATALOG_TAGS,
)
CREATE_PRODUCT: Final = Operation(
    id="create_product",
    version="v2",
    method="POST",
    path="/v2/products",
    owner=CATALOG,
    scope=CATALOG_WRITE,
    summary="Create a product; 201 with Location and ETag. Idempotent with an Idempotency-Key.",
    headers=IdempotencyHeaders,
    body=ProductCreate,
    body_examples={"a lamp": _PRODUCT_EXAMPLE},
    status=201,
    response=Product,
    response_headers=PRODUCT_CREATED_HEADERS,
    errors=(409, 422),
    tags=_CATALOG_TAGS,
)
GET_PRODUCT: Final = Operation(
    id="get_product",
    version="v2",
    method="GET",
    path="/v2/products/{product_id}",
    owner=CATALOG,
    scope=CATALOG_READ,
    anonymous=True,
    summary="Get one product, with its ETag (If-None-Match gives 304 when unchanged).",
    path_params=ProductPath,
    headers=IfNoneMatchHeaders,
    response=Product,
    response_headers=PRODUCT_ETAG,
    errors=(404, 422),
    answers=(NOT_MODIFIED,),
    tags=_CATALOG_TAGS,
)
UPDATE_PRODUCT: Final = Operation(
    id="update_product",
    version="v2",
    method="PATCH",
    path="/v2/products/{product_id}",
    owner=CATALOG,
    scope=CATALOG_WRITE,
    summary="Change some fields; with If-Match, only if the product is still at that ETag "
    "(else 412).",
    path_params=ProductPath,
    headers=IfMatchHeaders,
    body=ProductUpdate,
    body_examples={"new price": {"price": {"amount": "44.90", "currency": "EUR"}}},
    response=Product,
    response_headers=PRODUCT_ETAG,
    errors=(404, 409, 412, 422),
    tags=_CATALOG_TAGS,
)
DELETE_PRODUCT: Final = Operation(
    id="delete_product",
    version="v2",
    method="DELETE",
    path="/v2/products/{product_id}",
    owner=CATALOG,
    scope=CATALOG_WRITE,
    summary="Delete a product with its reviews and inventory; If-Match is honoured.",
    path_params=ProductPath,
    headers=IfMatchHeaders,
    status=204,
    errors=(404, 412, 422),
    tags=_CATALOG_TAGS,
)
GET_ENRICHED_PRODUCT: Final = Operation(
    id="get_enriched_product",
    version="v2",
    method="GET",
    path="/v2/products/{product_id}/enriched",
    owner=CATALOG,
    scope=CATALOG_READ,
    anonymous=True,
    summary="Product, recent reviews with summary, inventory and a prediction with class "
    "probabilities.",
    description="A part that fails or is slow is left out and named in `degraded`.",
    path_params=ProductPath,
    response=EnrichedProduct,
    errors=(404, 422, 503),
    tags=_CATALOG_TAGS,
)


# The Open Inference Protocol's errors are its `{"error": ...}` body, which existing
# OIP clients parse: 400 for any bad request (invalid input included, so no 422),
# 404 for an unknown model or version, 503 while the server shuts down.
_OIP: Final[dict[str, Any]] = {
    "owner": INFERENCE,
    "scope": INFERENCE_PREDICT,
    "error_model": InferenceErrorResponse,
    "error_media_type": "application/json",
    "validation_status": 400,
    "error_descriptions": {
        400: "Bad request or tensor",
        404: "Unknown model or version",
        503: "Shutting down",
    },
    "tags": _OIP_TAGS,
}
_OIP_ERRORS: Final = (400, 404, 503)

SERVER_METADATA: Final = Operation(
    id="server_metadata",
    version="v2",
    method="GET",
    anonymous=True,
    path="/v2",
    summary="Open Inference Protocol: server name, version and extensions.",
    response=ServerMetadataResponse,
    **_OIP,
)
SERVER_LIVE: Final = Operation(
    id="server_live",
    version="v2",
    method="GET",
    anonymous=True,
    path="/v2/health/live",
    summary="Open Inference Protocol: whether the inference server is alive.",
    response=ServerLiveResponse,
    **_OIP,
)
SERVER_READY: Final = Operation(
    id="server_ready",
    version="v2",
    method="GET",
    anonymous=True,
    path="/v2/health/ready",
    summary="Open Inference Protocol: whether the inference server can infer "
    "(models loaded, not shutting down).",
    response=ServerReadyResponse,
    answers=(Answer(503, "Not ready", ServerReadyResponse),),
    **_OIP,
)
MODEL_METADATA: Final = Operation(
    id="model_metadata",
    version="v2",
    method="GET",
    anonymous=True,
    path="/v2/models/{name}",
    summary="Inputs, outputs and versions of a model (its latest version).",
    path_params=ModelPath,
    response=ModelMetadataResponse,
    errors=_OIP_ERRORS,
    **_OIP,
)
MODEL_VERSION_METADATA: Final = Operation(
    id="model_version_metadata",
    version="v2",
    method="GET",
    anonymous=True,
    path="/v2/models/{name}/versions/{version}",
    summary="Inputs, outputs and versions of one model version (`1.0`, `1`, `v1` name the same).",
    path_params=ModelVersionPath,
    response=ModelMetadataResponse,
    errors=_OIP_ERRORS,
    **_OIP,
)
MODEL_READY: Final = Operation(
    id="model_ready",
    version="v2",
    method="GET",
    anonymous=True,
    path="/v2/models/{name}/ready",
    summary="Whether a model can infer (every loaded model can; unknown ones are 404).",
    path_params=ModelPath,
    response=ModelReadyResponse,
    errors=_OIP_ERRORS,
    **_OIP,
)
MODEL_VERSION_READY: Final = Operation(
    id="model_version_ready",
    version="v2",
    method="GET",
    anonymous=True,
    path="/v2/models/{name}/versions/{version}/ready",
    summary="Whether a model version can infer.",
    path_params=ModelVersionPath,
    response=ModelReadyResponse,
    errors=_OIP_ERRORS,
    **_OIP,
)
INFER: Final = Operation(
    id="infer",
    version="v2",
    method="POST",
    path="/v2/models/{name}/infer",
    summary="Class probabilities for a batch of rows, from the model's latest version.",
    path_params=ModelPath,
    body=InferenceRequest,
    body_examples={"two rows": _INFER_EXAMPLE},
    response=InferenceResponse,
    errors=_OIP_ERRORS,
    # An inference changes nothing: a failed attempt may be repeated.
    retry="always",
    **_OIP,
)
INFER_VERSION: Final = Operation(
    id="infer_version",
    version="v2",
    method="POST",
    path="/v2/models/{name}/versions/{version}/infer",
    summary="Class probabilities for a batch of rows, from one model version.",
    path_params=ModelVersionPath,
    body=InferenceRequest,
    body_examples={"two rows": _INFER_EXAMPLE},
    response=InferenceResponse,
    errors=_OIP_ERRORS,
    retry="always",
    **_OIP,
)

OPERATIONS: Final = table(
    (
        LIST_PRODUCTS,
        CREATE_PRODUCT,
        GET_PRODUCT,
        UPDATE_PRODUCT,
        DELETE_PRODUCT,
        GET_ENRICHED_PRODUCT,
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
