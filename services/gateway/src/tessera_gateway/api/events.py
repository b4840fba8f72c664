"""The `/v1/events` route: `v1.EVENTS` served with admission and where a stream starts.

The operation (its parameters, the 422 for an id that cannot be a stream
sequence, and the event stream's OpenAPI: each event's `id`, `event` and
`data`) is the contract's; this module says what the gateway does with it. Admission (key, scope, rate
limit) is the `authenticate_or_anonymous` dependency (`deps.py`).
"""

from __future__ import annotations

from typing import Annotated, Any, Final

import anyio
from fastapi import APIRouter, Security
from sse_starlette import EventSourceResponse
from starlette.responses import Response
from tessera_contracts import v1
from tessera_contracts.parameters import EventsHeaders, EventsQuery
from tessera_runtime.operations import implements, operation_endpoint

from tessera_gateway.api.proxied import anonymous_security
from tessera_gateway.deps import EventHubDep, SettingsDep, authenticate_or_anonymous
from tessera_gateway.domain.access import Admission
from tessera_gateway.errors import TooManyEventClients
from tessera_gateway.messaging.stream import event_stream

EVENTS_ERRORS: Final = (401, 403, 429, 503)
"""The gateway's own answers before a stream starts: no key, no scope, rate limited,
too many streams or NATS unreachable (with `Retry-After`)."""


EventsAdmission = Annotated[
    Admission, Security(authenticate_or_anonymous, scopes=[v1.EVENTS.scope])
]


async def events(
    query: EventsQuery,
    headers: EventsHeaders,
    admission: EventsAdmission,
    hub: EventHubDep,
    settings: SettingsDep,
) -> Response:
    if hub.clients >= settings.events_max_clients:
        raise TooManyEventClients(
            "too many event streams are open; retry later", headers={"Retry-After": "5"}
        )
    start = headers.last_event_id if headers.last_event_id is not None else query.after
    from_now = start is None
    if start is None:
        # "From now on" is fixed here, before the response starts: an event
        # published once the client has seen the 200 is never missed.
        start = await hub.last_sequence()
    # Set by sse_starlette when the server starts shutting down: the generator
    # then says goodbye and ends within the grace period.
    shutdown = anyio.Event()
    return EventSourceResponse(
        event_stream(hub, start, shutdown, announce=from_now),
        headers={name.decode(): value.decode() for name, value in admission.headers}
        | {"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        # The fetch timeout already sends keep-alive comments.
        ping=24 * 3600,
        shutdown_event=shutdown,
        shutdown_grace_period=settings.events_shutdown_grace_s,
    )


def events_router(*, anonymous_reads: bool) -> APIRouter:
    """The `/v1/events` routes; `anonymous_reads` as the gateway is configured (for /docs)."""
    router = APIRouter()
    operation = v1.EVENTS
    route_kwargs: dict[str, Any] = {"response_class": EventSourceResponse}
    extra = anonymous_security(operation, anonymous_reads)
    if extra:
        route_kwargs["openapi_extra"] = extra
    implements(router, operation, extra_errors=EVENTS_ERRORS, **route_kwargs)(events)
    # HEAD is GET without the body: the same checks and headers, and sse_starlette
    # sends no stream (FastAPI routes do not add HEAD as Starlette's do).
    router.add_api_route(
        operation.path,
        operation_endpoint(operation, events),
        methods=["HEAD"],
        response_class=EventSourceResponse,
        include_in_schema=False,
    )
    return router
