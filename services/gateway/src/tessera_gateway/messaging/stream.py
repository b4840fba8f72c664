"""One client's event stream: its pull consumer, read batch by batch, as SSE events.

Pulling is what bounds memory: the next batch is fetched only once the last one
has been written to the client, and writing waits for the client's socket, so a
slow client falls behind *in the stream* (JetStream keeps the events) instead of
in the gateway's memory, and never delays anyone else.

A client's waits (for the next batch, or for NATS) also end when NATS comes
back, so it reopens its consumer soon rather than after its fetch timeout, and
when the server shuts down, so its stream ends cleanly with a `retry:` hint.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import AsyncIterator
from typing import Any, Final

import anyio
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from sse_starlette import ServerSentEvent
from tessera_contracts import v1
from tessera_runtime import nats_tracing
from tessera_runtime.messaging import NATS_ERRORS

from tessera_gateway.clients.resilience import backoff_s
from tessera_gateway.errors import UpstreamUnavailable
from tessera_gateway.messaging.hub import EventHub, Woken, until_woken

logger = logging.getLogger("tessera_gateway.messaging")

_WAITING: Final = {"comment": "waiting for the event stream"}
_KEEP_ALIVE: Final = {"comment": "keep-alive"}


def _event(msg: Msg) -> ServerSentEvent:
    # The bytes are the catalog's CloudEvent JSON (one line): relayed as they are.
    return ServerSentEvent(
        data=msg.data.decode(), id=str(msg.metadata.sequence.stream), event=msg.subject
    )


async def event_stream(
    hub: EventHub, after: int, shutdown: anyio.Event, *, announce: bool = False
) -> AsyncIterator[ServerSentEvent | dict[str, Any]]:
    """Every catalog event after stream sequence `after`, as SSE, until `shutdown` is set.

    `announce`: first send `after` as an `id` alone (no event is dispatched), for a
    stream the gateway positioned ("from now"): a client whose connection drops
    before the first event, even while NATS is unreachable, resumes from there
    instead of from a later "now", missing nothing in between.
    """
    # Everything, the count included, happens inside the generator: its finally
    # runs however the stream ends (client gone, shutdown, error).
    settings = hub.settings
    hub.clients += 1
    subscription: JetStreamContext.PullSubscription | None = None
    expected: int | None = None
    last = after
    failures = 0  # in a row, for the backoff

    def backoff() -> float:
        return backoff_s(
            failures,
            settings.events_resubscribe_backoff_s,
            settings.events_resubscribe_backoff_max_s,
        )

    async def spread() -> None:
        # Every client is woken by the same reconnection: a random pause of each
        # keeps their JetStream calls (consumer delete, stream info, consumer
        # create) from all reaching the new server at the same moment.
        if not shutdown.is_set():
            jitter = random.uniform(0.0, settings.events_resubscribe_jitter_s)
            await until_woken(asyncio.sleep(jitter), shutdown)

    async def pause(seconds: float, reconnected: asyncio.Event) -> None:
        if isinstance(await until_woken(asyncio.sleep(seconds), reconnected, shutdown), Woken):
            await spread()

    try:
        if announce:
            yield ServerSentEvent(id=str(after))
        while not shutdown.is_set():
            # Taken before anything can fail, so a reconnection in between is not missed.
            reconnected = hub.next_connection()
            if subscription is None:
                try:
                    subscription, start = await hub.subscribe(last)
                except UpstreamUnavailable:
                    failures += 1
                    yield _WAITING
                    # Without NATS, nothing to retry until it is back (the comment
                    # above keeps the connection open meanwhile).
                    await pause(backoff() if hub.connected else settings.events_ping_s, reconnected)
                    continue
                expected = None
                if start < last:
                    # An `id` alone moves the client's Last-Event-ID onto the stream
                    # (no event is dispatched), so a reconnect does not resend the old one.
                    yield ServerSentEvent(id=str(start))
                    last = start
            try:
                batch = await until_woken(
                    subscription.fetch(settings.events_batch, timeout=settings.events_ping_s),
                    reconnected,
                    shutdown,
                )
            except TimeoutError:
                # Nothing new: a comment keeps proxies from closing an idle stream.
                failures = 0
                yield _KEEP_ALIVE
                continue
            except NATS_ERRORS as error:
                # The consumer is gone (expired, or NATS restarted): start again after `last`.
                logger.debug("event consumer lost (%r); resubscribing after %s", error, last)
                await _unsubscribe(hub, subscription)
                subscription = None
                failures += 1
                await pause(backoff(), reconnected)
                continue
            if isinstance(batch, Woken):
                if not shutdown.is_set():
                    # NATS is back: the consumer may have gone with the old server.
                    await spread()
                    await _unsubscribe(hub, subscription)
                    subscription = None
                continue
            failures = 0
            for msg in batch:
                sequence = msg.metadata.sequence
                if expected is not None and sequence.consumer != expected:
                    # A delivery went missing (dropped by a full inbox): never skip
                    # an event, re-read the stream from the last one sent.
                    logger.warning("event delivery gap; resubscribing after %s", last)
                    await _unsubscribe(hub, subscription)
                    subscription = None
                    break
                expected = sequence.consumer + 1
                # Until the client's socket took it; linked to the request that wrote it.
                delivery = nats_tracing.start_delivery(msg)
                try:
                    yield _event(msg)
                finally:
                    if delivery is not None:
                        delivery.end()
                last = sequence.stream
        # Shutting down: the generator ends, so the response is completed (the final
        # chunk) instead of cut off; an EventSource reconnects after `retry` ms.
        yield ServerSentEvent(
            comment="the gateway is shutting down; reconnect with Last-Event-ID",
            retry=settings.events_retry_ms,
        )
    finally:
        hub.clients -= 1
        if subscription is not None:
            await _unsubscribe(hub, subscription)


async def _unsubscribe(hub: EventHub, subscription: JetStreamContext.PullSubscription) -> None:
    if hub.connected:
        # Without NATS there is no one to tell: the server drops the consumer itself.
        with contextlib.suppress(*NATS_ERRORS, ValueError):
            info = await subscription.consumer_info()
            await hub.jetstream.delete_consumer(v1.CATALOG_STREAM, info.name)
    with contextlib.suppress(*NATS_ERRORS, ValueError):
        await subscription.unsubscribe()
