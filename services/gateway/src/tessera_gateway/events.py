"""`GET /v1/events`: catalog events from JetStream as Server-Sent Events.

Each client gets its own ephemeral pull consumer on stream CATALOG, starting
after its `Last-Event-ID` (the stream sequence, which is also the SSE `id`).
Pulling is what bounds memory: the next batch is fetched only once the last
one has been written to the client, and writing waits for the client's socket,
so a slow client falls behind *in the stream* (JetStream keeps the events)
instead of in the gateway's memory, and never delays anyone else.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Annotated, Any

import nats.errors
import nats.js.errors
from fastapi import FastAPI, Header, Query, Request, Security
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.responses import Response
from tessera_contracts import v1

from tessera_gateway.access import Access, Gatekeeper
from tessera_gateway.auth import CATALOG_READ
from tessera_gateway.errors import TooManyEventClients, UpstreamUnavailable
from tessera_gateway.operations import API_KEY, BEARER
from tessera_gateway.settings import Settings

logger = logging.getLogger("tessera_gateway.events")

_NATS_ERRORS = (nats.errors.Error, TimeoutError, OSError)
# The server forgets a consumer whose client vanished without deleting it.
_CONSUMER_INACTIVE_S = 30.0
_DRAIN_TIMEOUT_S = 5.0
_RESUBSCRIBE_S = 1.0


class EventHub:
    """The gateway's NATS connection and its count of SSE clients."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.client = NATS()
        self.jetstream: JetStreamContext = self.client.jetstream(timeout=5.0)
        self.clients = 0
        self._task: asyncio.Task[None] | None = None

    @property
    def connected(self) -> bool:
        return self.client.is_connected

    async def start(self) -> None:
        # In the background: the gateway serves the rest of the API while NATS is down.
        self._task = asyncio.create_task(self._connect(), name="gateway-nats-connect")

    async def _connect(self) -> None:
        # max_reconnect_attempts=-1 makes nats-py retry the first connect too.
        await self.client.connect(
            servers=[self.settings.nats_url],
            name="tessera-gateway",
            connect_timeout=2,
            reconnect_time_wait=1,
            max_reconnect_attempts=-1,
            error_cb=self._on_error,
            disconnected_cb=self._on_disconnected,
            reconnected_cb=self._on_reconnected,
        )
        logger.info("connected to NATS")

    async def stop(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if not self.client.is_closed:
            with contextlib.suppress(*_NATS_ERRORS):
                await asyncio.wait_for(self.client.close(), _DRAIN_TIMEOUT_S)

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
        except _NATS_ERRORS as error:
            logger.warning("cannot read stream %s: %r", v1.CATALOG_STREAM, error)
            raise UpstreamUnavailable(
                "the event stream is not available", upstream="nats", headers={"Retry-After": "5"}
            ) from error
        return int(info.state.last_seq)

    async def subscribe(self, after: int) -> JetStreamContext.PullSubscription:
        """A pull subscription to every catalog event after stream sequence `after`.

        Raises:
            UpstreamUnavailable: NATS or the stream cannot be reached.
        """
        if not self.connected:
            raise UpstreamUnavailable("the event stream is not reachable", upstream="nats")
        config = ConsumerConfig(
            ack_policy=AckPolicy.NONE,
            deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
            opt_start_seq=after + 1,
            inactive_threshold=_CONSUMER_INACTIVE_S,
            mem_storage=True,
            num_replicas=1,
        )
        try:
            return await self.jetstream.pull_subscribe(
                v1.CATALOG_SUBJECTS,
                stream=v1.CATALOG_STREAM,
                config=config,
                # A fetch asks for one batch; a pull that outlived its fetch may add
                # one more. Beyond that the inbox drops, which `_events` detects.
                pending_msgs_limit=self.settings.events_batch * 4,
            )
        except _NATS_ERRORS as error:
            logger.warning("cannot subscribe to %s: %r", v1.CATALOG_STREAM, error)
            raise UpstreamUnavailable(
                "the event stream is not available", upstream="nats"
            ) from error

    async def _on_error(self, exc: Exception) -> None:
        logger.warning("NATS: %s", exc or type(exc).__name__)

    async def _on_disconnected(self) -> None:
        logger.warning("disconnected from NATS; reconnecting in the background")

    async def _on_reconnected(self) -> None:
        logger.info("reconnected to NATS")


def _event(msg: Msg) -> ServerSentEvent:
    # The bytes are the catalog's CloudEvent JSON (one line): relayed as they are.
    return ServerSentEvent(
        data=msg.data.decode(), id=str(msg.metadata.sequence.stream), event=msg.subject
    )


async def _events(hub: EventHub, after: int) -> AsyncIterator[ServerSentEvent | dict[str, Any]]:
    # Everything, the count included, happens inside the generator: its finally
    # runs however the stream ends (client gone, shutdown, error).
    settings = hub.settings
    hub.clients += 1
    subscription: JetStreamContext.PullSubscription | None = None
    last = after
    try:
        while True:
            if subscription is None:
                try:
                    subscription = await hub.subscribe(last)
                except UpstreamUnavailable:
                    yield {"comment": "waiting for the event stream"}
                    await asyncio.sleep(_RESUBSCRIBE_S)
                    continue
                expected: int | None = None
            try:
                messages = await subscription.fetch(
                    settings.events_batch, timeout=settings.events_ping_s
                )
            except TimeoutError:
                # Nothing new: a comment keeps proxies from closing an idle stream.
                yield {"comment": "keep-alive"}
                continue
            except _NATS_ERRORS as error:
                # NATS restarted or the consumer expired: start again after `last`.
                logger.info("event consumer lost (%r); resubscribing after %s", error, last)
                await _unsubscribe(hub, subscription)
                subscription = None
                await asyncio.sleep(_RESUBSCRIBE_S)
                continue
            for msg in messages:
                sequence = msg.metadata.sequence
                if expected is not None and sequence.consumer != expected:
                    # A delivery went missing (dropped by a full inbox): never skip
                    # an event, re-read the stream from the last one sent.
                    logger.warning("event delivery gap; resubscribing after %s", last)
                    await _unsubscribe(hub, subscription)
                    subscription = None
                    break
                expected = sequence.consumer + 1
                yield _event(msg)
                last = sequence.stream
    finally:
        hub.clients -= 1
        if subscription is not None:
            await _unsubscribe(hub, subscription)


async def _unsubscribe(hub: EventHub, subscription: JetStreamContext.PullSubscription) -> None:
    with contextlib.suppress(*_NATS_ERRORS, ValueError):
        info = await subscription.consumer_info()
        await hub.jetstream.delete_consumer(v1.CATALOG_STREAM, info.name)
    with contextlib.suppress(*_NATS_ERRORS, ValueError):
        await subscription.unsubscribe()


def install_events(
    app: FastAPI, hub: EventHub, gatekeeper: Gatekeeper, *, anonymous_reads: bool
) -> None:
    access = Access(CATALOG_READ, anonymous=True)

    @app.get(
        "/v1/events",
        tags=["events"],
        response_class=EventSourceResponse,
        responses={
            200: {
                "description": "An endless `text/event-stream`: `id` is the stream "
                "sequence, `event` the event type (`catalog.v1.product.created`, ...), "
                "`data` a CloudEvent whose `data` is one of the catalog events.",
                "content": {"text/event-stream": {"schema": {"type": "string"}}},
            },
        },
        openapi_extra={"security": [{}]} if anonymous_reads else None,
        # For /docs only (auto_error=False): the Gatekeeper below does the checking.
        dependencies=[
            Security(BEARER, scopes=[CATALOG_READ]),
            Security(API_KEY, scopes=[CATALOG_READ]),
        ],
    )
    async def events(
        request: Request,
        last_event_id: Annotated[
            int | None,
            Header(
                alias="Last-Event-ID",
                ge=0,
                description="Resume after this event id (browsers send it when they reconnect).",
            ),
        ] = None,
        after: Annotated[
            int | None,
            Query(ge=0, description="Resume after this event id, for a first connection."),
        ] = None,
    ) -> Response:
        """Live catalog changes; reconnect with `Last-Event-ID` to miss nothing."""
        headers = gatekeeper.admit(request.scope, access)
        if hub.clients >= hub.settings.events_max_clients:
            raise TooManyEventClients(
                "too many event streams are open; retry later", headers={"Retry-After": "5"}
            )
        start = last_event_id if last_event_id is not None else after
        if start is None:
            # "From now on" is fixed here, before the response starts: an event
            # published once the client has seen the 200 is never missed.
            start = await hub.last_sequence()
        return EventSourceResponse(
            _events(hub, start),
            headers={name.decode(): value.decode() for name, value in headers}
            | {"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
            # The fetch timeout already sends keep-alive comments.
            ping=24 * 3600,
        )
