"""Products: reads, and writes with their outbox event, idempotency and If-Match."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from typing import Any
from uuid import UUID, uuid4

import asyncpg
from asyncpg.pool import PoolConnectionProxy
from tessera_contracts import v1

from tessera_catalog.db import products
from tessera_catalog.db.products import NewProduct, ProductFilter, ProductRecord
from tessera_catalog.db.records import Executor, Pool, acquire, transaction
from tessera_catalog.domain import convert
from tessera_catalog.domain.events import record_event
from tessera_catalog.domain.idempotency import IdempotencyRequest, Rendered, run_idempotent
from tessera_catalog.errors import DuplicateSku, PreconditionFailed, ProductNotFound
from tessera_catalog.settings import Settings


def etag(version: int) -> str:
    """The strong ETag of a product version.

    The version changes on every write, so it is a validator for the product
    state; v1 and v2 are different URIs, each with its own ETag space.
    """
    return f'"{version}"'


def if_match_allows(header: str | None, version: int) -> bool:
    """RFC 9110 If-Match: absent or `*` allows; otherwise a listed strong tag must match.

    Weak tags (`W/"3"`) never match: If-Match uses the strong comparison.
    """
    if header is None:
        return True
    header = header.strip()
    if header == "*":
        return True
    current = etag(version)
    return any(tag.strip() == current for tag in header.split(","))


def _duplicate_sku(exc: asyncpg.UniqueViolationError, sku: str) -> Exception:
    if exc.constraint_name == "products_sku_key":
        return DuplicateSku(sku)
    return exc


class Products:
    def __init__(self, pool: Pool, settings: Settings) -> None:
        self.pool = pool
        self.settings = settings

    def _acquire(self) -> AbstractAsyncContextManager[PoolConnectionProxy[asyncpg.Record]]:
        return acquire(self.pool, self.settings.pool_acquire_timeout_s)

    async def get(self, product_id: UUID) -> ProductRecord:
        async with self._acquire() as conn:
            record = await products.get(conn, product_id)
        if record is None:
            raise ProductNotFound(product_id)
        return record

    async def page(
        self, filters: ProductFilter, *, offset: int, limit: int
    ) -> tuple[list[ProductRecord], int]:
        async with self._acquire() as conn:
            return await products.list_page(conn, filters, offset=offset, limit=limit)

    async def after(
        self, filters: ProductFilter, *, after: tuple[datetime, UUID] | None, limit: int
    ) -> list[ProductRecord]:
        async with self._acquire() as conn:
            return await products.list_after(conn, filters, after=after, limit=limit)

    async def create(
        self,
        new: NewProduct,
        *,
        idempotency: IdempotencyRequest | None,
        render: Callable[[ProductRecord], Rendered],
    ) -> Rendered:
        """Insert a product and its `product.created` event; replay a stored response."""

        async def insert(conn: Executor) -> Rendered:
            record = await products.insert(conn, uuid4(), new)
            data = v1.ProductCreated(product=convert.product_v1(record))
            await record_event(conn, data, str(record.id))
            return render(record)

        return await self._in_transaction(insert, idempotency, new.sku)

    async def update(
        self, product_id: UUID, changes: Mapping[str, Any], *, if_match: str | None
    ) -> ProductRecord:
        """Apply a patch under the row lock; a patch that changes nothing writes nothing."""
        try:
            async with self._acquire() as conn, transaction(conn):
                current = await self._locked(conn, product_id, if_match)
                effective = {k: v for k, v in changes.items() if getattr(current, k) != v}
                if not effective:
                    return current
                record = await products.update(conn, product_id, effective)
                data = v1.ProductUpdated(product=convert.product_v1(record))
                await record_event(conn, data, str(product_id))
                return record
        except asyncpg.UniqueViolationError as exc:
            raise _duplicate_sku(exc, str(changes.get("sku"))) from exc

    async def delete(self, product_id: UUID, *, if_match: str | None) -> None:
        """Delete a product (its reviews and inventory go with it) and record `product.deleted`."""
        async with self._acquire() as conn, transaction(conn):
            current = await self._locked(conn, product_id, if_match)
            await products.delete(conn, product_id)
            data = v1.ProductDeleted(product_id=product_id, sku=current.sku)
            await record_event(conn, data, str(product_id))

    async def _locked(
        self, conn: Executor, product_id: UUID, if_match: str | None
    ) -> ProductRecord:
        # FOR UPDATE: a concurrent writer waits for our commit and then sees the
        # new version, so two PATCHes with the same If-Match cannot both succeed.
        current = await products.get(conn, product_id, for_update=True)
        if current is None:
            raise ProductNotFound(product_id)
        if not if_match_allows(if_match, current.version):
            raise PreconditionFailed(etag(current.version))
        return current

    async def _in_transaction(
        self,
        action: Callable[[Executor], Awaitable[Rendered]],
        idempotency: IdempotencyRequest | None,
        sku: str,
    ) -> Rendered:
        try:
            async with self._acquire() as conn, transaction(conn):
                return await run_idempotent(
                    conn, idempotency, self.settings.idempotency_ttl_s, lambda: action(conn)
                )
        except asyncpg.UniqueViolationError as exc:
            raise _duplicate_sku(exc, sku) from exc
