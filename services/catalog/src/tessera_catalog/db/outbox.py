"""SQL for the transactional outbox."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import asyncpg

from tessera_catalog.db.records import Executor

NOTIFY_CHANNEL = "catalog_outbox"
"""Channel the outbox trigger notifies at commit (see migration 0001)."""
# Any constant shared by all replicas; distinct from the migration and seed locks.
RELAY_LOCK_KEY = 0x7465737372656C79 & 0x7FFFFFFFFFFFFFFF


@dataclass(frozen=True, slots=True)
class OutboxRow:
    id: int
    event_id: str
    subject: str
    payload: bytes
    headers: dict[str, str]

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> OutboxRow:
        return cls(
            id=row["id"],
            event_id=row["event_id"],
            subject=row["subject"],
            payload=bytes(row["payload"]),
            headers=json.loads(row["headers"]),
        )


async def insert(
    conn: Executor, event_id: str, subject: str, payload: bytes, headers: Mapping[str, str]
) -> None:
    await conn.execute(
        "INSERT INTO outbox (event_id, subject, payload, headers) VALUES ($1, $2, $3, $4::jsonb)",
        event_id,
        subject,
        payload,
        json.dumps(dict(headers)),
    )


async def try_lock_relay(conn: Executor) -> bool:
    """Take the relay's lock until the transaction ends; false if another replica holds it."""
    return bool(await conn.fetchval("SELECT pg_try_advisory_xact_lock($1)", RELAY_LOCK_KEY))


async def pending(conn: Executor, limit: int) -> list[OutboxRow]:
    rows = await conn.fetch(
        """
        SELECT id, event_id, subject, payload, headers::text AS headers FROM outbox
        WHERE published_at IS NULL ORDER BY id LIMIT $1
        """,
        limit,
    )
    return [OutboxRow.from_row(r) for r in rows]


async def mark_published(conn: Executor, sequences: Sequence[tuple[int, int]]) -> None:
    """Stamp rows as published; `sequences` holds (outbox id, JetStream sequence)."""
    await conn.executemany(
        "UPDATE outbox SET published_at = now(), stream_seq = $2 WHERE id = $1", sequences
    )


async def backlog(conn: Executor) -> int:
    return int(await conn.fetchval("SELECT count(*) FROM outbox WHERE published_at IS NULL"))


@dataclass(frozen=True, slots=True)
class Backlog:
    pending: int
    """Rows committed and not yet published."""
    oldest_age_s: float
    """Age of the oldest of them (the next the relay publishes: outbox order), 0 when none."""


async def backlog_stats(conn: Executor, timeout_s: float) -> Backlog:
    """The backlog as the database holds it, in one statement of at most `timeout_s`.

    Both parts read the partial index of pending rows, so the cost follows the
    backlog, not the table; the age is on the database's clock alone, so clock
    skew between the catalog's hosts and PostgreSQL cannot bend it.
    """
    row = await conn.fetchrow(
        """
        SELECT
            (SELECT count(*) FROM outbox WHERE published_at IS NULL) AS pending,
            (SELECT greatest(extract(epoch FROM now() - created_at), 0)::float8
             FROM outbox WHERE published_at IS NULL ORDER BY id LIMIT 1) AS oldest_age_s
        """,
        timeout=timeout_s,
    )
    assert row is not None  # an aggregate over no rows is still one row
    return Backlog(int(row["pending"]), row["oldest_age_s"] or 0.0)


async def purge_published(conn: Executor, older_than_s: float) -> int:
    """Delete rows published more than `older_than_s` ago; returns how many."""
    status = await conn.execute(
        "DELETE FROM outbox WHERE published_at < now() - make_interval(secs => $1)",
        older_than_s,
    )
    return int(status.split()[-1])
