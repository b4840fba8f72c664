"""Catalog v1 operations: products (offset pages, float prices), reviews, inventory, enriched."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from fastapi import Body
from tessera_contracts import v1

from tessera_gateway.auth import CATALOG_READ, CATALOG_WRITE
from tessera_gateway.operations import Operations
from tessera_gateway.routes.params import (
    DEFAULT_LIMIT,
    CategoryFilter,
    IdempotencyKey,
    IfMatch,
    IfNoneMatch,
    Limit,
    Offset,
    SearchQuery,
)

ops = Operations("catalog", tags=["catalog v1"])

_NOT_MODIFIED: dict[int | str, dict[str, Any]] = {304: {"description": "Not Modified"}}
_PRODUCT_EXAMPLE = {
    "sku": "TSR-0042",
    "name": "Oak desk lamp",
    "description": "Warm light, solid oak base.",
    "category": "lighting",
    "price": 49.9,
    "currency": "EUR",
    "features": [0.42, 0.13, 0.77, 0.05, 0.91, 0.33, 0.28, 0.64, 0.12, 0.58],
}


@ops.get("/v1/products", scope=CATALOG_READ, errors=(422,))
async def list_products(
    q: SearchQuery = None,
    category: CategoryFilter = None,
    offset: Offset = 0,
    limit: Limit = DEFAULT_LIMIT,
) -> v1.ProductPage:
    """List products, oldest first, with the total count of matches."""
    raise NotImplementedError  # pragma: no cover - documentation only (see operations.py)


@ops.post("/v1/products", scope=CATALOG_WRITE, status_code=201, errors=(409, 422))
async def create_product(
    body: Annotated[
        v1.ProductCreate, Body(openapi_examples={"a lamp": {"value": _PRODUCT_EXAMPLE}})
    ],
    idempotency_key: IdempotencyKey = None,
) -> v1.Product:
    """Create a product; 201 with Location and ETag. Idempotent with an Idempotency-Key."""
    raise NotImplementedError  # pragma: no cover


@ops.get(
    "/v1/products/{product_id}", scope=CATALOG_READ, errors=(404, 422), responses=_NOT_MODIFIED
)
async def get_product(product_id: UUID, if_none_match: IfNoneMatch = None) -> v1.Product:
    """Get one product, with its ETag (If-None-Match gives 304 when unchanged)."""
    raise NotImplementedError  # pragma: no cover


@ops.patch("/v1/products/{product_id}", scope=CATALOG_WRITE, errors=(404, 409, 412, 422))
async def update_product(
    product_id: UUID,
    body: Annotated[
        v1.ProductUpdate, Body(openapi_examples={"new price": {"value": {"price": 44.9}}})
    ],
    if_match: IfMatch = None,
) -> v1.Product:
    """Change some fields; with If-Match, only if the product is still at that ETag (else 412)."""
    raise NotImplementedError  # pragma: no cover


@ops.delete(
    "/v1/products/{product_id}", scope=CATALOG_WRITE, status_code=204, errors=(404, 412, 422)
)
async def delete_product(product_id: UUID, if_match: IfMatch = None) -> None:
    """Delete a product with its reviews and inventory; If-Match is honoured."""
    raise NotImplementedError  # pragma: no cover


@ops.get("/v1/products/{product_id}/enriched", scope=CATALOG_READ, errors=(404, 422))
async def get_enriched_product(product_id: UUID) -> v1.EnrichedProduct:
    """Product, recent reviews with summary, inventory and prediction, fetched concurrently.

    A part that fails or is slow is left out and named in `degraded`.
    """
    raise NotImplementedError  # pragma: no cover


@ops.get("/v1/products/{product_id}/reviews", scope=CATALOG_READ, errors=(404, 422))
async def list_reviews(
    product_id: UUID, offset: Offset = 0, limit: Limit = DEFAULT_LIMIT
) -> v1.ReviewPage:
    """A product's reviews, newest first, with the total count."""
    raise NotImplementedError  # pragma: no cover


@ops.post(
    "/v1/products/{product_id}/reviews",
    scope=CATALOG_WRITE,
    status_code=201,
    errors=(404, 409, 422),
)
async def create_review(
    product_id: UUID,
    body: Annotated[
        v1.ReviewCreate,
        Body(
            openapi_examples={
                "praise": {"value": {"rating": 5, "title": "Lovely", "author": "ada"}}
            }
        ),
    ],
    idempotency_key: IdempotencyKey = None,
) -> v1.Review:
    """Post a review of a product. Idempotent with an Idempotency-Key."""
    raise NotImplementedError  # pragma: no cover


@ops.get("/v1/products/{product_id}/inventory", scope=CATALOG_READ, errors=(404, 422))
async def get_inventory(product_id: UUID) -> v1.Inventory:
    """A product's stock (zero until it is first set)."""
    raise NotImplementedError  # pragma: no cover


@ops.put("/v1/products/{product_id}/inventory", scope=CATALOG_WRITE, errors=(404, 422))
async def set_inventory(
    product_id: UUID,
    body: Annotated[
        v1.InventoryUpdate,
        Body(openapi_examples={"restock": {"value": {"quantity": 120, "reserved": 4}}}),
    ],
) -> v1.Inventory:
    """Set a product's stock (absolute values; `reserved` may not exceed `quantity`)."""
    raise NotImplementedError  # pragma: no cover
