"""The outbox relay: publishes committed events to JetStream, in order, none lost.

Each round takes a transaction-scoped advisory lock, so with several catalog
replicas one relays at a time and the order of the outbox is the order of the
stream. It reads pending rows by id, publishes each with `Nats-Msg-Id` = event
id and waits for JetStream's ack, then stamps the acknowledged rows published in
the same transaction. A crash between ack and stamp re-publishes the event on
the next round; JetStream drops it as a duplicate (same Nats-Msg-Id within the
stream's duplicate window), so the stream holds every event exactly once.

The relay wakes on LISTEN/NOTIFY (the outbox trigger notifies at commit), falls
back to polling, and backs off exponentially while NATS is down.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

import asyncpg
import nats.errors
import nats.js.errors
from tessera_contracts import v1

from tessera_catalog.db import idempotency, outbox
from tessera_catalog.db.records import Pool
from tessera_catalog.messaging.connection import NatsConnection
from tessera_catalog.metrics import CatalogMetrics
from tessera_catalog.settings import Settings
from tessera_catalog.tasks import cancel_and_wait

logger = logging.getLogger("tessera_catalog.relay")

# Any constant shared by all replicas; distinct from the migration and seed locks.
RELAY_LOCK_KEY = 0x7465737372656C79 & 0x7FFFFFFFFFFFFFFF
_HOUSEKEEPING_INTERVAL_S = 300.0
_LISTEN_RETRY_S = 5.0


class RelayBlocked(Exception):
    """Events are pending but cannot be published now (NATS down, no stream, no ack)."""


class OutboxRelay:
    def __init__(
        self, pool: Pool, nats: NatsConnection, settings: Settings, metrics: CatalogMetrics
    ) -> None:
        self.pool = pool
        self.nats = nats
        self.settings = settings
        self.metrics = metrics
        self._wake = asyncio.Event()
        self._reconnected = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._listener: asyncpg.Connection[asyncpg.Record] | None = None
        self._listen_task: asyncio.Task[None] | None = None
        self._listen_attempted = 0.0
        self._housekeeping_done = 0.0

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="catalog-outbox-relay")

    def wake(self) -> None:
        """Run a round now: an event was committed (NOTIFY)."""
        self._wake.set()

    def nats_connected(self) -> None:
        """Run a round now, ending any backoff: NATS is (back) up."""
        self._reconnected.set()
        self._wake.set()

    async def stop(self) -> None:
        if self._task is not None:
            await cancel_and_wait(self._task)
        if self._listen_task is not None:
            # Not cancelled: a connect cancelled mid-handshake can leak its socket.
            # It is bounded by its own connect timeout.
            await asyncio.gather(self._listen_task, return_exceptions=True)
        if self._listener is not None:
            with contextlib.suppress(Exception):
                await self._listener.close(timeout=2)
            self._listener = None

    async def _run(self) -> None:
        backoff = 0.0
        while True:
            self._wake.clear()
            self._reconnected.clear()
            await self._ensure_listener()
            more = False
            try:
                published = await self.relay_once()
                more = published == self.settings.outbox_batch_size
                backoff = 0.0
            except RelayBlocked as exc:
                backoff = min(
                    max(backoff * 2, self.settings.outbox_poll_interval_s),
                    self.settings.outbox_backoff_max_s,
                )
                logger.warning("outbox relay paused %.1fs: %s", backoff, exc)
            except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError) as exc:
                backoff = self.settings.outbox_backoff_max_s
                logger.warning("outbox relay cannot reach PostgreSQL: %r", exc)
            await self._refresh_backlog()
            await self._housekeeping()
            if more:
                continue  # a full batch: there is probably more; go again at once
            # While blocked, new commits (NOTIFY) must not spin the loop; only NATS
            # coming back ends the backoff early.
            event, timeout = (
                (self._reconnected, backoff)
                if backoff
                else (self._wake, self.settings.outbox_poll_interval_s)
            )
            # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a
            # cancellation that races the event, and the relay would never stop.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await event.wait()

    async def relay_once(self) -> int:
        """Publish up to one batch of pending events; returns how many were published.

        Raises:
            RelayBlocked: NATS refused or did not acknowledge; the events published
                before that are still stamped.
        """
        if not self.nats.connected:
            # Checked per round so a disconnected client never buffers our events.
            if await self._backlog_exists():
                raise RelayBlocked("NATS is not connected")
            return 0
        failure: Exception | None = None
        done: list[tuple[int, int]] = []
        async with self.pool.acquire() as conn, conn.transaction():
            if not await conn.fetchval("SELECT pg_try_advisory_xact_lock($1)", RELAY_LOCK_KEY):
                return 0  # another replica is relaying
            for row in await outbox.pending(conn, self.settings.outbox_batch_size):
                if not self.nats.connected:
                    failure = RelayBlocked("NATS disconnected")
                    break
                try:
                    ack = await self.nats.jetstream.publish(
                        row.subject,
                        row.payload,
                        stream=v1.CATALOG_STREAM,
                        headers=dict(row.headers),
                    )
                except nats.js.errors.NoStreamResponseError as exc:
                    # Nothing listens on the subject: the stream is missing (a fresh
                    # NATS store). Recreate it; the next round publishes.
                    failure = exc
                    await self.nats.ensure_stream_quietly()
                    break
                except (nats.errors.Error, TimeoutError, OSError) as exc:
                    failure = exc
                    break
                done.append((row.id, ack.seq))
            if done:
                await outbox.mark_published(conn, done)
        self.metrics.outbox_published.inc(len(done))
        if failure is not None:
            self.metrics.outbox_publish_failures.inc()
            raise RelayBlocked(f"{type(failure).__name__}: {failure}") from failure
        return len(done)

    async def _backlog_exists(self) -> bool:
        async with self.pool.acquire() as conn:
            return bool(
                await conn.fetchval(
                    "SELECT EXISTS (SELECT 1 FROM outbox WHERE published_at IS NULL)"
                )
            )

    async def _refresh_backlog(self) -> None:
        try:
            async with self.pool.acquire() as conn:
                self.metrics.outbox_pending.set(await outbox.backlog(conn))
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError):
            pass  # the gauge keeps its last value; the relay loop logs DB trouble

    async def _housekeeping(self) -> None:
        now = time.monotonic()
        if now - self._housekeeping_done < _HOUSEKEEPING_INTERVAL_S:
            return
        self._housekeeping_done = now
        try:
            async with self.pool.acquire() as conn:
                events = await outbox.purge_published(conn, self.settings.outbox_retention_s)
                keys = await idempotency.purge_expired(conn, self.settings.idempotency_ttl_s)
            if events or keys:
                logger.info(
                    "purged %d published events and %d expired idempotency keys", events, keys
                )
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError) as exc:
            logger.warning("outbox housekeeping failed: %r", exc)

    async def _ensure_listener(self) -> None:
        # LISTEN needs a connection of its own for as long as we listen, so it is
        # not taken from the pool. Losing it only costs latency: polling goes on.
        if self._listener is not None and not self._listener.is_closed():
            return
        if self._listen_task is not None and not self._listen_task.done():
            return
        now = time.monotonic()
        if now - self._listen_attempted < _LISTEN_RETRY_S:
            return
        self._listen_attempted = now
        self._listen_task = asyncio.create_task(self._listen(), name="catalog-outbox-listen")

    async def _listen(self) -> None:
        try:
            listener = await asyncpg.connect(str(self.settings.database_url), timeout=2)
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError) as exc:
            logger.warning("cannot LISTEN for outbox notifications, polling only: %r", exc)
            return
        try:
            await listener.add_listener(outbox.NOTIFY_CHANNEL, self._on_notify)
        except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError) as exc:
            logger.warning("cannot LISTEN for outbox notifications, polling only: %r", exc)
            await listener.close(timeout=2)
            return
        self._listener = listener

    def _on_notify(self, *_args: object) -> None:
        self._wake.set()
