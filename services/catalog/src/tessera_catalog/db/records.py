"""Types and the pool helper shared by the SQL modules."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TypeAlias

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from tessera_catalog.errors import DatabaseUnavailable

# What the query functions accept: a bare connection (migrations, tests) or one
# borrowed from the pool; both run in whatever transaction the caller opened.
Executor: TypeAlias = "asyncpg.Connection[asyncpg.Record] | PoolConnectionProxy[asyncpg.Record]"
Pool: TypeAlias = "asyncpg.Pool[asyncpg.Record]"


@asynccontextmanager
async def acquire(
    pool: Pool, timeout_s: float
) -> AsyncIterator[PoolConnectionProxy[asyncpg.Record]]:
    """A pool connection, or DatabaseUnavailable (503) if none frees up within `timeout_s`.

    Without the bound, a request under overload would wait for a connection for
    as long as the client waits, holding its socket and memory.
    """
    try:
        connection = await pool.acquire(timeout=timeout_s)
    except (TimeoutError, OSError, asyncpg.PostgresConnectionError) as exc:
        raise DatabaseUnavailable() from exc
    try:
        yield connection
    finally:
        await pool.release(connection)
