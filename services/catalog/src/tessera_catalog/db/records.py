"""Types and the connection and transaction helpers shared by the SQL modules.

They are where asyncpg's errors for a database outage become the catalog's own:
whatever a request does on a pool connection runs inside `acquire`, and every
write inside `transaction`, so a lost or refused connection answers 503 with
Retry-After instead of escaping as a 500.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from types import TracebackType
from typing import Any, ClassVar, Self, TypeAlias

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from tessera_catalog.db.query_spans import unwatch_queries, watch_queries
from tessera_catalog.errors import CommitOutcomeUnknown, DatabaseUnavailable

# What the query functions accept: a bare connection (migrations, tests) or one
# borrowed from the pool; both run in whatever transaction the caller opened.
Executor: TypeAlias = "asyncpg.Connection[asyncpg.Record] | PoolConnectionProxy[asyncpg.Record]"
Pool: TypeAlias = "asyncpg.Pool[asyncpg.Record]"

logger = logging.getLogger("tessera_catalog.db")


class Row:
    """Base of the dataclass records read from query rows: each field is the column of its name."""

    __slots__ = ()
    __dataclass_fields__: ClassVar[dict[str, dataclasses.Field[Any]]]

    @classmethod
    def from_row(cls, row: asyncpg.Record) -> Self:
        return cls(**{name: row[name] for name in cls.__dataclass_fields__})


_OUTAGE_ERRORS: tuple[type[Exception], ...] = (
    # Refused, reset, unreachable: the server or the network is gone.
    OSError,
    # No pool connection freed up, or connecting took longer than allowed.
    TimeoutError,
    # SQLSTATE class 08, and asyncpg's "connection was closed in the middle of operation".
    asyncpg.PostgresConnectionError,
    # Class 57: 57P01 fast shutdown or pg_terminate_backend, 57P02 another backend
    # crashed, 57P03 starting up / shutting down / in recovery, 57014 statement_timeout.
    asyncpg.OperatorInterventionError,
    # Class 53: too many connections, disk full, out of memory.
    asyncpg.InsufficientResourcesError,
    # 25006: connected to a standby (during a failover) that cannot take writes.
    asyncpg.ReadOnlySQLTransactionError,
    # asyncpg lost track of the protocol: seen when a dying server's FATAL
    # reaches an idle pool connection before the connection closes, and the
    # next borrower's first query fails with "another operation is in progress".
    asyncpg.InternalClientError,
)


def is_outage(exc: BaseException, connection: Executor | None = None) -> bool:
    """Whether `exc` means the database is unavailable rather than the request or code is wrong.

    asyncpg raises a plain InterfaceError ("connection is closed") for any use
    of a connection it has already lost; the same class also covers misuse, so
    it counts as an outage only when the connection is in fact closed.
    """
    if isinstance(exc, _OUTAGE_ERRORS):
        return True
    return (
        isinstance(exc, asyncpg.InterfaceError)
        and connection is not None
        and _is_closed(connection)
    )


def _is_closed(connection: Executor) -> bool:
    try:
        return connection.is_closed()
    except asyncpg.InterfaceError:
        # A pool connection that closes is detached from its proxy at once
        # ("released back to the pool"), before the borrower gives it back.
        return True


class _Borrowed:
    """A pool connection borrowed for an `async with` block: see `acquire`."""

    __slots__ = ("_connection", "_pool", "_timeout_s", "_watched")

    def __init__(self, pool: Pool, timeout_s: float) -> None:
        self._pool = pool
        self._timeout_s = timeout_s
        self._watched = False

    async def __aenter__(self) -> PoolConnectionProxy[asyncpg.Record]:
        try:
            # The bound is on the wait, here, rather than asyncpg's `acquire(timeout=)`,
            # which would also put a timer on every release.
            async with asyncio.timeout(self._timeout_s):
                self._connection: PoolConnectionProxy[asyncpg.Record] = await self._pool.acquire()
        except Exception as exc:
            if is_outage(exc):
                raise DatabaseUnavailable() from exc
            raise
        self._watched = watch_queries(self._connection)
        return self._connection

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        connection = self._connection
        try:
            if isinstance(exc, asyncpg.InternalClientError):
                # Its protocol state is unknown: the pool must not lend it again.
                _terminate(connection)
            if isinstance(exc, Exception) and is_outage(exc, connection):
                raise DatabaseUnavailable() from exc
        finally:
            if self._watched:
                unwatch_queries(connection)
            await _release(self._pool, connection, self._timeout_s)


def acquire(pool: Pool, timeout_s: float) -> _Borrowed:
    """`async with acquire(pool, timeout_s) as conn`: a pool connection for the block;
    DatabaseUnavailable (503) when the database is unreachable.

    Covers getting the connection (no free one within `timeout_s`, refused,
    "the database system is starting up") and everything the block does with it
    (the connection lost or terminated mid-query). Without the acquire bound, a
    request under overload would wait as long as the client does, holding its
    socket and memory.
    """
    return _Borrowed(pool, timeout_s)


def _terminate(connection: PoolConnectionProxy[asyncpg.Record]) -> None:
    try:
        connection.terminate()
    except asyncpg.InterfaceError:
        pass  # already closed and detached by the pool


async def _release(
    pool: Pool, connection: PoolConnectionProxy[asyncpg.Record], timeout_s: float
) -> None:
    try:
        # Giving a connection back sends nothing (see the pool's `reset` in app.py)
        # unless the block left a transaction open, which asyncpg then rolls back:
        # only that round trip needs a bound.
        timeout = timeout_s if _in_transaction(connection) else None
        await pool.release(connection, timeout=timeout)
    except Exception as exc:
        # The pool has already terminated the broken connection and opens a new
        # one on demand. What the block did stands: its answer, or its own error.
        if not is_outage(exc, connection):
            raise
        logger.info("dropped a broken pool connection on release: %r", exc)


def _in_transaction(connection: PoolConnectionProxy[asyncpg.Record]) -> bool:
    try:
        return connection.is_in_transaction()
    except asyncpg.InterfaceError:
        return False  # closed and detached by the pool: nothing to send


async def ping(conn: Executor) -> None:
    """One round trip: the connection and the server answer."""
    await conn.fetchval("SELECT 1")


@asynccontextmanager
async def transaction(connection: Executor) -> AsyncIterator[None]:
    """A transaction on `connection` that tells a failed write from one of unknown outcome.

    * The block fails: roll back. If the connection is gone, the rollback cannot
      be sent but is not needed (PostgreSQL rolls back the transaction of a
      session that ends), so the block's own error is what the client gets.
    * The connection is closed before COMMIT is sent: nothing was committed;
      DatabaseUnavailable.
    * The connection is lost after COMMIT was sent: PostgreSQL may have committed
      or not, and this process cannot find out while the server is away;
      CommitOutcomeUnknown (503) says so. A retry with the same Idempotency-Key
      is safe either way, as the stored response commits with the change.
    """
    tx = connection.transaction()
    await tx.start()
    try:
        yield
    except BaseException:
        try:
            await tx.rollback()
        except Exception as exc:
            if not is_outage(exc, connection):
                raise
            logger.debug("rollback not sent, the connection is gone: %r", exc)
        raise
    if _is_closed(connection):
        raise DatabaseUnavailable()
    try:
        await tx.commit()
    except Exception as exc:
        if is_outage(exc, connection):
            raise CommitOutcomeUnknown() from exc
        raise
