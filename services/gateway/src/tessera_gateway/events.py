"""`GET /v1/events`: catalog events from JetStream as Server-Sent Events.

Each client gets its own ephemeral pull consumer on stream CATALOG, starting
after its `Last-Event-ID` (the stream sequence, which is also the SSE `id`).
Pulling is what bounds memory: the next batch is fetched only once the last
one has been written to the client, and writing waits for the client's socket,
so a slow client falls behind *in the stream* (JetStream keeps the events)
instead of in the gateway's memory, and never delays anyone else.

A client's waits (for the next batch, or for NATS) also end when NATS comes
back, so it reopens its consumer at once rather than after its fetch timeout,
and when the server shuts down, so its stream ends cleanly with a `retry:` hint.
Problems shared by every client (NATS or the stream unavailable) are logged by
the hub once per change of state, never once per client and attempt.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable
from typing import Annotated, Any, Final, Protocol, TypeVar, cast

import anyio
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
from tessera_gateway.resilience import backoff_s
from tessera_gateway.settings import Settings

logger = logging.getLogger("tessera_gateway.events")

_NATS_ERRORS = (nats.errors.Error, TimeoutError, OSError)
# The server forgets a consumer whose client vanished without deleting it.
_CONSUMER_INACTIVE_S = 30.0
_DRAIN_TIMEOUT_S = 5.0
_CONNECT_TIMEOUT_S = 2
STREAM_SEQUENCE_MAX: Final = 2**64 - 1
"""JetStream stream sequences (our SSE ids) are unsigned 64-bit integers."""

T = TypeVar("T")


class _Signal(Protocol):
    """An `asyncio.Event` or an `anyio.Event`."""

    def is_set(self) -> bool: ...

    def wait(self) -> Awaitable[object]: ...


class _Woken:
    """What `_until` returns when a signal came first."""


_WOKEN: Final = _Woken()


async def _until(operation: Awaitable[T], *signals: _Signal) -> T | _Woken:
    """`operation`'s result, or `_WOKEN` (`operation` cancelled) if a signal is set first."""
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
        return _WOKEN
    return task.result()


class EventHub:
    """The gateway's NATS connection, its count of SSE clients, and what they share:
    the signal that NATS is back, and the state of the stream (for logging once)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.client = NATS()
        self.jetstream: JetStreamContext = self.client.jetstream(timeout=5.0)
        self.clients = 0
        self._task: asyncio.Task[None] | None = None
        self._connected = asyncio.Event()
        self._stream_failing = False
        self._errors_logged: set[str] = set()
        self._stopping = False
        self._first_attempt = asyncio.Event()

    @property
    def connected(self) -> bool:
        return self.client.is_connected

    def next_connection(self) -> asyncio.Event:
        """Set when NATS is next (re)connected: a consumer from before may be gone with
        the old server, and a client waiting for NATS can go on."""
        return self._connected

    def _on_connection(self) -> None:
        self._errors_logged.clear()
        connected, self._connected = self._connected, asyncio.Event()
        connected.set()

    async def start(self) -> None:
        # In the background: the gateway serves the rest of the API while NATS is down.
        self._task = asyncio.create_task(self._connect(), name="gateway-nats-connect")
        # But it starts serving only once the first attempt is decided, so a gateway
        # started next to a running NATS does not answer 503 for its first moments;
        # a NATS that refuses delays nothing, one that does not answer at most this.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(_CONNECT_TIMEOUT_S):
                await self._first_attempt.wait()

    async def _connect(self) -> None:
        # max_reconnect_attempts=-1 makes nats-py retry the first connect too.
        await self.client.connect(
            servers=[self.settings.nats_url],
            name="tessera-gateway",
            connect_timeout=_CONNECT_TIMEOUT_S,
            # Annotated `int` by nats-py, used as seconds of any kind.
            reconnect_time_wait=cast(int, self.settings.nats_reconnect_wait_s),
            max_reconnect_attempts=-1,
            error_cb=self._on_error,
            disconnected_cb=self._on_disconnected,
            reconnected_cb=self._on_reconnected,
        )
        logger.info("connected to NATS")
        self._first_attempt.set()
        self._on_connection()

    async def stop(self) -> None:
        self._stopping = True
        if self._task is not None and not self._task.done():
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if not self.client.is_closed:
            with contextlib.suppress(*_NATS_ERRORS):
                await asyncio.wait_for(self.client.close(), _DRAIN_TIMEOUT_S)

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
        except _NATS_ERRORS as error:
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
            inactive_threshold=_CONSUMER_INACTIVE_S,
            mem_storage=True,
            num_replicas=1,
        )
        try:
            subscription = await self.jetstream.pull_subscribe(
                v1.CATALOG_SUBJECTS,
                stream=v1.CATALOG_STREAM,
                config=config,
                # A fetch asks for one batch; a pull that outlived its fetch may add
                # one more. Beyond that the inbox drops, which `_events` detects.
                pending_msgs_limit=self.settings.events_batch * 4,
            )
        except _NATS_ERRORS as error:
            raise self._unavailable("subscribe to", error) from error
        self._available()
        return subscription, start

    async def _on_error(self, exc: Exception) -> None:
        self._first_attempt.set()
        # nats-py reports each failed reconnect attempt: once per kind and outage is enough.
        kind = type(exc).__name__
        if kind not in self._errors_logged:
            self._errors_logged.add(kind)
            logger.warning("NATS: %s", exc or kind)

    async def _on_disconnected(self) -> None:
        if not self._stopping:  # closing it ourselves is no news
            logger.warning("disconnected from NATS; reconnecting in the background")

    async def _on_reconnected(self) -> None:
        logger.info("reconnected to NATS; %d event streams resume", self.clients)
        self._on_connection()


def _event(msg: Msg) -> ServerSentEvent:
    # The bytes are the catalog's CloudEvent JSON (one line): relayed as they are.
    return ServerSentEvent(
        data=msg.data.decode(), id=str(msg.metadata.sequence.stream), event=msg.subject
    )


# One event of the stream, as OpenAPI before 3.2 documents `text/event-stream`
# (the schema describes each event; comments and bare `id` lines are no events).
_EVENT_SCHEMA: Final = {
    "type": "object",
    "required": ["id", "event", "data"],
    "properties": {
        "id": {"type": "string", "pattern": "^[0-9]+$", "description": "The stream sequence."},
        "event": {"type": "string", "enum": [s.name for s in v1.CATALOG_EVENT_SUBJECTS]},
        "data": {
            "type": "string",
            "contentMediaType": "application/json",
            "description": "The CloudEvent, as the catalog published it.",
        },
        "retry": {"type": "integer", "minimum": 0},
    },
}
_WAITING: Final = {"comment": "waiting for the event stream"}
_KEEP_ALIVE: Final = {"comment": "keep-alive"}


async def _events(
    hub: EventHub, after: int, shutdown: anyio.Event
) -> AsyncIterator[ServerSentEvent | dict[str, Any]]:
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

    try:
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
                    pause = backoff() if hub.connected else settings.events_ping_s
                    await _until(asyncio.sleep(pause), reconnected, shutdown)
                    continue
                expected = None
                if start < last:
                    # An `id` alone moves the client's Last-Event-ID onto the stream
                    # (no event is dispatched), so a reconnect does not resend the old one.
                    yield ServerSentEvent(id=str(start))
                    last = start
            try:
                batch = await _until(
                    subscription.fetch(settings.events_batch, timeout=settings.events_ping_s),
                    reconnected,
                    shutdown,
                )
            except TimeoutError:
                # Nothing new: a comment keeps proxies from closing an idle stream.
                failures = 0
                yield _KEEP_ALIVE
                continue
            except _NATS_ERRORS as error:
                # The consumer is gone (expired, or NATS restarted): start again after `last`.
                logger.debug("event consumer lost (%r); resubscribing after %s", error, last)
                await _unsubscribe(hub, subscription)
                subscription = None
                failures += 1
                await _until(asyncio.sleep(backoff()), reconnected, shutdown)
                continue
            if isinstance(batch, _Woken):
                if not shutdown.is_set():
                    # NATS is back: the consumer may have gone with the old server.
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
                yield _event(msg)
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
                "content": {"text/event-stream": {"schema": _EVENT_SCHEMA}},
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
                le=STREAM_SEQUENCE_MAX,
                description="Resume after this event id (browsers send it when they "
                "reconnect). An id beyond the stream resumes with the next new event.",
            ),
        ] = None,
        after: Annotated[
            int | None,
            Query(
                ge=0,
                le=STREAM_SEQUENCE_MAX,
                description="Resume after this event id, for a first connection.",
            ),
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
        # Set by sse_starlette when the server starts shutting down: the generator
        # then says goodbye and ends within the grace period.
        shutdown = anyio.Event()
        return EventSourceResponse(
            _events(hub, start, shutdown),
            headers={name.decode(): value.decode() for name, value in headers}
            | {"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
            # The fetch timeout already sends keep-alive comments.
            ping=24 * 3600,
            shutdown_event=shutdown,
            shutdown_grace_period=hub.settings.events_shutdown_grace_s,
        )

    # HEAD is GET without the body: the same checks and headers, and sse_starlette
    # sends no stream (FastAPI routes do not add HEAD as Starlette's do).
    app.add_api_route(
        "/v1/events",
        events,
        methods=["HEAD"],
        response_class=EventSourceResponse,
        include_in_schema=False,
    )
