"""The catalog's NATS connection, made in the background so HTTP never waits for it.

The service starts and serves while NATS is down: the first connect is retried
forever by a background task, and nats-py reconnects on its own afterwards.
Whatever needs NATS asks `connected` first and degrades (enriched products) or
waits (the outbox relay) when it is not.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import cast

import nats.errors
import nats.js.errors
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext
from nats.js.api import RetentionPolicy, StorageType, StreamConfig
from tessera_contracts import v1

from tessera_catalog.settings import Settings
from tessera_catalog.tasks import cancel_and_wait

logger = logging.getLogger("tessera_catalog.nats")

_DRAIN_TIMEOUT_S = 5.0


class NatsConnection:
    """One NATS client for the service's lifetime, connected in the background."""

    def __init__(self, settings: Settings, on_connected: Callable[[], None] | None = None) -> None:
        self.settings = settings
        self.client = NATS()
        self.jetstream: JetStreamContext = self.client.jetstream(
            timeout=settings.nats_publish_timeout_s
        )
        self.on_connected = on_connected
        """Called after every (re)connect, once the stream is checked (the relay wakes)."""
        self._task: asyncio.Task[None] | None = None
        self._stream_lock = asyncio.Lock()
        self._closing = False

    @property
    def connected(self) -> bool:
        return self.client.is_connected

    def start(self) -> None:
        self._task = asyncio.create_task(self._connect(), name="catalog-nats-connect")

    async def _connect(self) -> None:
        try:
            await self._connect_forever()
        except Exception:  # a bad URL or option: retrying cannot help, but say so loudly
            logger.exception("cannot connect to NATS at all; running without it")

    async def _connect_forever(self) -> None:
        settings = self.settings
        # max_reconnect_attempts=-1 makes nats-py retry the *first* connect too,
        # every reconnect_time_wait, instead of raising when NATS is down at startup.
        await self.client.connect(
            servers=[settings.nats_url],
            name="tessera-catalog",
            # nats-py annotates these as int but only sleeps/waits on them: fractions work.
            connect_timeout=cast(int, settings.nats_connect_timeout_s),
            reconnect_time_wait=cast(int, settings.nats_reconnect_wait_s),
            max_reconnect_attempts=-1,
            error_cb=self._on_error,
            disconnected_cb=self._on_disconnected,
            reconnected_cb=self._on_reconnected,
        )
        logger.info("connected to NATS")
        await self.ensure_stream_quietly()
        if self.on_connected is not None:
            self.on_connected()

    async def ensure_stream(self) -> None:
        """Create stream CATALOG if missing, or add our subjects to it if it lacks them.

        Other settings of an existing stream (retention, replicas) are left as the
        operator set them; only a stream that does not exist gets ours.
        """
        async with self._stream_lock:
            name = v1.CATALOG_STREAM
            try:
                info = await self.jetstream.stream_info(name)
            except nats.js.errors.NotFoundError:
                config = StreamConfig(
                    name=name,
                    subjects=[v1.CATALOG_SUBJECTS],
                    storage=StorageType.FILE,
                    retention=RetentionPolicy.LIMITS,
                    max_age=self.settings.stream_max_age_s,
                    duplicate_window=self.settings.stream_duplicate_window_s,
                    num_replicas=self.settings.stream_replicas,
                )
                try:
                    await self.jetstream.add_stream(config)
                    logger.info("created JetStream stream %s", name)
                except nats.js.errors.BadRequestError:
                    # Another service (or catalog replica) created it first: fine.
                    await self.jetstream.stream_info(name)
            else:
                subjects = list(info.config.subjects or [])
                if v1.CATALOG_SUBJECTS not in subjects:
                    info.config.subjects = [*subjects, v1.CATALOG_SUBJECTS]
                    await self.jetstream.update_stream(info.config)
                    logger.info("added %s to stream %s", v1.CATALOG_SUBJECTS, name)

    async def ensure_stream_quietly(self) -> bool:
        """`ensure_stream`, logging instead of raising (callers retry later)."""
        try:
            await self.ensure_stream()
        except (nats.errors.Error, TimeoutError, OSError) as exc:
            logger.warning("could not ensure stream %s: %r", v1.CATALOG_STREAM, exc)
            return False
        return True

    async def close(self) -> None:
        self._closing = True
        if self._task is not None:
            await cancel_and_wait(self._task)
        if self.client.is_connected:
            # Drain flushes anything buffered (there are no subscriptions to drain).
            with contextlib.suppress(nats.errors.Error, TimeoutError, OSError):
                async with asyncio.timeout(_DRAIN_TIMEOUT_S):
                    await self.client.drain()
        if not self.client.is_closed:
            with contextlib.suppress(nats.errors.Error, OSError):
                await self.client.close()

    async def _on_error(self, exc: Exception) -> None:
        # nats-py reports every failed (re)connect here; one line each, no traceback.
        logger.warning("NATS: %s", exc or type(exc).__name__)

    async def _on_disconnected(self) -> None:
        if self._closing:
            return
        logger.warning("disconnected from NATS; reconnecting in the background")

    async def _on_reconnected(self) -> None:
        logger.info("reconnected to NATS")
        # A restarted server may have lost its store: check the stream again.
        await self.ensure_stream_quietly()
        if self.on_connected is not None:
            self.on_connected()
