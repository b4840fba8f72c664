"""v1 reviews of a product: list (newest first) and post."""

from __future__ import annotations

from uuid import UUID

from fastapi import APIRouter, Request
from fastapi.responses import Response
from tessera_contracts import v1
from tessera_stack.web import problem_responses

from tessera_catalog import convert
from tessera_catalog.api.common import (
    DEFAULT_LIMIT,
    IdempotencyKey,
    Limit,
    Offset,
    clamp_limit,
    idempotency_request,
    json_response,
    reject_nul,
    rendered_response,
)
from tessera_catalog.db.reviews import ReviewRecord
from tessera_catalog.deps import ReviewsDep
from tessera_catalog.idempotency import Rendered

router = APIRouter(prefix="/products/{product_id}/reviews", tags=["reviews v1"])


def _render(record: ReviewRecord) -> Rendered:
    return Rendered(201, convert.review(record).model_dump_json().encode())


@router.get("", response_model=v1.ReviewPage, responses=problem_responses(404, 422))
async def list_reviews(
    product_id: UUID, reviews: ReviewsDep, offset: Offset = 0, limit: Limit = DEFAULT_LIMIT
) -> Response:
    """A product's reviews, newest first, with the total count."""
    limit = clamp_limit(limit)
    records, total = await reviews.page(product_id, offset=offset, limit=limit)
    page = v1.ReviewPage(
        items=[convert.review(r) for r in records], total=total, offset=offset, limit=limit
    )
    return json_response(page)


@router.post(
    "", status_code=201, response_model=v1.Review, responses=problem_responses(404, 409, 422)
)
async def create_review(
    product_id: UUID,
    body: v1.ReviewCreate,
    request: Request,
    reviews: ReviewsDep,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """Post a review of a product. Idempotent with an Idempotency-Key."""
    reject_nul(body)
    rendered = await reviews.create(
        product_id,
        convert.new_review(body),
        idempotency=idempotency_request(request, idempotency_key, body),
        render=_render,
    )
    return rendered_response(rendered)
