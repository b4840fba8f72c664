"""Product operations of every API version: one handler per operation, a view per version.

The versions differ only in how a product looks on the wire (v1 float prices,
v2 exact money and probabilities), so each handler is written once and built
per version from that version's `ProductView`. Paths, parameters, headers and
statuses come from the operations the view names (`tessera_contracts`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar
from uuid import UUID

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import BaseModel
from tessera_contracts.operations import Operation
from tessera_contracts.parameters import (
    IdempotencyHeaders,
    IfMatchHeaders,
    IfNoneMatchHeaders,
    ProductCursorQuery,
    ProductOffsetQuery,
)
from tessera_contracts.v1.operations import NOT_MODIFIED
from tessera_runtime.operations import implements

from tessera_catalog.api.common import (
    idempotency_request,
    json_response,
    none_match,
    reject_nul,
    rendered_response,
)
from tessera_catalog.db.products import NewProduct, ProductFilter, ProductRecord
from tessera_catalog.deps import EnricherDep, ProductsDep
from tessera_catalog.domain.enriched import Enriched
from tessera_catalog.domain.idempotency import Rendered
from tessera_catalog.domain.products import etag

ProductT = TypeVar("ProductT", bound=BaseModel)
CreateT = TypeVar("CreateT", bound=BaseModel)
UpdateT = TypeVar("UpdateT", bound=BaseModel)
EnrichedT = TypeVar("EnrichedT", bound=BaseModel)


@dataclass(frozen=True, slots=True)
class ProductView(Generic[ProductT, CreateT, UpdateT, EnrichedT]):
    """One API version's product operations, and how that version reads and renders them."""

    get: Operation
    create: Operation
    update: Operation
    delete: Operation
    get_enriched: Operation
    product: Callable[[ProductRecord], ProductT]
    """A stored product as this version's `Product`."""
    new_product: Callable[[CreateT], NewProduct]
    """This version's create body as the product to insert."""
    changes: Callable[[UpdateT], Mapping[str, Any]]
    """This version's patch body as the columns it changes."""
    enriched: Callable[[Enriched], EnrichedT]
    """An enriched product as this version's `EnrichedProduct`."""

    def location(self, record: ProductRecord) -> str:
        """The new product's URL: where this version's get serves it."""
        return self.get.url_path(product_id=record.id)


def product_filter(query: ProductOffsetQuery | ProductCursorQuery) -> ProductFilter:
    """The search and category filter both list operations share."""
    return ProductFilter(q=query.q, category=query.category)


def product_router(view: ProductView[ProductT, CreateT, UpdateT, EnrichedT]) -> APIRouter:
    """A router serving the view's get, create, update, delete and enriched operations."""
    router = APIRouter()

    def render_created(record: ProductRecord) -> Rendered:
        body = view.product(record).model_dump_json().encode()
        headers = {"Location": view.location(record), "ETag": etag(record.version)}
        return Rendered(view.create.status, body, headers)

    @implements(router, view.get)
    async def get_product(
        product_id: UUID, headers: IfNoneMatchHeaders, products: ProductsDep
    ) -> Response:
        record = await products.get(product_id)
        tag = etag(record.version)
        if none_match(headers.if_none_match, tag):
            return Response(status_code=NOT_MODIFIED.status, headers={"ETag": tag})
        return json_response(view.product(record), headers={"ETag": tag})

    @implements(router, view.create)
    async def create_product(
        headers: IdempotencyHeaders, body: CreateT, request: Request, products: ProductsDep
    ) -> Response:
        reject_nul(body)
        rendered = await products.create(
            view.new_product(body),
            idempotency=idempotency_request(request, headers.idempotency_key, body),
            render=render_created,
        )
        return rendered_response(rendered)

    @implements(router, view.update)
    async def update_product(
        product_id: UUID, headers: IfMatchHeaders, body: UpdateT, products: ProductsDep
    ) -> Response:
        reject_nul(body)
        record = await products.update(product_id, view.changes(body), if_match=headers.if_match)
        return json_response(view.product(record), headers={"ETag": etag(record.version)})

    @implements(router, view.delete)
    async def delete_product(
        product_id: UUID, headers: IfMatchHeaders, products: ProductsDep
    ) -> Response:
        await products.delete(product_id, if_match=headers.if_match)
        return Response(status_code=view.delete.status)

    @implements(router, view.get_enriched)
    async def get_enriched_product(product_id: UUID, enricher: EnricherDep) -> Response:
        return json_response(view.enriched(await enricher.enrich(product_id)))

    return router
