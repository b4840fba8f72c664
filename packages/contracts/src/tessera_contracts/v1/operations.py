"""v1 HTTP operations, each declared once (see `tessera_contracts.operations`)."""

from __future__ import annotations

from typing import Any, Final

from tessera_contracts.events import CloudEvent
from tessera_contracts.operations import (
    CATALOG,
    CATALOG_READ,
    CATALOG_WRITE,
    GATEWAY,
    INFERENCE,
    INFERENCE_PREDICT,
    Answer,
    EventStream,
    Operation,
    table,
)
from tessera_contracts.parameters import (
    EventsHeaders,
    EventsQuery,
    IdempotencyHeaders,
    IfMatchHeaders,
    IfNoneMatchHeaders,
    PageQuery,
    ProductOffsetQuery,
    ProductPath,
)
from tessera_contracts.v1.catalog import (
    EnrichedProduct,
    Inventory,
    InventoryUpdate,
    Product,
    ProductCreate,
    ProductPage,
    ProductUpdate,
    Review,
    ReviewCreate,
    ReviewPage,
)
from tessera_contracts.v1.events import CatalogEvent
from tessera_contracts.v1.inference import PredictionRequest, PredictionResponse
from tessera_contracts.v1.subjects import CATALOG_EVENT_SUBJECTS

_CATALOG_TAGS: Final = ("catalog v1",)
PRODUCT_ETAG: Final = {"ETag": "The product's version, for If-Match and If-None-Match."}
PRODUCT_CREATED_HEADERS: Final = {"Location": "The new product's URL.", **PRODUCT_ETAG}
NOT_MODIFIED: Final = Answer(304, "Not Modified: the product still has the ETag you sent.")

_PRODUCT_EXAMPLE: Final[dict[str, Any]] = {
    "sku": "TSR-0042",
    "name": "Oak desk lamp",
    "description": "Warm light, solid oak base.",
    "category": "lighting",
    "price": 49.9,
    "currency": "EUR",
    "features": [0.42, 0.13, 0.77, 0.05, 0.91, 0.33, 0.28, 0.64, 0.12, 0.58],
}

LIST_PRODUCTS: Final = Operation(
    id="list_products",
    version="v1",
    method="GET",
    path="/v1/products",
    owner=CATALOG,
    scope=CATALOG_READ,
    anonymous=True,
    summary="List products, oldest first, with the total count of matches.",
    query=ProductOffsetQuery,
    response=ProductPage,
    errors=(422,),
    tags=_CATALOG_TAGS,
)
CREATE_PRODUCT: Final = Operation(
    id="create_product",
    version="v1",
    method="POST",
    path="/v1/products",
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
    version="v1",
    method="GET",
    path="/v1/products/{product_id}",
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
    version="v1",
    method="PATCH",
    path="/v1/products/{product_id}",
    owner=CATALOG,
    scope=CATALOG_WRITE,
    summary="Change some fields; with If-Match, only if the product is still at that ETag "
    "(else 412).",
    path_params=ProductPath,
    headers=IfMatchHeaders,
    body=ProductUpdate,
    body_examples={"new price": {"price": 44.9}},
    response=Product,
    response_headers=PRODUCT_ETAG,
    errors=(404, 409, 412, 422),
    tags=_CATALOG_TAGS,
)
DELETE_PRODUCT: Final = Operation(
    id="delete_product",
    version="v1",
    method="DELETE",
    path="/v1/products/{product_id}",
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
    version="v1",
    method="GET",
    path="/v1/products/{product_id}/enriched",
    owner=CATALOG,
    scope=CATALOG_READ,
    anonymous=True,
    summary="Product, recent reviews with summary, inventory and prediction, fetched concurrently.",
    description="A part that fails or is slow is left out and named in `degraded`.",
    path_params=ProductPath,
    response=EnrichedProduct,
    errors=(404, 422, 503),
    tags=_CATALOG_TAGS,
)
LIST_REVIEWS: Final = Operation(
    id="list_reviews",
    version="v1",
    method="GET",
    path="/v1/products/{product_id}/reviews",
    owner=CATALOG,
    scope=CATALOG_READ,
    anonymous=True,
    summary="A product's reviews, newest first, with the total count.",
    path_params=ProductPath,
    query=PageQuery,
    response=ReviewPage,
    errors=(404, 422),
    tags=_CATALOG_TAGS,
)
CREATE_REVIEW: Final = Operation(
    id="create_review",
    version="v1",
    method="POST",
    path="/v1/products/{product_id}/reviews",
    owner=CATALOG,
    scope=CATALOG_WRITE,
    summary="Post a review of a product. Idempotent with an Idempotency-Key.",
    path_params=ProductPath,
    headers=IdempotencyHeaders,
    body=ReviewCreate,
    body_examples={"praise": {"rating": 5, "title": "Lovely", "author": "ada"}},
    status=201,
    response=Review,
    errors=(404, 409, 422),
    tags=_CATALOG_TAGS,
)
GET_INVENTORY: Final = Operation(
    id="get_inventory",
    version="v1",
    method="GET",
    path="/v1/products/{product_id}/inventory",
    owner=CATALOG,
    scope=CATALOG_READ,
    anonymous=True,
    summary="A product's stock (zero until it is first set).",
    path_params=ProductPath,
    response=Inventory,
    errors=(404, 422),
    tags=_CATALOG_TAGS,
)
SET_INVENTORY: Final = Operation(
    id="set_inventory",
    version="v1",
    method="PUT",
    path="/v1/products/{product_id}/inventory",
    owner=CATALOG,
    scope=CATALOG_WRITE,
    summary="Set a product's stock (absolute values; `reserved` may not exceed `quantity`).",
    path_params=ProductPath,
    body=InventoryUpdate,
    body_examples={"restock": {"quantity": 120, "reserved": 4}},
    response=Inventory,
    errors=(404, 422),
    tags=_CATALOG_TAGS,
)
PREDICT_OPERATION: Final = Operation(
    id="predict",
    version="v1",
    method="POST",
    path="/v1/predict",
    owner=INFERENCE,
    scope=INFERENCE_PREDICT,
    summary="Classify one sample with the default model (`model_version` picks its version).",
    body=PredictionRequest,
    body_examples={
        "one sample": {
            "features": [0.42, 0.13, 0.77, 0.05, 0.91, 0.33, 0.28, 0.64, 0.12, 0.58],
            "model_version": "v1.0",
            "confidence_threshold": 0.5,
        }
    },
    response=PredictionResponse,
    errors=(404, 422, 503),
    # A prediction changes nothing: a POST that failed on its way (an inference
    # pod shutting down closed the connection) may be repeated like a GET.
    retry="always",
    tags=("inference",),
)
EVENTS: Final = Operation(
    id="events",
    version="v1",
    method="GET",
    path="/v1/events",
    owner=GATEWAY,
    scope=CATALOG_READ,
    anonymous=True,
    summary="Live catalog changes; reconnect with `Last-Event-ID` to miss nothing.",
    description="An endless `text/event-stream`: `id` is the stream sequence, `event` the "
    "event type (`catalog.v1.product.created`, ...), `data` a CloudEvent whose `data` is "
    "one of the catalog events.",
    query=EventsQuery,
    headers=EventsHeaders,
    stream=EventStream(
        item=CloudEvent[CatalogEvent],
        event_types=tuple(subject.name for subject in CATALOG_EVENT_SUBJECTS),
        id_description="The stream sequence: send it back as `Last-Event-ID` to resume.",
    ),
    errors=(422,),
    tags=("events",),
)

OPERATIONS: Final = table(
    (
        LIST_PRODUCTS,
        CREATE_PRODUCT,
        GET_PRODUCT,
        UPDATE_PRODUCT,
        DELETE_PRODUCT,
        GET_ENRICHED_PRODUCT,
        LIST_REVIEWS,
        CREATE_REVIEW,
        GET_INVENTORY,
        SET_INVENTORY,
        PREDICT_OPERATION,
        EVENTS,
    )
)
"""Every v1 operation."""
