"""v1 reviews of a product: list (newest first) and post."""

from __future__ import annotations

from uuid import UUID

from fastapi import APIRouter, Request
from fastapi.responses import Response
from tessera_contracts import v1
from tessera_contracts.parameters import IdempotencyHeaders, PageQuery
from tessera_runtime.operations import implements

from tessera_catalog.api.common import (
    clamp_limit,
    idempotency_request,
    json_response,
    reject_nul,
    rendered_response,
)
from tessera_catalog.db.reviews import ReviewRecord
from tessera_catalog.deps import ReviewsDep
from tessera_catalog.domain import convert
from tessera_catalog.domain.idempotency import Rendered

router = APIRouter()


def _render(record: ReviewRecord) -> Rendered:
    return Rendered(v1.CREATE_REVIEW.status, convert.review(record).model_dump_json().encode())


@implements(router, v1.LIST_REVIEWS)
async def list_reviews(product_id: UUID, query: PageQuery, reviews: ReviewsDep) -> Response:
    limit = clamp_limit(query.limit)
    records, total = await reviews.page(product_id, offset=query.offset, limit=limit)
    page = v1.ReviewPage(
        items=[convert.review(r) for r in records], total=total, offset=query.offset, limit=limit
    )
    return json_response(page)


@implements(router, v1.CREATE_REVIEW)
async def create_review(
    product_id: UUID,
    headers: IdempotencyHeaders,
    body: v1.ReviewCreate,
    request: Request,
    reviews: ReviewsDep,
) -> Response:
    reject_nul(body)
    rendered = await reviews.create(
        product_id,
        convert.new_review(body),
        idempotency=idempotency_request(request, headers.idempotency_key, body),
        render=_render,
    )
    return rendered_response(rendered)
