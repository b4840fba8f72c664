"""Measure what the shared plumbing costs per request, in CPU time.

Run: ``uv run python packages/runtime/tests/scripts/measure_overhead.py``

The apps are called directly as ASGI callables (no server, no sockets, no
httpx), so the numbers are the Python work per request alone: a bare FastAPI
app with one route vs the same route in ``create_service_app``, with the
access log off and on (JSON formatted, written to an in-memory stream).
"""

from __future__ import annotations

import asyncio
import gc
import io
import logging
import statistics
import time
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message
from tessera_runtime import ACCESS_LOGGER, configure_logging, create_service_app

REQUESTS = 20_000
ROUNDS = 7


def add_route(app: FastAPI) -> None:
    @app.get("/v1/products/{product_id}")
    async def get_product(product_id: int) -> dict[str, int]:
        return {"id": product_id}


def scope_factory() -> Callable[[], dict[str, Any]]:
    template: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/v1/products/42",
        "raw_path": b"/v1/products/42",
        "root_path": "",
        "query_string": b"",
        "headers": [
            (b"host", b"gateway"),
            (b"accept", b"application/json"),
            (b"x-request-id", b"bench-request-0001"),
            (b"traceparent", b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
        ],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
        "state": {},
    }

    def make() -> dict[str, Any]:
        scope = dict(template)
        scope["state"] = {}
        return scope

    return make


async def run(app: ASGIApp, n: int) -> float:
    """CPU seconds per request over ``n`` sequential requests."""
    make_scope = scope_factory()
    request: Message = {"type": "http.request", "body": b"", "more_body": False}
    statuses: list[int] = []

    async def receive() -> Message:
        return request

    async def send(message: Message) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    gc.collect()
    started = time.process_time()
    for _ in range(n):
        await app(make_scope(), receive, send)
    elapsed = time.process_time() - started
    assert statuses == [200] * n, set(statuses)
    return elapsed / n


async def best_of(app: ASGIApp) -> float:
    await run(app, 2_000)  # warm-up: route caches, metric children, imports
    return min([await run(app, REQUESTS) for _ in range(ROUNDS)])


async def passthrough(request: Request, call_next: RequestResponseEndpoint) -> Response:
    return await call_next(request)


async def main() -> None:
    bare = FastAPI()
    add_route(bare)
    # For scale: what one do-nothing BaseHTTPMiddleware costs.
    base_http = FastAPI()
    add_route(base_http)
    base_http.add_middleware(BaseHTTPMiddleware, dispatch=passthrough)
    service = create_service_app(title="bench", version="0")
    add_route(service)

    sink = io.StringIO()
    configure_logging("bench", "INFO", stream=sink)
    access = logging.getLogger(ACCESS_LOGGER)

    results: dict[str, list[float]] = {"bare": [], "base_http": [], "quiet": [], "logged": []}
    # Interleave the variants so drift (thermal, other load) hits them alike.
    for _ in range(3):
        results["bare"].append(await best_of(bare))
        results["base_http"].append(await best_of(base_http))
        access.setLevel(logging.WARNING)
        results["quiet"].append(await best_of(service))
        access.setLevel(logging.NOTSET)
        sink.seek(0)
        sink.truncate()
        results["logged"].append(await best_of(service))

    bare_us = statistics.median(results["bare"]) * 1e6
    base_http_us = statistics.median(results["base_http"]) * 1e6
    quiet_us = statistics.median(results["quiet"]) * 1e6
    logged_us = statistics.median(results["logged"]) * 1e6
    print(f"bare FastAPI app:                         {bare_us:7.1f} us/request")
    print(
        f"bare + one no-op BaseHTTPMiddleware:      {base_http_us:7.1f} us/request"
        f"  (+{base_http_us - bare_us:.1f} us)"
    )
    print(
        f"create_service_app, access log off:       {quiet_us:7.1f} us/request"
        f"  (+{quiet_us - bare_us:.1f} us)"
    )
    print(
        f"create_service_app, JSON access log on:   {logged_us:7.1f} us/request"
        f"  (+{logged_us - bare_us:.1f} us)"
    )


if __name__ == "__main__":
    asyncio.run(main())
