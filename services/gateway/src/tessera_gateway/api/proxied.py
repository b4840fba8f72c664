"""Proxied operations: the contract's operations tables, served by the lean `Proxy`.

Every operation of `v1.OPERATIONS` and `v2.OPERATIONS` that a service behind
the gateway owns becomes a `ProxyRoute`: its path, parameters, body, answers
and documentation are the `Operation`'s (what `/docs` shows), its scope is the
key's requirement, its owner the upstream and its retry policy the Proxy's.
Requests never reach the route's endpoint: a `ProxyRoute`'s ASGI app is its
`Proxy`, which forwards the request as it is and relays the answer. The
upstream validates (its 422 reaches the client unchanged), so documenting the
contract costs nothing per request.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final

from fastapi import FastAPI, Security
from fastapi.security import APIKeyHeader, HTTPBearer
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
from tessera_gateway.domain.access import Access, Gatekeeper

# Documentation only: the schemes tell /docs how to send a key. The check itself
# is `Gatekeeper`, which runs before anything else in every operation.
BEARER = HTTPBearer(
    scheme_name="bearer",
    bearerFormat="tsk_<id>_<secret>",
    description="`Authorization: Bearer <key>`",
    auto_error=False,
)
API_KEY = APIKeyHeader(
    name="X-API-Key",
    scheme_name="apiKey",
    description="The same key in `X-API-Key`",
    auto_error=False,
)

GATEWAY_ERRORS: Final = (401, 403, 413, 429, 502, 503, 504)
"""What every proxied operation can answer, whatever the upstream says (problem+json)."""


def proxied_operations() -> tuple[Operation, ...]:
    """The operations the gateway forwards: every one a service behind it owns."""
    return tuple(op for op in (*v1.OPERATIONS, *v2.OPERATIONS) if op.owner != GATEWAY)


def key_security(operation: Operation) -> list[Any]:
    """Route dependencies that document the key schemes with the operation's scope."""
    scopes = [operation.scope]
    return [Security(BEARER, scopes=scopes), Security(API_KEY, scopes=scopes)]


def anonymous_security(operation: Operation, anonymous_reads: bool) -> dict[str, Any]:
    """`openapi_extra` that adds an empty requirement (callable without a key)."""
    return {"security": [{}]} if operation.anonymous and anonymous_reads else {}


class ProxyRoute(OperationRoute):
    """An operation's route whose ASGI app forwards to the upstream instead of
    calling the endpoint (the fast lane calls `proxy` directly)."""

    def __init__(
        self, path: str, endpoint: Callable[..., Any], *, proxy: Proxy, **kwargs: Any
    ) -> None:
        super().__init__(path, endpoint, **kwargs)
        self.proxy = proxy
        self.app = proxy


async def _forwarded() -> None:
    """Never called: a ProxyRoute's app is its Proxy. Only its signature is used, the
    operation's parts, which FastAPI documents."""
    raise NotImplementedError  # pragma: no cover


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


def install_proxied(
    app: FastAPI,
    operations: Iterable[Operation],
    upstreams: Mapping[str, Upstream],
    gatekeeper: Gatekeeper,
    *,
    max_body_bytes: int,
    anonymous_reads: bool,
) -> None:
    """Add a `ProxyRoute` to `app` for each of `operations` (and a HEAD route for
    every GET one), forwarding to `upstreams[operation.owner]`."""
    for operation in operations:
        proxy = Proxy(
            upstreams[operation.owner],
            Access(operation.scope, operation.anonymous),
            gatekeeper,
            max_body_bytes,
            retry=operation.retry_policy,
        )
        endpoint = operation_endpoint(operation, _forwarded)
        route = ProxyRoute(
            operation.path,
            endpoint,
            proxy=proxy,
            dependencies=key_security(operation),
            **_route_kwargs(operation, anonymous_reads),
        )
        app.router.routes.append(route)
        if operation.method == "GET":
            # HEAD is GET without the body (RFC 9110 9.3.2). FastAPI routes do not
            # add it as Starlette's do; a route of its own keeps it out of /docs.
            head = ProxyRoute(
                operation.path,
                endpoint,
                proxy=proxy,
                methods=["HEAD"],
                name=operation.key,
                include_in_schema=False,
            )
            app.router.routes.append(head)
