"""v1 HTTP operations, each declared once (see `tessera_contracts.operations`)."""

from __future__ import annotations

from typing import Any, Final

from tessera_contracts._catalog_operations import (
    NOT_MODIFIED as NOT_MODIFIED,
)
from tessera_contracts._catalog_operations import (
    PRODUCT_CREATED_HEADERS as PRODUCT_CREATED_HEADERS,
)
from tessera_contracts._catalog_operations import (
    PRODUCT_ETAG as PRODUCT_ETAG,
)
from tessera_contracts._catalog_operations import (
    catalog_read,
    catalog_write,
    product_operations,
)
from tessera_contracts.events import CloudEvent
from tessera_contracts.operations import (
    GATEWAY,
    INFERENCE,
    INFERENCE_PREDICT,
    EventStream,
    Operation,
    table,
)
from tessera_contracts.parameters import (
    EventsHeaders,
    EventsQuery,
    IdempotencyHeaders,
    PageQuery,
    ProductOffsetQuery,
)
from tessera_contracts.v1 import catalog
from tessera_contracts.v1.events import CatalogEvent
from tessera_contracts.v1.inference import PredictionRequest, PredictionResponse
from tessera_contracts.v1.subjects import CATALOG_EVENT_SUBJECTS

_PRODUCT_EXAMPLE: Final[dict[str, Any]] = {
    "sku": "TSR-0042",
    "name": "Oak desk lamp",
    "description": "Warm light, solid oak base.",
    "category": "lighting",
    "price": 49.9,
    "currency": "EUR",
    "features": [0.42, 0.13, 0.77, 0.05, 0.91, 0.33, 0.28, 0.64, 0.12, 0.58],
}

LIST_PRODUCTS: Final = catalog_read(
    "v1",
    "list_products",
    "/products",
    "List products, oldest first, with the total count of matches.",
    query=ProductOffsetQuery,
    response=catalog.ProductPage,
    errors=(422,),
)
_PRODUCTS: Final = product_operations(
    "v1",
    product=catalog.Product,
    create=(catalog.ProductCreate, _PRODUCT_EXAMPLE),
    update=(catalog.ProductUpdate, {"price": 44.9}),
    enriched=(
        catalog.EnrichedProduct,
        "Product, recent reviews with summary, inventory and prediction, fetched concurrently.",
    ),
)
CREATE_PRODUCT, GET_PRODUCT, UPDATE_PRODUCT, DELETE_PRODUCT, GET_ENRICHED_PRODUCT = _PRODUCTS
LIST_REVIEWS: Final = catalog_read(
    "v1",
    "list_reviews",
    "/products/{product_id}/reviews",
    "A product's reviews, newest first, with the total count.",
    query=PageQuery,
    response=catalog.ReviewPage,
    errors=(404, 422),
)
CREATE_REVIEW: Final = catalog_write(
    "v1",
    "create_review",
    "POST",
    "/products/{product_id}/reviews",
    "Post a review of a product. Idempotent with an Idempotency-Key.",
    headers=IdempotencyHeaders,
    body=catalog.ReviewCreate,
    body_examples={"praise": {"rating": 5, "title": "Lovely", "author": "ada"}},
    status=201,
    response=catalog.Review,
    errors=(404, 409, 422),
)
GET_INVENTORY: Final = catalog_read(
    "v1",
    "get_inventory",
    "/products/{product_id}/inventory",
    "A product's stock (zero until it is first set).",
    response=catalog.Inventory,
    errors=(404, 422),
)
SET_INVENTORY: Final = catalog_write(
    "v1",
    "set_inventory",
    "PUT",
    "/products/{product_id}/inventory",
    "Set a product's stock (absolute values; `reserved` may not exceed `quantity`).",
    body=catalog.InventoryUpdate,
    body_examples={"restock": {"quantity": 120, "reserved": 4}},
    response=catalog.Inventory,
    errors=(404, 422),
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
EVENTS: Final = catalog_read(
    "v1",
    "events",
    "/events",
    "Live catalog changes; reconnect with `Last-Event-ID` to miss nothing.",
    owner=GATEWAY,
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
        *_PRODUCTS,
        LIST_REVIEWS,
        CREATE_REVIEW,
        GET_INVENTORY,
        SET_INVENTORY,
        PREDICT_OPERATION,
        EVENTS,
    )
)
"""Every v1 operation."""
