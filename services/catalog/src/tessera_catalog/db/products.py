"""SQL for products. Functions take a connection so callers choose the transaction."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from tessera_catalog.db.records import Executor, Row

_COLUMNS = (
    "id, sku, name, description, category, price, currency, features, "
    "created_at, updated_at, version"
)
# Columns a PATCH may change; anything else in `changes` is a programming error.
UPDATABLE = frozenset({"sku", "name", "description", "category", "price", "currency", "features"})


@dataclass(frozen=True, slots=True)
class NewProduct:
    """The columns a create sets."""

    sku: str
    name: str
    description: str
    category: str
    price: Decimal
    currency: str
    features: list[float] | None


@dataclass(frozen=True, slots=True)
class ProductRecord(NewProduct, Row):
    """A stored product: the columns its create set, and those the database keeps."""

    id: UUID
    created_at: datetime
    updated_at: datetime
    version: int


@dataclass(frozen=True, slots=True)
class ProductFilter:
    q: str | None = None
    """Full-text query over name and description (websearch syntax)."""
    category: str | None = None


async def insert(conn: Executor, product_id: UUID, new: NewProduct) -> ProductRecord:
    row = await conn.fetchrow(
        f"""
        INSERT INTO products (id, sku, name, description, category, price, currency, features)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
        RETURNING {_COLUMNS}
        """,
        product_id,
        new.sku,
        new.name,
        new.description,
        new.category,
        new.price,
        new.currency,
        new.features,
    )
    assert row is not None  # INSERT ... RETURNING always returns the row
    return ProductRecord.from_row(row)


async def get(
    conn: Executor, product_id: UUID, *, for_update: bool = False
) -> ProductRecord | None:
    lock = " FOR UPDATE" if for_update else ""
    row = await conn.fetchrow(f"SELECT {_COLUMNS} FROM products WHERE id = $1{lock}", product_id)
    return None if row is None else ProductRecord.from_row(row)


async def exists(conn: Executor, product_id: UUID) -> bool:
    return bool(
        await conn.fetchval("SELECT EXISTS (SELECT 1 FROM products WHERE id = $1)", product_id)
    )


async def update(conn: Executor, product_id: UUID, changes: Mapping[str, Any]) -> ProductRecord:
    """Apply `changes` and bump the version; the caller holds the row lock."""
    unknown = set(changes) - UPDATABLE
    if unknown:
        raise ValueError(f"not updatable: {sorted(unknown)}")
    names = sorted(changes)
    assignments = ", ".join(f"{name} = ${index}" for index, name in enumerate(names, start=2))
    values = [
        list(changes[n]) if n == "features" and changes[n] is not None else changes[n]
        for n in names
    ]
    row = await conn.fetchrow(
        f"""
        UPDATE products
        SET {assignments}, version = version + 1, updated_at = greatest(now(), created_at)
        WHERE id = $1
        RETURNING {_COLUMNS}
        """,
        product_id,
        *values,
    )
    assert row is not None  # the caller locked the row, so it still exists
    return ProductRecord.from_row(row)


async def delete(conn: Executor, product_id: UUID) -> ProductRecord | None:
    row = await conn.fetchrow(
        f"DELETE FROM products WHERE id = $1 RETURNING {_COLUMNS}", product_id
    )
    return None if row is None else ProductRecord.from_row(row)


def _where(filters: ProductFilter, first_param: int) -> tuple[str, list[object]]:
    # Only fixed SQL fragments are concatenated; every value travels as a parameter.
    clauses: list[str] = []
    params: list[object] = []
    if filters.q is not None:
        params.append(filters.q)
        clauses.append(
            f"search @@ websearch_to_tsquery('english', ${first_param + len(params) - 1})"
        )
    if filters.category is not None:
        params.append(filters.category)
        clauses.append(f"category = ${first_param + len(params) - 1}")
    return (" AND ".join(clauses) or "TRUE"), params


async def list_page(
    conn: Executor, filters: ProductFilter, *, offset: int, limit: int
) -> tuple[list[ProductRecord], int]:
    """One offset page in (created_at, id) order, and the total matching rows."""
    where, params = _where(filters, 3)
    rows = await conn.fetch(
        f"""
        SELECT {_COLUMNS}, count(*) OVER () AS total
        FROM products WHERE {where}
        ORDER BY created_at, id
        OFFSET $1 LIMIT $2
        """,
        offset,
        limit,
        *params,
    )
    if rows:
        return [ProductRecord.from_row(r) for r in rows], int(rows[0]["total"])
    # Past the last page the window function has no row to ride on.
    where, params = _where(filters, 1)
    total = await conn.fetchval(f"SELECT count(*) FROM products WHERE {where}", *params)
    return [], int(total)


async def list_after(
    conn: Executor,
    filters: ProductFilter,
    *,
    after: tuple[datetime, UUID] | None,
    limit: int,
) -> list[ProductRecord]:
    """Up to `limit` rows after the keyset position `after`, in (created_at, id) order."""
    where, params = _where(filters, 2 if after is None else 4)
    keyset = "TRUE" if after is None else "(created_at, id) > ($2, $3)"
    rows = await conn.fetch(
        f"""
        SELECT {_COLUMNS} FROM products
        WHERE {keyset} AND {where}
        ORDER BY created_at, id
        LIMIT $1
        """,
        limit,
        *(() if after is None else after),
        *params,
    )
    return [ProductRecord.from_row(r) for r in rows]
