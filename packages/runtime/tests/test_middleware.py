"""The request context middleware as a plain ASGI component, and its place in the app."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CollectorRegistry
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.routing import Mount, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from tessera_runtime import create_service_app, request_id
from tessera_runtime.metrics import HttpMetrics
from tessera_runtime.middleware import RequestContextMiddleware, RouteTemplates


def http_scope(path: str = "/x", headers: list[tuple[bytes, bytes]] | None = None) -> Scope:
    return {
        "type": "http",
        "method": "GET",
        "path": path,
        "headers": headers or [],
        "query_string": b"",
    }


async def receive() -> Message:
    return {"type": "http.request", "body": b"", "more_body": False}


class Recorder:
    def __init__(self) -> None:
        self.messages: list[Message] = []

    async def __call__(self, message: Message) -> None:
        self.messages.append(message)

    @property
    def headers(self) -> list[tuple[bytes, bytes]]:
        start = next(m for m in self.messages if m["type"] == "http.response.start")
        return list(start["headers"])


def middleware(app: ASGIApp, registry: CollectorRegistry) -> RequestContextMiddleware:
    class NoRoutes:
        routes: list[object] = []

    return RequestContextMiddleware(
        app,
        metrics=HttpMetrics(registry),
        route_templates=RouteTemplates(NoRoutes()),
    )


def count(registry: CollectorRegistry, status: str) -> float | None:
    return registry.get_sample_value(
        "http_requests_total", {"method": "GET", "route": "<unmatched>", "status": status}
    )


class TestAsAsgiComponent:
    async def test_other_scopes_pass_through_untouched(self) -> None:
        seen: list[Scope] = []

        async def app(scope: Scope, receive: Receive, send: Send) -> None:
            seen.append(scope)
            assert request_id() is None  # no request context for lifespan/websocket

        scope: Scope = {"type": "lifespan"}
        await middleware(app, CollectorRegistry())(scope, receive, Recorder())

        assert seen == [scope]

    async def test_existing_response_request_id_is_not_duplicated(self) -> None:
        async def app(scope: Scope, receive: Receive, send: Send) -> None:
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [(b"X-Request-ID", b"from-upstream")],
                }
            )
            await send({"type": "http.response.body", "body": b""})

        recorder = Recorder()
        await middleware(app, CollectorRegistry())(http_scope(), receive, recorder)

        names = [name.lower() for name, _ in recorder.headers]
        assert recorder.headers[0] == (b"X-Request-ID", b"from-upstream")
        assert names == [b"x-request-id", b"traceparent"]

    async def test_the_response_carries_this_hop_s_traceparent_not_the_upstream_s(
        self,
    ) -> None:
        trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
        upstream_span = "1111111111111111"

        async def app(scope: Scope, receive: Receive, send: Send) -> None:
            upstream = f"00-{trace_id}-{upstream_span}-01".encode()
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [(b"traceparent", upstream)],
                }
            )
            await send({"type": "http.response.body", "body": b""})

        recorder = Recorder()
        incoming = [(b"traceparent", f"00-{trace_id}-00f067aa0ba902b7-01".encode())]
        await middleware(app, CollectorRegistry())(http_scope(headers=incoming), receive, recorder)

        [value] = [v for name, v in recorder.headers if name.lower() == b"traceparent"]
        version, returned_trace, span, flags = value.decode().split("-")
        assert (version, returned_trace, flags) == ("00", trace_id, "01")
        assert span not in (upstream_span, "00f067aa0ba902b7")  # this hop's own span
        assert len(span) == 16

    async def test_response_header_list_of_the_app_is_not_mutated(self) -> None:
        shared_headers = [(b"content-type", b"text/plain")]

        async def app(scope: Scope, receive: Receive, send: Send) -> None:
            await send({"type": "http.response.start", "status": 200, "headers": shared_headers})
            await send({"type": "http.response.body", "body": b""})

        recorder = Recorder()
        rid_headers = [(b"x-request-id", b"r1")]
        await middleware(app, CollectorRegistry())(
            http_scope(headers=rid_headers), receive, recorder
        )

        assert recorder.headers[:2] == [(b"content-type", b"text/plain"), (b"x-request-id", b"r1")]
        assert [name for name, _ in recorder.headers[2:]] == [b"traceparent"]
        assert shared_headers == [(b"content-type", b"text/plain")]

    async def test_exception_before_any_response_counts_as_500(self) -> None:
        async def app(scope: Scope, receive: Receive, send: Send) -> None:
            raise RuntimeError("boom")

        registry = CollectorRegistry()
        with pytest.raises(RuntimeError):
            await middleware(app, registry)(http_scope(), receive, Recorder())

        assert count(registry, "500") == 1

    async def test_app_returning_without_a_response_counts_as_500(self) -> None:
        async def app(scope: Scope, receive: Receive, send: Send) -> None:
            return None

        registry = CollectorRegistry()
        await middleware(app, registry)(http_scope(), receive, Recorder())

        assert count(registry, "500") == 1

    async def test_cancelled_request_counts_as_client_closed(self) -> None:
        async def app(scope: Scope, receive: Receive, send: Send) -> None:
            raise asyncio.CancelledError

        registry = CollectorRegistry()
        with pytest.raises(asyncio.CancelledError):
            await middleware(app, registry)(http_scope(), receive, Recorder())

        assert count(registry, "499") == 1
        assert count(registry, "500") is None
        assert request_id() is None  # the context was reset on the way out


class TestRouteTemplates:
    def test_mounts_and_plain_routes_resolve_by_endpoint(self) -> None:
        async def endpoint(scope: Scope, receive: Receive, send: Send) -> None:
            return None

        async def static(scope: Scope, receive: Receive, send: Send) -> None:
            return None

        class Router:
            routes = [Route("/plain/{x}", endpoint), Mount("/files", app=static)]

        templates = RouteTemplates(Router())

        assert templates({"endpoint": endpoint}) == "/plain/{x}"
        assert templates({"endpoint": static}) == "/files/{path}"
        assert templates({"endpoint": object()}) == "<unmatched>"
        assert templates({}) == "<unmatched>"

    def test_routes_added_later_are_found(self) -> None:
        async def late(scope: Scope, receive: Receive, send: Send) -> None:
            return None

        class Router:
            routes: list[Route] = []

        router = Router()
        templates = RouteTemplates(router)
        assert templates({"endpoint": late}) == "<unmatched>"

        router.routes.append(Route("/late", late))

        assert templates({"endpoint": late}) == "/late"


class TestInTheApp:
    async def test_api_routes_are_matched_before_operational_ones(self) -> None:
        api = APIRouter()

        @api.get("/v1/things")
        async def things() -> list[str]:
            return []

        app = create_service_app(title="t", version="0", routers=[api])

        async with (
            LifespanManager(app) as manager,
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=manager.app), base_url="http://t"
            ) as client,
        ):
            assert (await client.get("/v1/things")).status_code == 200
            assert (await client.get("/healthz")).status_code == 200
            assert (await client.get("/static/docs/favicon.png")).status_code == 200

        # The included router is one entry of the app's routes (FastAPI keeps it nested).
        routes = app.router.routes
        included = next(
            i for i, r in enumerate(routes) if getattr(r, "original_router", None) is api
        )
        paths = [getattr(route, "path", None) for route in routes]
        assert included < paths.index("/healthz")
        assert included < paths.index("/openapi.json")

    async def test_middleware_added_by_a_service_runs_inside_the_context(self) -> None:
        seen: list[str | None] = []

        async def record(request: Request, call_next: RequestResponseEndpoint) -> Response:
            seen.append(request_id())
            return JSONResponse({})

        app: FastAPI = create_service_app(
            title="t", version="0", middleware=[Middleware(BaseHTTPMiddleware, dispatch=record)]
        )

        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://t"
        ) as client:
            response = await client.get("/anything", headers={"X-Request-ID": "svc-mw"})

        assert seen == ["svc-mw"]
        assert response.headers["x-request-id"] == "svc-mw"
