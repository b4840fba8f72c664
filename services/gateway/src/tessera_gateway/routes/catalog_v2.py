"""Catalog v2 operations: keyset pages, exact money, predictions with class probabilities.

Reviews and inventory did not change in v2: they stay under `/v1`.
"""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from fastapi import Body
from tessera_contracts import v2

from tessera_gateway.auth import CATALOG_READ, CATALOG_WRITE
from tessera_gateway.operations import Operations
from tessera_gateway.routes.params import (
    DEFAULT_LIMIT,
    CategoryFilter,
    Cursor,
    IdempotencyKey,
    IfMatch,
    IfNoneMatch,
    Limit,
    SearchQuery,
)

ops = Operations("catalog", tags=["catalog v2"])

_NOT_MODIFIED: dict[int | str, dict[str, Any]] = {304: {"description": "Not Modified"}}
_PRODUCT_EXAMPLE = {
    "sku": "TSR-0042",
    "name": "Oak desk lamp",
    "description": "Warm light, solid oak base.",
    "category": "lighting",
    "price": {"amount": "49.90", "currency": "EUR"},
    "features": [0.42, 0.13, 0.77, 0.05, 0.91, 0.33, 0.28, 0.64, 0.12, 0.58],
}


@ops.get("/v2/products", scope=CATALOG_READ, errors=(400, 422))
async def list_products(
    q: SearchQuery = None,
    category: CategoryFilter = None,
    cursor: Cursor = None,
    limit: Limit = DEFAULT_LIMIT,
) -> v2.ProductPage:
    """List products, oldest first, one keyset page at a time (follow `next_cursor`)."""
    raise NotImplementedError  # pragma: no cover - documentation only (see operations.py)


@ops.post("/v2/products", scope=CATALOG_WRITE, status_code=201, errors=(409, 422))
async def create_product(
    body: Annotated[
        v2.ProductCreate, Body(openapi_examples={"a lamp": {"value": _PRODUCT_EXAMPLE}})
    ],
    idempotency_key: IdempotencyKey = None,
) -> v2.Product:
    """Create a product; 201 with Location and ETag. Idempotent with an Idempotency-Key."""
    raise NotImplementedError  # pragma: no cover


@ops.get(
    "/v2/products/{product_id}", scope=CATALOG_READ, errors=(404, 422), responses=_NOT_MODIFIED
)
async def get_product(product_id: UUID, if_none_match: IfNoneMatch = None) -> v2.Product:
    """Get one product, with its ETag (If-None-Match gives 304 when unchanged)."""
    raise NotImplementedError  # pragma: no cover


@ops.patch("/v2/products/{product_id}", scope=CATALOG_WRITE, errors=(404, 409, 412, 422))
async def update_product(
    product_id: UUID,
    body: Annotated[
        v2.ProductUpdate,
        Body(
            openapi_examples={
                "new price": {"value": {"price": {"amount": "44.90", "currency": "EUR"}}}
            }
        ),
    ],
    if_match: IfMatch = None,
) -> v2.Product:
    """Change some fields; with If-Match, only if the product is still at that ETag (else 412)."""
    raise NotImplementedError  # pragma: no cover


@ops.delete(
    "/v2/products/{product_id}", scope=CATALOG_WRITE, status_code=204, errors=(404, 412, 422)
)
async def delete_product(product_id: UUID, if_match: IfMatch = None) -> None:
    """Delete a product with its reviews and inventory; If-Match is honoured."""
    raise NotImplementedError  # pragma: no cover


@ops.get("/v2/products/{product_id}/enriched", scope=CATALOG_READ, errors=(404, 422))
async def get_enriched_product(product_id: UUID) -> v2.EnrichedProduct:
    """Product, recent reviews with summary, inventory and a prediction with class probabilities.

    A part that fails or is slow is left out and named in `degraded`.
    """
    raise NotImplementedError  # pragma: no cover
