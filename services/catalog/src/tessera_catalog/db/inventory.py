"""SQL for inventory. A product without an inventory row has nothing in stock."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from tessera_catalog.db.records import Executor, Row


@dataclass(frozen=True, slots=True)
class InventoryRecord(Row):
    product_id: UUID
    quantity: int
    reserved: int
    updated_at: datetime


async def get(
    conn: Executor, product_id: UUID, *, for_update: bool = False
) -> InventoryRecord | None:
    """The product's stock, or None when the product does not exist.

    Products created through the API get no inventory row until stock is set, so
    a missing row reads as zero stock as of the product's creation. `for_update`
    locks the product row, which serializes writers of one product's stock.
    """
    # NO KEY UPDATE: exclusive among stock writers, yet it lets reviews be posted
    # (their foreign key takes KEY SHARE on the product row).
    lock = " FOR NO KEY UPDATE OF p" if for_update else ""
    row = await conn.fetchrow(
        f"""
        SELECT p.id AS product_id,
               coalesce(i.quantity, 0) AS quantity,
               coalesce(i.reserved, 0) AS reserved,
               coalesce(i.updated_at, p.created_at) AS updated_at
        FROM products p LEFT JOIN inventory i ON i.product_id = p.id
        WHERE p.id = $1{lock}
        """,
        product_id,
    )
    return None if row is None else InventoryRecord.from_row(row)


async def upsert(conn: Executor, product_id: UUID, quantity: int, reserved: int) -> InventoryRecord:
    """Set the stock; raises ForeignKeyViolationError when the product is gone."""
    row = await conn.fetchrow(
        """
        INSERT INTO inventory (product_id, quantity, reserved) VALUES ($1, $2, $3)
        ON CONFLICT (product_id) DO UPDATE
        SET quantity = excluded.quantity, reserved = excluded.reserved, updated_at = now()
        RETURNING product_id, quantity, reserved, updated_at
        """,
        product_id,
        quantity,
        reserved,
    )
    assert row is not None  # INSERT ... RETURNING always returns the row
    return InventoryRecord.from_row(row)
