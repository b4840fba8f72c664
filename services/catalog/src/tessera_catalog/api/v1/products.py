"""v1 products: list (offset), get (ETag), create (idempotent), patch (If-Match), delete, enriched."""

from __future__ import annotations

from uuid import UUID

from fastapi import APIRouter, Request
from fastapi.responses import Response
from tessera_contracts import v1
from tessera_stack.web import problem_responses

from tessera_catalog import convert
from tessera_catalog.api.common import (
    DEFAULT_LIMIT,
    CategoryFilter,
    IdempotencyKey,
    IfMatch,
    IfNoneMatch,
    Limit,
    Offset,
    SearchQuery,
    clamp_limit,
    idempotency_request,
    json_response,
    none_match,
    reject_nul,
    rendered_response,
)
from tessera_catalog.db.products import ProductFilter, ProductRecord
from tessera_catalog.deps import EnricherDep, ProductsDep
from tessera_catalog.domain.enriched import Enriched
from tessera_catalog.domain.products import etag
from tessera_catalog.idempotency import Rendered

router = APIRouter(prefix="/products", tags=["products v1"])


def _render(record: ProductRecord) -> Rendered:
    body = convert.product_v1(record).model_dump_json().encode()
    headers = {"Location": f"/v1/products/{record.id}", "ETag": etag(record.version)}
    return Rendered(201, body, headers)


def enriched_v1(enriched: Enriched) -> v1.EnrichedProduct:
    return v1.EnrichedProduct(
        product=convert.product_v1(enriched.product),
        reviews=[convert.review(r) for r in enriched.reviews],
        review_summary=None
        if enriched.review_summary is None
        else convert.review_summary(enriched.review_summary),
        inventory=None if enriched.inventory is None else convert.inventory(enriched.inventory),
        prediction=enriched.prediction,
        degraded=enriched.degraded,
    )


@router.get("", response_model=v1.ProductPage, responses=problem_responses(422))
async def list_products(
    products: ProductsDep,
    q: SearchQuery = None,
    category: CategoryFilter = None,
    offset: Offset = 0,
    limit: Limit = DEFAULT_LIMIT,
) -> Response:
    """List products, oldest first, with the total count of matches."""
    limit = clamp_limit(limit)
    records, total = await products.page(
        ProductFilter(q=q, category=category), offset=offset, limit=limit
    )
    page = v1.ProductPage(
        items=[convert.product_v1(r) for r in records], total=total, offset=offset, limit=limit
    )
    return json_response(page)


@router.post(
    "",
    status_code=201,
    response_model=v1.Product,
    responses=problem_responses(409, 422),
)
async def create_product(
    body: v1.ProductCreate,
    request: Request,
    products: ProductsDep,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """Create a product; 201 with Location and ETag. Idempotent with an Idempotency-Key."""
    reject_nul(body)
    rendered = await products.create(
        convert.new_product_v1(body),
        idempotency=idempotency_request(request, idempotency_key, body),
        render=_render,
    )
    return rendered_response(rendered)


@router.get(
    "/{product_id}",
    response_model=v1.Product,
    responses={**problem_responses(404, 422), 304: {"description": "Not Modified"}},
)
async def get_product(
    product_id: UUID, products: ProductsDep, if_none_match: IfNoneMatch = None
) -> Response:
    """Get one product, with its ETag (If-None-Match gives 304 when unchanged)."""
    record = await products.get(product_id)
    tag = etag(record.version)
    if none_match(if_none_match, tag):
        return Response(status_code=304, headers={"ETag": tag})
    return json_response(convert.product_v1(record), headers={"ETag": tag})


@router.patch(
    "/{product_id}", response_model=v1.Product, responses=problem_responses(404, 409, 412, 422)
)
async def update_product(
    product_id: UUID, body: v1.ProductUpdate, products: ProductsDep, if_match: IfMatch = None
) -> Response:
    """Change some fields; with If-Match, only if the product is still at that ETag (else 412)."""
    reject_nul(body)
    record = await products.update(product_id, convert.changes_v1(body), if_match=if_match)
    return json_response(convert.product_v1(record), headers={"ETag": etag(record.version)})


@router.delete("/{product_id}", status_code=204, responses=problem_responses(404, 412, 422))
async def delete_product(
    product_id: UUID, products: ProductsDep, if_match: IfMatch = None
) -> Response:
    """Delete a product with its reviews and inventory; If-Match is honoured."""
    await products.delete(product_id, if_match=if_match)
    return Response(status_code=204)


@router.get(
    "/{product_id}/enriched",
    response_model=v1.EnrichedProduct,
    responses=problem_responses(404, 422, 503),
)
async def get_enriched_product(product_id: UUID, enricher: EnricherDep) -> Response:
    """Product, recent reviews with summary, inventory and prediction, fetched concurrently."""
    enriched = await enricher.enrich(product_id)
    return json_response(enriched_v1(enriched))
