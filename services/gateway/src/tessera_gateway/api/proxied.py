"""Proxied operations: the contract's operations tables, served by the lean `Proxy`.

Every operation of `v1.OPERATIONS` and `v2.OPERATIONS` that a service behind
the gateway owns becomes a `ProxiedRoute` of `proxied_router`: its path,
parameters, body, answers and documentation are the `Operation`'s (what
`/docs` and `/openapi.json` show), its scope is the key's requirement, its
owner the upstream and its retry policy the Proxy's.

The routes document; they do not serve. `api/router.py`'s `ProxyRouter`, in
front of the FastAPI app, answers every request a proxied route matches with
the route's `Proxy`, which forwards the request as it is and relays the
answer, so FastAPI never dispatches to these routes and their endpoint is never
called. They are FastAPI routes all the same, rather than entries of the
document only, because FastAPI then writes their OpenAPI (the same code path
as every other route: parameters, bodies, examples, security) and its router
still answers what the ProxyRouter leaves to it as it should: a method the
path does not have is 405 with `Allow`. The upstream validates (its 422
reaches the client unchanged), so documenting the contract costs nothing per
request.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final

from fastapi import APIRouter, Security
from tessera_contracts import v1, v2
from tessera_contracts.operations import GATEWAY, Operation
from tessera_runtime import problem_responses
from tessera_runtime.operations import (
    OperationRoute,
    operation_endpoint,
    operation_route_kwargs,
)

from tessera_gateway.api.proxy import Proxy
from tessera_gateway.clients.upstream import Upstream
from tessera_gateway.deps import API_KEY, BEARER
from tessera_gateway.domain.access import Access, Gatekeeper

GATEWAY_ERRORS: Final = (401, 403, 413, 429, 502, 503, 504)
"""What every proxied operation can answer, whatever the upstream says (problem+json)."""


def proxied_operations() -> tuple[Operation, ...]:
    """The operations the gateway forwards: every one a service behind it owns."""
    return tuple(op for op in (*v1.OPERATIONS, *v2.OPERATIONS) if op.owner != GATEWAY)


def key_security(operation: Operation) -> list[Any]:
    """Route dependencies that document the key schemes with the operation's scope.

    Documentation only: a proxied route's dependencies never run (see the module
    docstring); its `Proxy` admits each request through the `Gatekeeper`.
    """
    scopes = [operation.scope]
    return [Security(BEARER, scopes=scopes), Security(API_KEY, scopes=scopes)]


def anonymous_security(operation: Operation, anonymous_reads: bool) -> dict[str, Any]:
    """`openapi_extra` that adds an empty requirement (callable without a key)."""
    return {"security": [{}]} if operation.anonymous and anonymous_reads else {}


class ProxiedRoute(OperationRoute):
    """A proxied operation's route: documented by FastAPI, served by `proxy` (through
    the `ProxyRouter` in front of the app, never by FastAPI)."""

    def __init__(
        self, path: str, endpoint: Callable[..., Any], *, proxy: Proxy, **kwargs: Any
    ) -> None:
        super().__init__(path, endpoint, **kwargs)
        self.proxy = proxy


async def _served_by_the_proxy_router() -> None:
    """Never called: the ProxyRouter answers every request this route matches. Only
    its signature is used, the operation's parts, which FastAPI documents."""
    raise RuntimeError("a proxied operation reached FastAPI's router")  # pragma: no cover


def _route_kwargs(operation: Operation, anonymous_reads: bool) -> dict[str, Any]:
    kwargs = operation_route_kwargs(operation, extra_errors=GATEWAY_ERRORS)
    # /docs shows the description when an operation is opened: the summary, where
    # the contract says no more.
    kwargs["description"] = operation.description or operation.summary
    responses: dict[int | str, Any] = kwargs["responses"]
    for status in [status for status in responses if int(status) >= 500]:
        # An upstream's 5xx body stays inside the gateway (`Upstream.send`): whatever
        # the owner documents for it (the Open Inference Protocol's `{"error"}`, an
        # unready `server_ready`), a client gets the gateway's problem.
        responses[status] = problem_responses(int(status))[int(status)]
    extra = anonymous_security(operation, anonymous_reads)
    if extra:
        kwargs["openapi_extra"] = (kwargs.get("openapi_extra") or {}) | extra
    return kwargs


def proxied_router(
    operations: Iterable[Operation],
    upstreams: Mapping[str, Upstream],
    gatekeeper: Gatekeeper,
    *,
    max_body_bytes: int,
    anonymous_reads: bool,
) -> APIRouter:
    """A `ProxiedRoute` for each of `operations` (and a HEAD route for every GET
    one), forwarding to `upstreams[operation.owner]`."""
    routes: list[ProxiedRoute] = []
    for operation in operations:
        proxy = Proxy(
            upstreams[operation.owner],
            Access(operation.scope, operation.anonymous),
            gatekeeper,
            max_body_bytes,
            retry=operation.retry_policy,
        )
        endpoint = operation_endpoint(operation, _served_by_the_proxy_router)
        routes.append(
            ProxiedRoute(
                operation.path,
                endpoint,
                proxy=proxy,
                dependencies=key_security(operation),
                **_route_kwargs(operation, anonymous_reads),
            )
        )
        if operation.method == "GET":
            # HEAD is GET without the body (RFC 9110 9.3.2). FastAPI routes do not
            # add it as Starlette's do; a route of its own keeps it out of /docs.
            routes.append(
                ProxiedRoute(
                    operation.path,
                    endpoint,
                    proxy=proxy,
                    methods=["HEAD"],
                    name=operation.key,
                    include_in_schema=False,
                )
            )
    return APIRouter(routes=list(routes))


def proxied_routes(router: APIRouter) -> list[ProxiedRoute]:
    """The `ProxiedRoute`s of `router`, in order."""
    return [route for route in router.routes if isinstance(route, ProxiedRoute)]
