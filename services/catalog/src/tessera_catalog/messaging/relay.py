"""The outbox relay: publishes committed events to JetStream, in order, none lost.

Each round takes a transaction-scoped advisory lock, so with several catalog
replicas one relays at a time and the order of the outbox is the order of the
stream. It reads pending rows by id, publishes each with `Nats-Msg-Id` = event
id and waits for JetStream's ack, then stamps the acknowledged rows published in
the same transaction. A crash between ack and stamp re-publishes the event on
the next round; JetStream drops it as a duplicate (same Nats-Msg-Id within the
stream's duplicate window), so the stream holds every event exactly once.

When it runs:

- at once on NOTIFY: the outbox trigger notifies at commit, and the relay
  LISTENs on a connection of its own, reopened (and LISTENing again) whenever
  it is lost; a poll every `outbox_poll_interval_s` covers the gaps;
- after a failed round, after a capped exponential backoff with jitter. The
  backoff ends early when its cause is gone: NATS reconnecting for a NATS
  failure, the LISTEN connection coming back for a PostgreSQL one. New commits
  do not end it, so a write load cannot turn an outage into a busy loop;
- at shutdown, until the outbox is drained, for at most `outbox_shutdown_grace_s`.

`catalog_outbox_pending` and `catalog_outbox_lag_seconds` are counted in the
database by a task of its own, so they stay true while the relay backs off or
is stuck, and whichever replica relays; they keep their last values while
PostgreSQL cannot be reached.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from contextlib import AbstractAsyncContextManager

import asyncpg
import nats.js.errors
from asyncpg.pool import PoolConnectionProxy
from tessera_contracts import v1
from tessera_runtime import nats_tracing
from tessera_runtime.messaging import NATS_ERRORS, NatsConnection
from tessera_runtime.tasks import cancel_and_wait

from tessera_catalog.db import idempotency, outbox
from tessera_catalog.db.records import Pool, acquire
from tessera_catalog.errors import DatabaseUnavailable
from tessera_catalog.messaging.backoff import Backoff
from tessera_catalog.messaging.stream import CatalogStream
from tessera_catalog.metrics import CatalogMetrics
from tessera_catalog.settings import Settings

logger = logging.getLogger("tessera_catalog.relay")

LISTENER_APPLICATION_NAME = "tessera-catalog-outbox"
"""`application_name` of the relay's LISTEN connection (as seen in pg_stat_activity)."""
_HOUSEKEEPING_INTERVAL_S = 300.0
_LISTEN_CONNECT_TIMEOUT_S = 2.0
_LISTEN_CLOSE_TIMEOUT_S = 2.0
# Counting reads the partial index of pending rows: quick even for a backlog of
# millions. Past this something is wrong, and the gauges keep their last values.
_BACKLOG_QUERY_TIMEOUT_S = 2.0
# DatabaseUnavailable: from `records.acquire`, which also drops a connection left
# in an unknown protocol state; the raw errors: from the LISTEN connection.
_DB_ERRORS = (
    DatabaseUnavailable,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    OSError,
    TimeoutError,
)


class RelayBlocked(Exception):
    """Events are pending but cannot be published now (NATS down, no stream, no ack)."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        """Label of catalog_outbox_publish_failures_total (metrics.PUBLISH_FAILURE_REASONS)."""


class OutboxRelay:
    def __init__(
        self,
        pool: Pool,
        nats: NatsConnection,
        stream: CatalogStream,
        settings: Settings,
        metrics: CatalogMetrics,
    ) -> None:
        self.pool = pool
        self.nats = nats
        self.stream = stream
        self.settings = settings
        self.metrics = metrics
        self._wake = asyncio.Event()
        """A round is due: NOTIFY, the LISTEN connection (re)opened, NATS back, stop()."""
        self._nats_back = asyncio.Event()
        self._postgres_back = asyncio.Event()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None
        self._listen_task: asyncio.Task[None] | None = None
        self._backlog_task: asyncio.Task[None] | None = None
        self._listener: asyncpg.Connection[asyncpg.Record] | None = None
        self._housekeeping_done = 0.0

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="catalog-outbox-relay")
        self._listen_task = asyncio.create_task(self._listen(), name="catalog-outbox-listen")
        self._backlog_task = asyncio.create_task(
            self._watch_backlog(), name="catalog-outbox-backlog"
        )

    def nats_connected(self) -> None:
        """Run a round now, ending any backoff: NATS is (back) up (a connection hook)."""
        self._nats_back.set()
        self._wake.set()

    async def stop(self) -> None:
        """Publish what is pending (within the shutdown grace), then stop every task."""
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            grace = self.settings.outbox_shutdown_grace_s
            done, _ = await asyncio.wait({self._task}, timeout=grace)
            if not done:
                logger.warning(
                    "outbox not drained within the shutdown grace (%gs); the pending "
                    "events stay in the outbox for the next relay",
                    grace,
                )
            await cancel_and_wait(self._task)
        listener = self._listener
        if listener is not None:  # closed politely; the listen task then ends
            with contextlib.suppress(Exception):
                await listener.close(timeout=_LISTEN_CLOSE_TIMEOUT_S)
        for task in (self._listen_task, self._backlog_task):
            if task is not None:
                # A connect cancelled mid-handshake closes its socket (asyncpg
                # closes the transport on CancelledError).
                await cancel_and_wait(task)

    async def _run(self) -> None:
        backoff = Backoff(
            self.settings.outbox_backoff_initial_s, self.settings.outbox_backoff_max_s
        )
        while True:
            self._wake.clear()
            self._nats_back.clear()
            self._postgres_back.clear()
            try:
                published = await self.relay_once()
            except RelayBlocked as exc:
                await self._pause(backoff, self._nats_back, f"outbox relay blocked: {exc}")
                continue
            except _DB_ERRORS as exc:
                await self._pause(
                    backoff, self._postgres_back, f"outbox relay cannot reach PostgreSQL: {exc!r}"
                )
                continue
            except Exception:
                # A bug in one round must not end relaying for the process's lifetime.
                logger.exception("outbox relay round failed")
                await asyncio.sleep(backoff.next_pause())
                continue
            if backoff.failures:
                logger.info(
                    "outbox relay resumed after %d failed attempts over %.1fs",
                    backoff.failures,
                    backoff.failing_for(),
                )
                backoff.reset()
            if published == self.settings.outbox_batch_size:
                continue  # a full batch: there is probably more; go again at once
            if self._stopping:
                return  # drained: the shutdown flush is done
            await self._housekeeping()
            await _wait(self._wake, self.settings.outbox_poll_interval_s)

    async def _pause(self, backoff: Backoff, cause_gone: asyncio.Event, message: str) -> None:
        pause = backoff.next_pause()
        # One warning per outage; the attempts after it go to DEBUG, the metrics
        # (failures, pending) show the outage going on.
        level = logging.WARNING if backoff.failures == 1 else logging.DEBUG
        logger.log(level, "%s; retrying in %.2fs (attempt %d)", message, pause, backoff.failures)
        await _wait(cause_gone, pause)

    async def relay_once(self) -> int:
        """Publish up to one batch of pending events; returns how many were published.

        Raises:
            RelayBlocked: events are pending and NATS refused, did not acknowledge
                or is not connected; the events published before that are stamped.
            asyncpg.PostgresError, OSError, TimeoutError: PostgreSQL is unreachable.
        """
        if not self.nats.connected:
            # Checked per round so a disconnected client never buffers our events.
            if await self._backlog_exists():
                self._count_failure("disconnected")
                raise RelayBlocked("disconnected", "NATS is not connected")
            return 0
        failure: RelayBlocked | None = None
        done: list[tuple[int, int]] = []
        async with self._acquire() as conn, conn.transaction():
            if not await outbox.try_lock_relay(conn):
                return 0  # another replica is relaying
            for row in await outbox.pending(conn, self.settings.outbox_batch_size):
                if not self.nats.connected:
                    failure = RelayBlocked("disconnected", "NATS disconnected")
                    break
                try:
                    # Its span links to the writer's context, stored with the row.
                    ack = await nats_tracing.publish(
                        self.nats.jetstream,
                        row.subject,
                        row.payload,
                        stream=v1.CATALOG_STREAM,
                        headers=row.headers,
                        timeout=self.settings.nats_publish_timeout_s,
                    )
                except nats.js.errors.NoStreamResponseError as exc:
                    # Nothing listens on the subject: the stream is missing (a fresh
                    # NATS store). Recreate it; the next round publishes.
                    failure = RelayBlocked("no_stream", repr(exc))
                    await self.stream.ensure_quietly()
                    break
                except NATS_ERRORS as exc:
                    # nats-py's TimeoutError is also the builtin one: no ack in time.
                    if not self.nats.connected:
                        reason = "disconnected"
                    elif isinstance(exc, TimeoutError):
                        reason = "timeout"
                    else:
                        reason = "error"
                    failure = RelayBlocked(reason, repr(exc))
                    break
                done.append((row.id, ack.seq))
            if done:
                await outbox.mark_published(conn, done)
        self.metrics.outbox_published.inc(len(done))
        if failure is not None:
            self._count_failure(failure.reason)
            raise failure
        return len(done)

    def _count_failure(self, reason: str) -> None:
        self.metrics.outbox_publish_failures.labels(reason).inc()

    def _acquire(self) -> AbstractAsyncContextManager[PoolConnectionProxy[asyncpg.Record]]:
        # Bounded like a request's, so a round fails (and backs off) instead of
        # hanging while PostgreSQL is unreachable.
        return acquire(self.pool, self.settings.pool_acquire_timeout_s)

    async def _backlog_exists(self) -> bool:
        async with self._acquire() as conn:
            return await outbox.backlog(conn) > 0

    async def _watch_backlog(self) -> None:
        # Its own loop, not a step of the relay's: the relay may be backing off
        # for seconds while writes keep adding to the backlog.
        while True:
            try:
                async with self._acquire() as conn:
                    backlog = await outbox.backlog_stats(conn, _BACKLOG_QUERY_TIMEOUT_S)
                self.metrics.outbox_counted(backlog)
            except _DB_ERRORS as exc:
                # The gauges keep their last values; the relay logs the outage.
                logger.debug("cannot count the outbox backlog: %r", exc)
            except Exception:
                # A bug here must not freeze the gauges for the process's lifetime.
                logger.exception("counting the outbox backlog failed")
            await asyncio.sleep(self.settings.outbox_pending_refresh_s)

    async def _housekeeping(self) -> None:
        now = time.monotonic()
        if now - self._housekeeping_done < _HOUSEKEEPING_INTERVAL_S:
            return
        self._housekeeping_done = now
        try:
            async with self._acquire() as conn:
                events = await outbox.purge_published(conn, self.settings.outbox_retention_s)
                keys = await idempotency.purge_expired(conn, self.settings.idempotency_ttl_s)
            if events or keys:
                logger.info(
                    "purged %d published events and %d expired idempotency keys", events, keys
                )
        except _DB_ERRORS as exc:
            logger.warning("outbox housekeeping failed: %r", exc)

    async def _listen(self) -> None:
        # LISTEN needs a connection of its own for as long as we listen, so it is
        # not taken from the pool. Losing it costs latency only (polling goes on),
        # and it is also how the relay learns that PostgreSQL is back.
        ceiling = self.settings.outbox_listen_retry_max_s
        backoff = Backoff(min(self.settings.outbox_backoff_initial_s, ceiling), ceiling)
        while not self._stopping:
            listener = await self._open_listener(quiet=backoff.failures > 0)
            if listener is None:
                await asyncio.sleep(backoff.next_pause())
                continue
            if backoff.failures:
                logger.info("LISTEN connection for outbox notifications reopened")
            backoff.reset()
            await self._listen_until_lost(listener)
            if not self._stopping:
                logger.warning("lost the LISTEN connection for outbox notifications; reopening")

    async def _listen_until_lost(self, listener: asyncpg.Connection[asyncpg.Record]) -> None:
        lost = asyncio.Event()
        listener.add_termination_listener(lambda _connection: lost.set())
        if listener.is_closed():  # lost before the callback was in place
            return
        self._listener = listener
        # Commits made while nobody listened sent us no NOTIFY: a round finds
        # them now, and ends a backoff the relay is in because of PostgreSQL.
        self._postgres_back.set()
        self._wake.set()
        try:
            await lost.wait()
        finally:
            self._listener = None
            if not listener.is_closed():  # cancelled: no time left to close it politely
                listener.terminate()

    async def _open_listener(self, *, quiet: bool) -> asyncpg.Connection[asyncpg.Record] | None:
        """A connection LISTENing on the outbox channel, or None (logged) when PostgreSQL refuses."""
        try:
            listener = await asyncpg.connect(
                str(self.settings.database_url),
                timeout=_LISTEN_CONNECT_TIMEOUT_S,
                server_settings={"application_name": LISTENER_APPLICATION_NAME},
            )
        except _DB_ERRORS as exc:
            self._log_listen_failure(exc, quiet=quiet)
            return None
        try:
            await listener.add_listener(outbox.NOTIFY_CHANNEL, self._on_notify)
        except _DB_ERRORS as exc:
            self._log_listen_failure(exc, quiet=quiet)
            with contextlib.suppress(Exception):
                await listener.close(timeout=_LISTEN_CLOSE_TIMEOUT_S)
            return None
        except BaseException:
            listener.terminate()  # cancelled by stop(): close the socket, do not leak it
            raise
        return listener

    def _log_listen_failure(self, exc: Exception, *, quiet: bool) -> None:
        level = logging.DEBUG if quiet else logging.WARNING
        logger.log(level, "cannot LISTEN for outbox notifications (polling meanwhile): %r", exc)

    def _on_notify(self, *_args: object) -> None:
        self._wake.set()


async def _wait(event: asyncio.Event, timeout: float) -> None:
    """Until `event` is set or `timeout` seconds have passed."""
    # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a
    # cancellation that races the event, and the relay would never stop.
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(timeout):
            await event.wait()
