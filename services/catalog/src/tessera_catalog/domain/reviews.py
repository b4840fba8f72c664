"""Reviews: list a product's reviews and post new ones (with `review.created`)."""

from __future__ import annotations

from collections.abc import Callable
from uuid import UUID, uuid4

import asyncpg
from tessera_contracts import v1

from tessera_catalog.db import products, reviews
from tessera_catalog.db.records import Pool, acquire, transaction
from tessera_catalog.db.reviews import NewReview, ReviewRecord
from tessera_catalog.domain import convert
from tessera_catalog.domain.events import record_event
from tessera_catalog.domain.idempotency import IdempotencyRequest, Rendered, run_idempotent
from tessera_catalog.errors import ProductNotFound
from tessera_catalog.settings import Settings


class Reviews:
    def __init__(self, pool: Pool, settings: Settings) -> None:
        self.pool = pool
        self.settings = settings

    async def page(
        self, product_id: UUID, *, offset: int, limit: int
    ) -> tuple[list[ReviewRecord], int]:
        async with acquire(self.pool, self.settings.pool_acquire_timeout_s) as conn:
            items, total = await reviews.list_page(conn, product_id, offset=offset, limit=limit)
            # No reviews can also mean no product; only then is the extra query needed.
            if total == 0 and not await products.exists(conn, product_id):
                raise ProductNotFound(product_id)
            return items, total

    async def create(
        self,
        product_id: UUID,
        new: NewReview,
        *,
        idempotency: IdempotencyRequest | None,
        render: Callable[[ReviewRecord], Rendered],
    ) -> Rendered:
        timeout = self.settings.pool_acquire_timeout_s
        try:
            async with acquire(self.pool, timeout) as conn, transaction(conn):

                async def insert() -> Rendered:
                    record = await reviews.insert(conn, uuid4(), product_id, new)
                    data = v1.ReviewCreated(review=convert.review(record))
                    await record_event(conn, data, str(product_id))
                    return render(record)

                return await run_idempotent(
                    conn, idempotency, self.settings.idempotency_ttl_s, insert
                )
        except asyncpg.ForeignKeyViolationError as exc:
            raise ProductNotFound(product_id) from exc
