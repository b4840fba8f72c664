"""The gateway's NATS connection for `/v1/events`, and what every SSE client shares.

`EventHub` holds the connection (`tessera_runtime.messaging`: made in the
background, so the rest of the API is served while NATS is down), opens each
client's consumer, and tells waiting clients when NATS is back. `until_woken`
is how a client waits: for an operation, unless a signal (NATS is back, the
server is shutting down) comes first. Problems shared by every client (the
connection's, the stream's) are logged once per change of state, never once
per client and attempt.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable
from typing import Final, Protocol, TypeVar

from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from tessera_contracts import v1
from tessera_runtime.messaging import NATS_ERRORS, NatsConnection

from tessera_gateway.errors import UpstreamUnavailable
from tessera_gateway.settings import Settings

logger = logging.getLogger("tessera_gateway.messaging")

T = TypeVar("T")


class Signal(Protocol):
    """An `asyncio.Event` or an `anyio.Event`."""

    def is_set(self) -> bool: ...

    def wait(self) -> Awaitable[object]: ...


class Woken:
    """What `until_woken` returns when a signal came first."""


WOKEN: Final = Woken()


async def until_woken(operation: Awaitable[T], *signals: Signal) -> T | Woken:
    """`operation`'s result, or `WOKEN` (`operation` cancelled) if a signal is set first."""
    task = asyncio.ensure_future(operation)
    waiters = [asyncio.ensure_future(signal.wait()) for signal in signals]
    try:
        await asyncio.wait([task, *waiters], return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    if task.cancelled():
        return WOKEN
    return task.result()


class EventHub:
    """The gateway's NATS connection, its count of SSE clients, and what they share:
    the signal that NATS is back, and the state of the stream (for logging once)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.nats = NatsConnection(
            settings.nats_url, name="tessera-gateway", timing=settings.nats_timing
        )
        self.jetstream: JetStreamContext = self.nats.jetstream
        self.clients = 0
        self._stream_failing = False
        self.nats.on_connected(self._on_connection)

    @property
    def connected(self) -> bool:
        return self.nats.connected

    def next_connection(self) -> asyncio.Event:
        """Set when NATS is next (re)connected: a consumer from before may be gone with
        the old server, and a client waiting for NATS can go on."""
        return self.nats.next_connection()

    def _on_connection(self) -> None:
        if self.clients:
            logger.info("NATS is back; %d event streams resume", self.clients)

    async def start(self) -> None:
        # In the background: the gateway serves the rest of the API while NATS is down.
        self.nats.start()
        # But it starts serving only once the first attempt is decided, so a gateway
        # started next to a running NATS does not answer 503 for its first moments;
        # a NATS that refuses delays nothing, one that does not answer at most
        # GATEWAY_NATS_CONNECT_TIMEOUT_S.
        await self.nats.first_attempt()

    async def stop(self) -> None:
        await self.nats.close()

    def _unavailable(self, action: str, error: BaseException) -> UpstreamUnavailable:
        if not self._stream_failing:
            self._stream_failing = True
            logger.warning(
                "cannot %s stream %s: %r (not logged again until it works)",
                action,
                v1.CATALOG_STREAM,
                error,
            )
        return UpstreamUnavailable(
            "the event stream is not available", upstream="nats", headers={"Retry-After": "5"}
        )

    def _available(self) -> None:
        if self._stream_failing:
            self._stream_failing = False
            logger.info("stream %s is available again", v1.CATALOG_STREAM)

    async def last_sequence(self) -> int:
        """The sequence of the newest event in the stream (0 when empty).

        Raises:
            UpstreamUnavailable: NATS or the stream cannot be reached.
        """
        if not self.connected:
            raise UpstreamUnavailable(
                "the event stream is not reachable", upstream="nats", headers={"Retry-After": "5"}
            )
        try:
            info = await self.jetstream.stream_info(v1.CATALOG_STREAM)
        except NATS_ERRORS as error:
            raise self._unavailable("read", error) from error
        self._available()
        return int(info.state.last_seq)

    async def subscribe(self, after: int) -> tuple[JetStreamContext.PullSubscription, int]:
        """A pull subscription to every catalog event after stream sequence `after`,
        and the sequence it really starts after: the stream's newest when `after` is
        beyond it (a client's id from a stream since reset, or from elsewhere), so
        the client gets the next new event instead of waiting for a sequence that
        may never come.

        Raises:
            UpstreamUnavailable: NATS or the stream cannot be reached.
        """
        start = min(after, await self.last_sequence())
        config = ConsumerConfig(
            ack_policy=AckPolicy.NONE,
            deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
            opt_start_seq=start + 1,
            # The server forgets a consumer whose client vanished without deleting it.
            inactive_threshold=self.settings.events_consumer_inactive_s,
            mem_storage=True,
            num_replicas=1,
        )
        try:
            subscription = await self.jetstream.pull_subscribe(
                v1.CATALOG_SUBJECTS,
                stream=v1.CATALOG_STREAM,
                config=config,
                # A fetch asks for one batch; a pull that outlived its fetch may add
                # one more. Beyond that the inbox drops, which the stream detects.
                pending_msgs_limit=self.settings.events_batch * 4,
            )
        except NATS_ERRORS as error:
            raise self._unavailable("subscribe to", error) from error
        self._available()
        return subscription, start
