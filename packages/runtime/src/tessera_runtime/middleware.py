"""Request context, metrics and access log in one pure ASGI middleware.

One middleware instead of three keeps the per-request cost to a single extra
coroutine frame and a single ``send`` wrapper; it is also why this is not a
``BaseHTTPMiddleware``, which would add a task and memory streams per request.

It is the outermost middleware the app factory adds (inside FastAPI's own
outer layers); the 500 for an unhandled exception is rendered innermost by
``problems.UnhandledErrorMiddleware`` while the request id is still bound, so it
passes through the ``send`` wrapper here and carries ``X-Request-ID``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Collection

from starlette.routing import Mount, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tessera_runtime import tracing
from tessera_runtime.context import _reset, _set, new_context
from tessera_runtime.logs import AccessLog
from tessera_runtime.metrics import UNMATCHED_ROUTE, HttpMetrics

__all__ = ["ACCESS_LOGGER", "RequestContextMiddleware", "RouteTemplates", "matched_template"]

ACCESS_LOGGER = "tessera.access"
"""Logger of the one-line-per-request access log (set its level to silence it)."""

_X_REQUEST_ID = b"x-request-id"
_TRACEPARENT = b"traceparent"
# Status recorded when the request was cancelled (client gone) before any response
# started; nginx's convention, so it is not counted as a server error.
_CLIENT_CLOSED = 499


def matched_template(scope: Scope) -> str | None:
    """The template of the API route that matched the request, if routing found one
    (see :class:`RouteTemplates`, which also finds plain Starlette routes)."""
    fastapi_scope = scope.get("fastapi")
    if isinstance(fastapi_scope, dict):
        effective = fastapi_scope.get("effective_route_context")
        if effective is not None:
            template = getattr(
                getattr(effective, "starlette_route", None) or effective, "path_format", None
            )
            if isinstance(template, str) and template:
                return template
    template = getattr(scope.get("route"), "path_format", None)
    if isinstance(template, str) and template:
        return template
    return None


class RouteTemplates:
    """Finds the template of the route that handled a request, e.g. ``/v1/products/{product_id}``.

    Where FastAPI keeps it depends on the kind of route:

    * routes of included routers: recent FastAPI (0.165 here) no longer copies
      them into the app, and ``scope["route"]`` is the router's own route, whose
      template lacks the include prefixes. The full template is in the effective route context
      FastAPI records under ``scope["fastapi"]``;
    * the app's own API routes: ``scope["route"]``;
    * plain Starlette routes and mounts (``/openapi.json``, ``/docs``, static
      files): FastAPI's router sets only ``scope["endpoint"]``, looked up here in
      the app's routes.

    Tests pin each case, so a FastAPI upgrade that moves them fails loudly
    instead of silently mislabelling metrics.
    """

    def __init__(self, router: object) -> None:
        self._router = router
        self._by_endpoint: dict[int, str] = {}
        self._indexed_count = -1

    def _index(self) -> None:
        routes: list[object] = list(getattr(self._router, "routes", ()))
        by_endpoint: dict[int, str] = {}
        for route in routes:
            template = getattr(route, "path_format", None)
            if not isinstance(template, str):
                continue
            if isinstance(route, Mount):
                by_endpoint[id(route.app)] = template
            elif isinstance(route, Route):
                by_endpoint[id(route.endpoint)] = template
        self._by_endpoint = by_endpoint
        self._indexed_count = len(routes)

    def __call__(self, scope: Scope) -> str:
        template = matched_template(scope)
        if template is not None:
            return template
        endpoint = scope.get("endpoint")
        if endpoint is None:
            return UNMATCHED_ROUTE
        # Routes are normally all added before the first request; re-index if not.
        if len(getattr(self._router, "routes", ())) != self._indexed_count:
            self._index()
        return self._by_endpoint.get(id(endpoint), UNMATCHED_ROUTE)


class RequestContextMiddleware:
    """Binds the request context, echoes ``X-Request-ID``, answers with this hop's
    ``traceparent``, records metrics, logs the request and, with tracing on,
    records its server span."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        metrics: HttpMetrics,
        route_templates: Callable[[Scope], str],
        quiet_routes: Collection[str] = (),
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.route_template = route_templates
        # Probe and scrape endpoints are hit every few seconds; their access lines
        # go out at DEBUG so they do not drown the requests that matter.
        self.quiet_routes = frozenset(quiet_routes)
        self.access_log = AccessLog(ACCESS_LOGGER)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        incoming_id: str | None = None
        incoming_traceparent: str | None = None
        for name, value in scope["headers"]:
            if name == _X_REQUEST_ID:
                incoming_id = value.decode("latin-1")
            elif name == _TRACEPARENT:
                incoming_traceparent = value.decode("latin-1")
        tracer = tracing.tracer()
        server_span: tracing.ServerSpan | None = None
        # Probes and scrapes are not traced: every few seconds, they would bury
        # the traces of requests.
        if tracer is not None and scope["path"] not in self.quiet_routes:
            server_span = tracing.start_server_span(
                tracer, scope["method"], scope["path"], incoming_id, incoming_traceparent
            )
        if server_span is None:
            ctx = new_context(incoming_id, incoming_traceparent)
        else:
            ctx = server_span.context
        request_id_header = (_X_REQUEST_ID, ctx.request_id.encode("ascii"))
        status = 0

        async def send_with_request_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                # A new list: the response object may reuse its own header list. A
                # proxied response may carry the (same) request id, never sent twice,
                # and its upstream's traceparent, which this hop's replaces: the trace
                # id a client finds its trace by, with this service's span.
                headers = []
                has_request_id = False
                for header in message.get("headers", ()):
                    name = header[0].lower()
                    if name == _TRACEPARENT:
                        continue
                    has_request_id = has_request_id or name == _X_REQUEST_ID
                    headers.append(header)
                if not has_request_id:
                    headers.append(request_id_header)
                headers.append((_TRACEPARENT, ctx.traceparent.encode("ascii")))
                message["headers"] = headers
            await send(message)

        token = _set(ctx)
        start = time.perf_counter()
        try:
            await self.app(scope, receive, send_with_request_id)
        except asyncio.CancelledError:
            if status == 0:
                status = _CLIENT_CLOSED
            raise
        finally:
            duration = time.perf_counter() - start
            if status == 0:
                # No response started: an exception is on its way up, or the app
                # returned without answering; either way the server sends a 500.
                status = 500
            route = self.route_template(scope)
            try:
                self.metrics.observe(scope["method"], route, status, duration)
                self._log(scope, route, status, duration)
            finally:
                if server_span is not None:
                    server_span.end(route, status)
                _reset(token)

    def _log(self, scope: Scope, route: str, status: int, duration: float) -> None:
        level = logging.DEBUG if route in self.quiet_routes else logging.INFO
        # The cheap check first: nothing below runs when the access log is off.
        if not self.access_log.enabled(level):
            return
        method = scope["method"]
        path = scope["path"]
        fields = {
            "method": method,
            "route": route,
            "path": path,
            "status": status,
            "duration_ms": round(duration * 1000, 3),
        }
        self.access_log.write(level, f"{method} {path} {status}", fields)
