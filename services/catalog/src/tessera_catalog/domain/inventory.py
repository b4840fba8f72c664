"""Inventory: read and set a product's stock (with `inventory.updated`)."""

from __future__ import annotations

from uuid import UUID

import asyncpg
from tessera_contracts import v1

from tessera_catalog.db import inventory
from tessera_catalog.db.inventory import InventoryRecord
from tessera_catalog.db.records import Pool, acquire, transaction
from tessera_catalog.domain import convert
from tessera_catalog.domain.events import record_event
from tessera_catalog.errors import ProductNotFound
from tessera_catalog.settings import Settings


class Inventories:
    def __init__(self, pool: Pool, settings: Settings) -> None:
        self.pool = pool
        self.settings = settings

    async def get(self, product_id: UUID) -> InventoryRecord:
        async with acquire(self.pool, self.settings.pool_acquire_timeout_s) as conn:
            record = await inventory.get(conn, product_id)
        if record is None:
            raise ProductNotFound(product_id)
        return record

    async def set(self, product_id: UUID, quantity: int, reserved: int) -> InventoryRecord:
        """Set the stock; setting what is already there changes nothing and sends no event."""
        try:
            async with (
                acquire(self.pool, self.settings.pool_acquire_timeout_s) as conn,
                transaction(conn),
            ):
                current = await inventory.get(conn, product_id, for_update=True)
                if current is None:
                    raise ProductNotFound(product_id)
                if (current.quantity, current.reserved) == (quantity, reserved):
                    return current
                record = await inventory.upsert(conn, product_id, quantity, reserved)
                data = v1.InventoryUpdated(inventory=convert.inventory(record))
                await record_event(conn, data, str(product_id))
                return record
        except asyncpg.ForeignKeyViolationError as exc:
            raise ProductNotFound(product_id) from exc
