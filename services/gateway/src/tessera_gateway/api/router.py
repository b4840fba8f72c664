"""The proxy router: the proxied operations, served in front of the FastAPI app.

A request through FastAPI passes its exception handlers and exit stack, a
linear scan of every route and two route wrappers before anything answers it:
CPU per request close to what forwarding itself costs (docs/gateway.md,
performance). For an operation that only forwards bytes none of it does
anything, so `create_app` composes the gateway's request path explicitly:

    request context (request id, `traceparent`, metrics, access log)
      -> CORS (when configured)
      -> ProxyRouter: a proxied operation? its `Proxy` answers
      -> otherwise the FastAPI app's own stack and routes
         (docs, health, metrics, events, 404, 405)

`ProxyRouter` is middleware passed to `create_service_app`, so it runs inside
the request context and no framework method is replaced. It matches proxied
operations by method and path pattern, those of their `ProxiedRoute`s (HEAD
too: every GET operation has a HEAD route), and calls their `Proxy` directly.
The routes stay in the FastAPI app for the document and for FastAPI's answers
to everything else on their paths (a 405 with `Allow`); FastAPI never
dispatches to them (`api/proxied.py`). No FastAPI dependency runs on this
path: the `Proxy` admits each request through the `Gatekeeper` itself.

The router answers errors with the runtime's one renderer (`error_problem`),
as the FastAPI handlers and the NATS workers do.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from starlette.types import ASGIApp, Receive, Scope, Send
from tessera_runtime import error_problem, problem_response

from tessera_gateway.api.proxied import ProxiedRoute
from tessera_gateway.api.proxy import ClientGone
from tessera_gateway.errors import GatewayError

_Candidates = list[tuple[re.Pattern[str], ProxiedRoute]]


class ProxyRouter:
    """ASGI middleware: serves `routes` with their proxies, passes the rest to `app`."""

    def __init__(self, app: ASGIApp, *, routes: Sequence[ProxiedRoute]) -> None:
        self.app = app
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
                        # What FastAPI's router would have set: metrics label by
                        # the route's template.
                        scope["route"] = route
                        scope["endpoint"] = route.endpoint
                        scope["path_params"] = match.groupdict()
                        await _serve(route, scope, receive, send)
                        return
        await self.app(scope, receive, send)


async def _serve(route: ProxiedRoute, scope: Scope, receive: Receive, send: Send) -> None:
    proxy = route.proxy
    try:
        reply, headers = await proxy.exchange(scope, receive)
    except ClientGone:
        return
    except Exception as error:  # a refusal, an upstream failure, or a bug
        problem = error_problem(
            error,
            instance=scope["path"],
            where=f"{scope['method']} {scope['path']}",
            route=route.path_format,
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
