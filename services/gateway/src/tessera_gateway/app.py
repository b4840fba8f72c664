"""The gateway's app factory.

Run it with `python -m tessera_gateway` (port 8000): the HTTP server with the header
limits, timeouts and probe port of `tessera_runtime.server`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any, TypedDict

from fastapi import FastAPI
from prometheus_client import CollectorRegistry
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from tessera_contracts.operations import CATALOG, INFERENCE, Operation
from tessera_runtime import (
    ACCESS_LOGGER,
    configure_error_tracking,
    configure_logging,
    configure_tracing,
    create_service_app,
)

from tessera_gateway import __version__
from tessera_gateway.api.asyncapi import asyncapi_router
from tessera_gateway.api.events import events_router
from tessera_gateway.api.openapi import install_tidy_openapi
from tessera_gateway.api.proxied import proxied_operations, proxied_router, proxied_routes
from tessera_gateway.api.router import ProxyRouter
from tessera_gateway.clients.http import AiohttpClient, HttpxClient, UpstreamClient
from tessera_gateway.clients.resilience import CircuitBreaker, RetryBudget
from tessera_gateway.clients.upstream import RetryPolicy, Upstream
from tessera_gateway.domain.access import Gatekeeper
from tessera_gateway.domain.auth import KeyStore
from tessera_gateway.domain.ratelimit import Policy, RateLimiter
from tessera_gateway.messaging.hub import EventHub
from tessera_gateway.metrics import UpstreamMetrics
from tessera_gateway.settings import Settings

DESCRIPTION = """\
The public API of Tessera: the product catalog and the ML models behind one door.

**Authentication.** Send an API key as `Authorization: Bearer <key>` or
`X-API-Key: <key>`. Each key has scopes: `catalog:read` (GET catalog
operations and `/v1/events`), `catalog:write` (catalog changes) and
`inference:predict` (predictions and model metadata). GET operations may also
be open to callers without a key, if the deployment allows anonymous reads.
A missing or invalid key is 401, a missing scope 403. After too many invalid
keys from one client address, requests with a key from it are 429 (with
`Retry-After`) for a while, whatever the key.

**Limits.** Each key (each client address, without one) has a token bucket:
every response carries `RateLimit-Limit`, `RateLimit-Remaining`,
`RateLimit-Reset` and `RateLimit-Policy`; beyond it the answer is 429 with
`Retry-After`. Request bodies above the configured size are 413.

**Errors** are `application/problem+json` (RFC 9457). A catalog 4xx reaches you
as the catalog sent it (a 422 lists each invalid field in `errors`); the
Open Inference Protocol operations under `/v2` answer their own errors as
`{"error": "..."}`. When a service behind the gateway is down, slow or
failing, the answer is 502, 503 (with `Retry-After` while its circuit is open)
or 504, with `upstream` naming the service.

**Correlation.** Every response has an `X-Request-ID` (yours, if you sent a
sane one); quote it when reporting a problem. `traceparent` is honoured.

**Messaging.** The NATS subjects behind the events (the `CATALOG` stream) and
`inference.v1.predict` are described by the AsyncAPI 3.0 document at
[asyncapi.json](asyncapi.json).
"""

TAGS = [
    {
        "name": "catalog v1",
        "description": "Products with float prices and offset pages; reviews; inventory.",
    },
    {"name": "catalog v2", "description": "Products with exact money and keyset (cursor) pages."},
    {
        "name": "inference",
        "description": "`/v1/predict` and the Open Inference Protocol (KServe v2).",
    },
    {"name": "events", "description": "Live catalog changes as Server-Sent Events."},
]

logger = logging.getLogger("tessera_gateway")


class State(TypedDict):
    settings: Settings
    gatekeeper: Gatekeeper
    events: EventHub


def _client(settings: Settings, base_url: str) -> UpstreamClient:
    client = HttpxClient if settings.upstream_client == "httpx" else AiohttpClient
    return client(
        base_url,
        max_connections=settings.upstream_max_connections,
        connect_timeout_s=settings.connect_timeout_s,
        keepalive_s=settings.upstream_keepalive_s,
    )


def _upstream(
    settings: Settings, name: str, base_url: str, timeout_s: float, metrics: UpstreamMetrics
) -> Upstream:
    return Upstream(
        name,
        lambda: _client(settings, base_url),
        timeout_s=timeout_s,
        max_in_flight=settings.upstream_max_connections,
        queue_timeout_s=settings.upstream_queue_timeout_s,
        retry=RetryPolicy(
            settings.retry_max_attempts, settings.retry_backoff_s, settings.retry_backoff_max_s
        ),
        budget=RetryBudget(ratio=settings.retry_budget_ratio, minimum=settings.retry_budget_min),
        breaker=CircuitBreaker(
            failure_threshold=settings.breaker_failure_threshold,
            open_s=settings.breaker_open_s,
            half_open_probes=settings.breaker_half_open_probes,
        ),
        metrics=metrics,
    )


def _cors(settings: Settings) -> list[Middleware]:
    if not settings.cors_allow_origins:
        return []
    options: dict[str, Any] = {
        "allow_origins": settings.cors_allow_origins,
        "allow_credentials": settings.cors_allow_credentials,
        "allow_methods": ["GET", "POST", "PUT", "PATCH", "DELETE"],
        "allow_headers": [
            "Authorization",
            "X-API-Key",
            "Content-Type",
            "If-Match",
            "If-None-Match",
            "Idempotency-Key",
            "Last-Event-ID",
            "X-Request-ID",
            "traceparent",
        ],
        "expose_headers": [
            "ETag",
            "Location",
            "Retry-After",
            "RateLimit-Limit",
            "RateLimit-Remaining",
            "RateLimit-Reset",
            "RateLimit-Policy",
            "X-Request-ID",
            "Idempotent-Replayed",
        ],
        "max_age": settings.cors_max_age_s,
    }
    return [Middleware(CORSMiddleware, **options)]


def create_app(
    settings: Settings | None = None,
    *,
    clock: Callable[[], float] = time.monotonic,
    operations: Sequence[Operation] | None = None,
) -> FastAPI:
    """The gateway app.

    Args:
        settings: default: read from the environment.
        clock: seconds, of the rate limiters' token buckets (tests pass one they
            can move on).
        operations: the operations to forward; default: every operation of the
            contract's tables that a service behind the gateway owns.
    """
    settings = settings or Settings()
    configure_logging("gateway", settings.log_level, flush_interval_s=settings.log_flush_interval_s)
    configure_error_tracking("gateway", __version__, settings.sentry_dsn)
    configure_tracing("gateway", __version__)
    if not settings.access_log:
        logging.getLogger(ACCESS_LOGGER).setLevel(logging.WARNING)

    gatekeeper = Gatekeeper(
        KeyStore.from_setting(settings.api_keys),
        RateLimiter(settings.rate_limit_max_buckets, clock),
        anonymous_reads=settings.anonymous_reads,
        key_policy=Policy(settings.rate_limit_per_s, settings.rate_limit_burst),
        anonymous_policy=Policy(
            settings.anonymous_rate_limit_per_s, settings.anonymous_rate_limit_burst
        ),
        failures=RateLimiter(settings.rate_limit_max_buckets, clock),
        failure_policy=Policy(settings.auth_failure_rate_per_s, settings.auth_failure_burst),
    )
    events = EventHub(settings)
    # One registry for the app: the gateway's metrics and the runtime's HTTP metrics.
    registry = CollectorRegistry()
    metrics = UpstreamMetrics(registry)
    catalog = _upstream(
        settings, "catalog", str(settings.catalog_url), settings.catalog_timeout_s, metrics
    )
    inference_upstream = _upstream(
        settings, "inference", str(settings.inference_url), settings.inference_timeout_s, metrics
    )
    upstreams = [catalog, inference_upstream]
    proxied = proxied_router(
        proxied_operations() if operations is None else operations,
        {CATALOG: catalog, INFERENCE: inference_upstream},
        gatekeeper,
        max_body_bytes=settings.max_body_bytes,
        anonymous_reads=settings.anonymous_reads,
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[State]:
        for upstream in upstreams:
            upstream.open()
        await events.start()
        try:
            yield {"settings": settings, "gatekeeper": gatekeeper, "events": events}
        finally:
            await events.stop()
            for upstream in upstreams:
                await upstream.aclose()

    app = create_service_app(
        title="Tessera API",
        version=__version__,
        lifespan=lifespan,
        # The request path (api/router.py): inside the request context, CORS (when
        # configured) answers preflights and marks every answer; then the proxy
        # router serves the proxied operations, and FastAPI everything else.
        middleware=[*_cors(settings), Middleware(ProxyRouter, routes=proxied_routes(proxied))],
        # `proxied` documents the operations the ProxyRouter serves (and gives
        # FastAPI's 405s on their paths).
        routers=[
            proxied,
            events_router(anonymous_reads=settings.anonymous_reads),
            asyncapi_router(),
        ],
        registry=registry,
        description=DESCRIPTION,
        openapi_tags=TAGS,
        service="gateway",
    )
    install_tidy_openapi(app)
    return app
