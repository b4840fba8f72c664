"""The enriched product: product, reviews, inventory and a prediction, fetched concurrently.

The three database parts each run on their own pool connection, so they overlap
instead of queueing on one. The prediction needs the product's feature vector,
so it starts as soon as the product row arrives, while reviews and inventory are
still running. Each part has its own timeout; a part that fails or times out is
left out and named in `degraded`. Latency is therefore the slowest chain
(product -> prediction, reviews, inventory), not the sum of the parts.

The product itself is not optional: without it there is nothing to enrich, so a
missing product is 404 and an unreadable one is 503 (ProductUnavailable). A
product without a feature vector has no prediction, and that is not degradation.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import TypeVar
from uuid import UUID

import asyncpg
from asyncpg.pool import PoolConnectionProxy
from tessera_contracts import v1

from tessera_catalog.db import inventory, products, reviews
from tessera_catalog.db.inventory import InventoryRecord
from tessera_catalog.db.products import ProductRecord
from tessera_catalog.db.records import Pool, acquire
from tessera_catalog.db.reviews import ReviewRecord, ReviewSummary
from tessera_catalog.errors import ProductNotFound, ProductUnavailable
from tessera_catalog.messaging.inference import InferenceClient
from tessera_catalog.metrics import CatalogMetrics
from tessera_catalog.settings import Settings

logger = logging.getLogger("tessera_catalog.enriched")

T = TypeVar("T")


@dataclass
class Enriched:
    product: ProductRecord
    reviews: list[ReviewRecord] = field(default_factory=list)
    review_summary: ReviewSummary | None = None
    inventory: InventoryRecord | None = None
    prediction: v1.PredictionResponse | None = None
    degraded: list[v1.DegradedPart] = field(default_factory=list)


class _Failed:
    """Marker result of a part that failed or timed out."""


_FAILED = _Failed()


@dataclass(frozen=True, slots=True)
class Enricher:
    """Gathers enriched products; holds nothing but what it reads from."""

    pool: Pool
    inference: InferenceClient
    settings: Settings
    metrics: CatalogMetrics

    async def enrich(self, product_id: UUID) -> Enriched:
        """Gather every part of product `product_id`.

        Raises:
            ProductNotFound: no such product.
            ProductUnavailable: the product row itself failed or timed out.
        """
        db_timeout = self.settings.part_timeout_s
        product_task = asyncio.create_task(
            self._part(
                "product", self.settings.product_timeout_s, lambda: self._product(product_id)
            )
        )
        reviews_task = asyncio.create_task(
            self._part("reviews", db_timeout, lambda: self._reviews(product_id))
        )
        inventory_task = asyncio.create_task(
            self._part("inventory", db_timeout, lambda: self._inventory(product_id))
        )
        prediction_task = asyncio.create_task(self._prediction(product_task))
        tasks = (product_task, reviews_task, inventory_task, prediction_task)
        try:
            product = await product_task
            if isinstance(product, _Failed):
                raise ProductUnavailable()
            if product is None:
                raise ProductNotFound(product_id)
            review_part, inventory_part, prediction_part = await asyncio.gather(
                reviews_task, inventory_task, prediction_task
            )
        finally:
            # On 404/503 (or our own cancellation) the other parts are no longer wanted.
            for task in tasks:
                task.cancel()

        result = Enriched(product=product)
        if isinstance(review_part, _Failed):
            result.degraded.append("reviews")
        else:
            result.reviews, result.review_summary = review_part
        if isinstance(inventory_part, _Failed):
            result.degraded.append("inventory")
        else:
            result.inventory = inventory_part
        if isinstance(prediction_part, _Failed):
            result.degraded.append("prediction")
        else:
            result.prediction = prediction_part
        for part in result.degraded:
            self.metrics.enriched_degraded.labels(part).inc()
        return result

    async def _part(
        self, name: str, timeout_s: float, fetch: Callable[[], Awaitable[T]]
    ) -> T | _Failed:
        try:
            async with asyncio.timeout(timeout_s):
                return await fetch()
        except TimeoutError:
            logger.warning("enriched product: %s timed out after %gs", name, timeout_s)
        except Exception as exc:  # any failure of one part must leave the others standing
            logger.warning("enriched product: %s failed: %r", name, exc)
        return _FAILED

    def _acquire(self) -> AbstractAsyncContextManager[PoolConnectionProxy[asyncpg.Record]]:
        # The part timeouts bound the wait; `acquire` makes sure a connection
        # left broken by an outage is not lent to the next request.
        return acquire(self.pool, self.settings.pool_acquire_timeout_s)

    async def _product(self, product_id: UUID) -> ProductRecord | None:
        async with self._acquire() as conn:
            return await products.get(conn, product_id)

    async def _reviews(self, product_id: UUID) -> tuple[list[ReviewRecord], ReviewSummary]:
        async with self._acquire() as conn:
            return await reviews.recent_with_summary(
                conn, product_id, limit=self.settings.enriched_review_limit
            )

    async def _inventory(self, product_id: UUID) -> InventoryRecord | None:
        async with self._acquire() as conn:
            return await inventory.get(conn, product_id)

    async def _prediction(
        self, product_task: asyncio.Task[ProductRecord | None | _Failed]
    ) -> v1.PredictionResponse | None | _Failed:
        product = await product_task
        if isinstance(product, _Failed) or product is None or product.features is None:
            return None  # nothing to classify; not a failure of the prediction part
        features = product.features
        return await self._part(
            "prediction",
            self.settings.prediction_timeout_s,
            lambda: self.inference.predict(features),
        )
