"""The fast lane: proxied operations served right inside the request-context middleware.

A request through FastAPI passes five middleware layers (server errors,
telemetry, body limit, exception handlers, exit stack), a linear scan of every
route and two route wrappers before our `Proxy` runs: CPU per request close
to what forwarding itself costs (BENCHMARKS.md has the figures).
For an operation that only forwards bytes none of it does anything, so the
fast lane sits between `tessera_runtime`'s request-context middleware (which
still gives every request its id, `traceparent`, metrics and access log) and
the FastAPI stack. It matches proxied operations by method and path pattern
and calls their `Proxy` directly (HEAD too: `operations` gives every GET
operation a HEAD route); everything else (docs, health, metrics, events, 404,
405) falls through to FastAPI unchanged.

The fast lane answers errors with the runtime's one renderer (`error_problem`),
as the FastAPI handlers and the NATS workers do.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from fastapi import FastAPI
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send
from tessera_runtime import error_problem, problem_response
from tessera_runtime.middleware import RequestContextMiddleware

from tessera_gateway.api.proxied import ProxyRoute
from tessera_gateway.api.proxy import ClientGone
from tessera_gateway.errors import GatewayError

logger = logging.getLogger("tessera_gateway.api.fastlane")

_Candidates = list[tuple[re.Pattern[str], ProxyRoute]]


class FastLane:
    def __init__(self, routes: Sequence[ProxyRoute], fallback: ASGIApp) -> None:
        self.fallback = fallback
        self._by_method: dict[str, _Candidates] = {}
        for route in routes:
            for method in route.methods or ():
                self._by_method.setdefault(method, []).append((route.path_regex, route))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            candidates = self._by_method.get(scope["method"])
            if candidates:
                path = _route_path(scope)
                for regex, route in candidates:
                    match = regex.match(path)
                    if match is not None:
                        # What the router would have set: metrics label by route template.
                        scope["route"] = route
                        scope["endpoint"] = route.endpoint
                        scope["path_params"] = match.groupdict()
                        await self._serve(route, scope, receive, send)
                        return
        await self.fallback(scope, receive, send)

    @staticmethod
    async def _serve(route: ProxyRoute, scope: Scope, receive: Receive, send: Send) -> None:
        proxy = route.proxy
        try:
            reply, headers = await proxy.exchange(scope, receive)
        except ClientGone:
            return
        except Exception as error:  # a refusal, an upstream failure, or a bug
            problem = error_problem(
                error, instance=scope["path"], where=f"{scope['method']} {scope['path']}"
            )
            extra = error.headers if isinstance(error, GatewayError) else None
            await problem_response(problem, extra)(scope, receive, send)
            return
        await proxy.relay(reply, headers, send, body=scope["method"] != "HEAD")


def _route_path(scope: Scope) -> str:
    # As Starlette's router does: routes match the path below the root path.
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    if root and path.startswith(root) and path[len(root) : len(root) + 1] in ("/", ""):
        return path[len(root) :]
    return path


def install_fast_lane(
    app: FastAPI, *, cors: Mapping[str, Any] | None = None, enabled: bool = True
) -> None:
    """Serve `app`'s `ProxyRoute`s through the fast lane (if `enabled`), with CORS (if
    given) in front of both the fast lane and FastAPI.

    The middleware stack is built on the first request, after every route is added.
    """
    build_stack: Callable[[], ASGIApp] = app.build_middleware_stack

    def build_with_fast_lane() -> ASGIApp:
        stack = build_stack()
        routes = [route for route in app.router.routes if isinstance(route, ProxyRoute)]
        if isinstance(stack, RequestContextMiddleware):
            inner: ASGIApp = FastLane(routes, stack.app) if enabled else stack.app
            if cors is not None:
                inner = CORSMiddleware(inner, **cors)
            stack.app = inner
        else:
            # The stack changed shape: stay correct (routes still work) if slower.
            logger.warning("request-context middleware not found; fast lane disabled")
            if cors is not None:
                stack = CORSMiddleware(stack, **cors)
        return stack

    # Replaced on this instance only: FastAPI calls it once, on the first request.
    app.build_middleware_stack = build_with_fast_lane  # type: ignore[method-assign]
