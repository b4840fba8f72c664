"""Stream CATALOG: created by the catalog when missing, checked again after every reconnect.

A restarted NATS may have lost its store, so `ensure_quietly` runs as a hook of
the connection (`NatsConnection.on_connected`) and whenever the relay finds the
stream missing.
"""

from __future__ import annotations

import asyncio
import logging

import nats.js.errors
from nats.js import JetStreamContext
from nats.js.api import RetentionPolicy, StorageType, StreamConfig
from tessera_contracts import v1
from tessera_runtime.messaging import NATS_ERRORS

from tessera_catalog.settings import Settings

logger = logging.getLogger("tessera_catalog.nats")


class CatalogStream:
    def __init__(self, jetstream: JetStreamContext, settings: Settings) -> None:
        self.jetstream = jetstream
        self.settings = settings
        self._lock = asyncio.Lock()  # the reconnect hook and the relay may both ask

    async def ensure(self) -> None:
        """Create stream CATALOG if missing, or add our subjects to it if it lacks them.

        Other settings of an existing stream (retention, replicas) are left as the
        operator set them; only a stream that does not exist gets ours.
        """
        async with self._lock:
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

    async def ensure_quietly(self) -> bool:
        """`ensure`, logging instead of raising (callers retry later)."""
        try:
            await self.ensure()
        except NATS_ERRORS as exc:
            logger.warning("could not ensure stream %s: %r", v1.CATALOG_STREAM, exc)
            return False
        return True
