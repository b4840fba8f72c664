"""v2 products: list (keyset cursor), get, create, patch, delete, enriched with probabilities."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from tessera_contracts import conversions, v2
from tessera_stack.web import problem_responses

from tessera_catalog import convert
from tessera_catalog.api.common import (
    DEFAULT_LIMIT,
    CategoryFilter,
    IdempotencyKey,
    IfMatch,
    IfNoneMatch,
    Limit,
    SearchQuery,
    clamp_limit,
    idempotency_request,
    json_response,
    none_match,
    reject_nul,
    rendered_response,
)
from tessera_catalog.api.v2.cursor import decode_cursor, encode_cursor
from tessera_catalog.db.products import ProductFilter, ProductRecord
from tessera_catalog.deps import EnricherDep, ProductsDep
from tessera_catalog.domain.enriched import Enriched
from tessera_catalog.domain.products import etag
from tessera_catalog.idempotency import Rendered

router = APIRouter(prefix="/products", tags=["products v2"])

Cursor = Annotated[
    str | None,
    Query(
        description="`next_cursor` of the previous page; omit for the first page. "
        "A cursor this API did not issue is 400."
    ),
]


def _render(record: ProductRecord) -> Rendered:
    body = convert.product_v2(record).model_dump_json().encode()
    headers = {"Location": f"/v2/products/{record.id}", "ETag": etag(record.version)}
    return Rendered(201, body, headers)


def enriched_v2(enriched: Enriched) -> v2.EnrichedProduct:
    degraded = list(enriched.degraded)
    prediction = None
    if enriched.prediction is not None:
        prediction = conversions.prediction_v1_to_v2(enriched.prediction)
        if prediction is None:
            # An inference service too old to send class probabilities cannot
            # answer a v2 prediction: leave it out and say so.
            degraded.append("prediction")
    return v2.EnrichedProduct(
        product=convert.product_v2(enriched.product),
        reviews=[convert.review(r) for r in enriched.reviews],
        review_summary=None
        if enriched.review_summary is None
        else convert.review_summary(enriched.review_summary),
        inventory=None if enriched.inventory is None else convert.inventory(enriched.inventory),
        prediction=prediction,
        degraded=degraded,
    )


@router.get("", response_model=v2.ProductPage, responses=problem_responses(400, 422))
async def list_products(
    products: ProductsDep,
    q: SearchQuery = None,
    category: CategoryFilter = None,
    cursor: Cursor = None,
    limit: Limit = DEFAULT_LIMIT,
) -> Response:
    """List products, oldest first, one keyset page at a time."""
    limit = clamp_limit(limit)
    after = None if cursor is None else decode_cursor(cursor)
    # One extra row tells whether another page exists without a count query.
    records = await products.after(
        ProductFilter(q=q, category=category), after=after, limit=limit + 1
    )
    next_cursor = None
    if len(records) > limit:
        records = records[:limit]
        last = records[-1]
        next_cursor = encode_cursor(last.created_at, last.id)
    page = v2.ProductPage(
        items=[convert.product_v2(r) for r in records], next_cursor=next_cursor, limit=limit
    )
    return json_response(page)


@router.post("", status_code=201, response_model=v2.Product, responses=problem_responses(409, 422))
async def create_product(
    body: v2.ProductCreate,
    request: Request,
    products: ProductsDep,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """Create a product; 201 with Location and ETag. Idempotent with an Idempotency-Key."""
    reject_nul(body)
    rendered = await products.create(
        convert.new_product_v2(body),
        idempotency=idempotency_request(request, idempotency_key, body),
        render=_render,
    )
    return rendered_response(rendered)


@router.get(
    "/{product_id}",
    response_model=v2.Product,
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
    return json_response(convert.product_v2(record), headers={"ETag": tag})


@router.patch(
    "/{product_id}", response_model=v2.Product, responses=problem_responses(404, 409, 412, 422)
)
async def update_product(
    product_id: UUID, body: v2.ProductUpdate, products: ProductsDep, if_match: IfMatch = None
) -> Response:
    """Change some fields; with If-Match, only if the product is still at that ETag (else 412)."""
    reject_nul(body)
    record = await products.update(product_id, convert.changes_v2(body), if_match=if_match)
    return json_response(convert.product_v2(record), headers={"ETag": etag(record.version)})


@router.delete("/{product_id}", status_code=204, responses=problem_responses(404, 412, 422))
async def delete_product(
    product_id: UUID, products: ProductsDep, if_match: IfMatch = None
) -> Response:
    """Delete a product with its reviews and inventory; If-Match is honoured."""
    await products.delete(product_id, if_match=if_match)
    return Response(status_code=204)


@router.get(
    "/{product_id}/enriched",
    response_model=v2.EnrichedProduct,
    responses=problem_responses(404, 422, 503),
)
async def get_enriched_product(product_id: UUID, enricher: EnricherDep) -> Response:
    """Product, recent reviews with summary, inventory and a prediction with class probabilities."""
    enriched = await enricher.enrich(product_id)
    return json_response(enriched_v2(enriched))
