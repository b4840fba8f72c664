"""SQL for reviews."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from uuid import UUID

from tessera_catalog.db.records import Executor, Row

_COLUMNS = "id, product_id, rating, title, body, author, created_at"


@dataclass(frozen=True, slots=True)
class ReviewRecord(Row):
    id: UUID
    product_id: UUID
    rating: int
    title: str
    body: str
    author: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class NewReview:
    rating: int
    title: str
    body: str
    author: str


@dataclass(frozen=True, slots=True)
class ReviewSummary:
    count: int
    average_rating: float | None
    """None when there are no reviews: an average of nothing is not zero."""


async def insert(conn: Executor, review_id: UUID, product_id: UUID, new: NewReview) -> ReviewRecord:
    row = await conn.fetchrow(
        f"""
        INSERT INTO reviews (id, product_id, rating, title, body, author)
        VALUES ($1, $2, $3, $4, $5, $6)
        RETURNING {_COLUMNS}
        """,
        review_id,
        product_id,
        new.rating,
        new.title,
        new.body,
        new.author,
    )
    assert row is not None  # INSERT ... RETURNING always returns the row
    return ReviewRecord.from_row(row)


async def list_page(
    conn: Executor, product_id: UUID, *, offset: int, limit: int
) -> tuple[list[ReviewRecord], int]:
    """Newest first, and the product's total review count."""
    rows = await conn.fetch(
        f"""
        SELECT {_COLUMNS}, count(*) OVER () AS total FROM reviews
        WHERE product_id = $1
        ORDER BY created_at DESC, id DESC
        OFFSET $2 LIMIT $3
        """,
        product_id,
        offset,
        limit,
    )
    if rows:
        return [ReviewRecord.from_row(r) for r in rows], int(rows[0]["total"])
    total = await conn.fetchval("SELECT count(*) FROM reviews WHERE product_id = $1", product_id)
    return [], int(total)


async def recent_with_summary(
    conn: Executor, product_id: UUID, *, limit: int
) -> tuple[list[ReviewRecord], ReviewSummary]:
    """The newest `limit` reviews plus count and average over all of them, in one query."""
    rows = await conn.fetch(
        f"""
        SELECT {_COLUMNS}, count(*) OVER () AS total, avg(rating) OVER () AS average
        FROM reviews WHERE product_id = $1
        ORDER BY created_at DESC, id DESC
        LIMIT $2
        """,
        product_id,
        limit,
    )
    if not rows:
        return [], ReviewSummary(count=0, average_rating=None)
    average: Decimal = rows[0]["average"]
    summary = ReviewSummary(count=int(rows[0]["total"]), average_rating=round(float(average), 2))
    return [ReviewRecord.from_row(r) for r in rows], summary
