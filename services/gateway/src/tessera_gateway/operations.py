"""Proxied operations: declared like FastAPI routes, served by the lean `Proxy`.

Each operation is written as a FastAPI endpoint *signature* (path and query
parameters, the body model, the response model, a docstring), which is what
`/docs` shows. Requests never call that function: `ProxyRoute` replaces the
route's ASGI app with a `Proxy`, which forwards the request to the upstream as
it is and relays the answer. The upstream validates (its 422 reaches the
client unchanged), so the signature documents the contract without costing
anything per request.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from fastapi import FastAPI, Security
from fastapi.routing import APIRoute
from fastapi.security import APIKeyHeader, HTTPBearer
from tessera_stack.web import problem_responses

from tessera_gateway.access import Access, Gatekeeper
from tessera_gateway.proxy import Proxy
from tessera_gateway.upstreams import Upstream

F = TypeVar("F", bound=Callable[..., Any])

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

# Every proxied operation can answer these, whatever the upstream says.
_GATEWAY_ERRORS = (401, 403, 413, 429, 502, 503, 504)


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    endpoint: Callable[..., Any]
    access: Access
    retry_safe: bool = False
    validation_errors: bool = True
    route_kwargs: dict[str, Any] = field(default_factory=dict)


class ProxyRoute(APIRoute):
    """An APIRoute whose ASGI app forwards to an upstream instead of calling the endpoint."""

    def __init__(
        self,
        path: str,
        endpoint: Callable[..., Any],
        *,
        proxy: Proxy,
        validation_errors: bool = True,
        **kwargs: Any,
    ):
        super().__init__(path, endpoint, **kwargs)
        self.proxy = proxy
        self.app = proxy
        self.validation_errors = validation_errors
        """The upstream answers invalid input with the 422 FastAPI documents."""


class Operations:
    """The proxied operations of one upstream, installed into the app in one go."""

    def __init__(self, upstream: str, *, tags: list[str]) -> None:
        self.upstream = upstream
        self.tags = tags
        self.operations: list[Operation] = []

    def route(
        self,
        method: str,
        path: str,
        *,
        scope: str,
        anonymous: bool = False,
        errors: tuple[int, ...] = (),
        retry_safe: bool = False,
        validation_errors: bool = True,
        **route_kwargs: Any,
    ) -> Callable[[F], F]:
        """Declare an operation; `errors` are the upstream's own problem statuses.

        `retry_safe`: the operation changes nothing upstream (a prediction), so a
        failed attempt is repeated whatever its method, as GETs are.
        `validation_errors`: the upstream answers invalid input with 422 problem+json,
        which FastAPI documents; False for the Open Inference Protocol, whose
        upstream answers 400 `{"error"}` (documented in `responses`) instead.
        """

        def register(endpoint: F) -> F:
            self.operations.append(
                Operation(
                    method,
                    path,
                    endpoint,
                    Access(scope, anonymous),
                    retry_safe,
                    validation_errors,
                    route_kwargs | {"errors": errors},
                )
            )
            return endpoint

        return register

    def get(self, path: str, **kwargs: Any) -> Callable[[F], F]:
        return self.route("GET", path, anonymous=kwargs.pop("anonymous", True), **kwargs)

    def post(self, path: str, **kwargs: Any) -> Callable[[F], F]:
        return self.route("POST", path, **kwargs)

    def put(self, path: str, **kwargs: Any) -> Callable[[F], F]:
        return self.route("PUT", path, **kwargs)

    def patch(self, path: str, **kwargs: Any) -> Callable[[F], F]:
        return self.route("PATCH", path, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> Callable[[F], F]:
        return self.route("DELETE", path, **kwargs)

    def install(
        self,
        app: FastAPI,
        upstream: Upstream,
        gatekeeper: Gatekeeper,
        *,
        max_body_bytes: int,
        anonymous_reads: bool,
    ) -> None:
        for operation in self.operations:
            kwargs = dict(operation.route_kwargs)
            statuses = sorted({*_GATEWAY_ERRORS, *kwargs.pop("errors")})
            # The operation's own entries win: OIP errors are not problem+json.
            responses = problem_responses(*statuses) | kwargs.pop("responses", {})
            access = operation.access
            scopes = [access.scope]
            extra: dict[str, Any] = {}
            if access.anonymous and anonymous_reads:
                # An empty requirement: the operation also works without a key.
                extra["security"] = [{}]
            proxy = Proxy(
                upstream, access, gatekeeper, max_body_bytes, retry_safe=operation.retry_safe
            )
            route = ProxyRoute(
                operation.path,
                operation.endpoint,
                proxy=proxy,
                validation_errors=operation.validation_errors,
                methods=[operation.method],
                tags=list(self.tags),
                dependencies=[Security(BEARER, scopes=scopes), Security(API_KEY, scopes=scopes)],
                responses=responses,
                openapi_extra=extra or None,
                **kwargs,
            )
            app.router.routes.append(route)
            if operation.method == "GET":
                # HEAD is GET without the body (RFC 9110 9.3.2). FastAPI routes do not
                # add it as Starlette's do; a route of its own keeps it out of /docs.
                head = ProxyRoute(
                    operation.path,
                    operation.endpoint,
                    proxy=proxy,
                    methods=["HEAD"],
                    include_in_schema=False,
                )
                app.router.routes.append(head)
