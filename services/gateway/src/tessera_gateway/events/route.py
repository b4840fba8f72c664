"""The `/v1/events` route: admission, where a stream starts, and its OpenAPI description."""

from __future__ import annotations

from typing import Annotated, Final

import anyio
from fastapi import FastAPI, Header, Query, Request, Security
from sse_starlette import EventSourceResponse
from starlette.responses import Response
from tessera_contracts import v1

from tessera_gateway.access import Access, Gatekeeper
from tessera_gateway.auth import CATALOG_READ
from tessera_gateway.errors import TooManyEventClients
from tessera_gateway.events.hub import EventHub
from tessera_gateway.events.stream import event_stream
from tessera_gateway.operations import API_KEY, BEARER

STREAM_SEQUENCE_MAX: Final = 2**64 - 1
"""JetStream stream sequences (our SSE ids) are unsigned 64-bit integers."""

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
            event_stream(hub, start, shutdown),
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
