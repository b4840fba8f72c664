"""``create_service_app``: a FastAPI app with everything a Tessera service must have.

The app is composed through FastAPI's public API, in the order requests meet it:

* middleware (outermost first): FastAPI's own outer layers (server errors,
  telemetry, body limit), then :class:`RequestContextMiddleware` (request id,
  ``traceparent``, HTTP metrics, access log), then the service's ``middleware``,
  then :class:`UnhandledErrorMiddleware` (an exception nothing handled becomes
  the 500 problem while the request context is still bound), then FastAPI's
  exception handlers and routing;
* routes, in the order the router tries them: the service's ``routers``, then
  the operational routes (``/openapi.json``, ``/healthz``, ``/readyz``,
  ``/metrics``, ``/docs``, ``/redoc`` and their assets). The operational routes
  are rare and fixed paths no API route shares; behind the API routes they cost
  an API request no match attempts. Routes a service adds to the app itself
  afterwards are tried after them: pass API routes in ``routers``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from typing import Any, cast

from fastapi import APIRouter, FastAPI
from prometheus_client import CollectorRegistry
from starlette.middleware import Middleware

from tessera_runtime.docs import install_docs
from tessera_runtime.health import (
    ProbeTiming,
    ReadinessCheck,
    begin_draining,
    install_health,
    publish_probes,
)
from tessera_runtime.metrics import HttpMetrics, metrics_endpoint
from tessera_runtime.middleware import RequestContextMiddleware, RouteTemplates
from tessera_runtime.openapi import operation_openapi, problem_openapi
from tessera_runtime.problems import UnhandledErrorMiddleware, install_problem_handlers
from tessera_runtime.tracing import flush_tracing

__all__ = ["Lifespan", "create_service_app"]

Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[Mapping[str, Any]]]
"""A lifespan that yields the service's state (a TypedDict), as in FastAPI."""

_QUIET_ROUTES = ("/healthz", "/readyz", "/metrics")
_OPENAPI_URL = "/openapi.json"


class _ServiceApp(FastAPI):
    """FastAPI whose OpenAPI document shows errors as problems and operations as declared."""

    def openapi(self) -> dict[str, Any]:
        # FastAPI's documented extension point for post-processing the schema.
        if self.openapi_schema is None:
            self.openapi_schema = operation_openapi(
                problem_openapi(super().openapi()), self.router.routes
            )
        return self.openapi_schema


def _service_lifespan(
    lifespan: Lifespan | None,
) -> Callable[[FastAPI], AbstractAsyncContextManager[Mapping[str, Any] | None]]:
    @asynccontextmanager
    async def wrapped(app: FastAPI) -> AsyncIterator[Mapping[str, Any] | None]:
        # Reset first, so an app whose lifespan runs again (tests) is ready again.
        app.state.draining = False
        async with AsyncExitStack() as stack:
            # First in, so last out: after the service's resources closed, the
            # spans of its final requests and of its shutdown are exported (in a
            # thread: the export may wait on the collector).
            stack.push_async_callback(asyncio.to_thread, flush_tracing)
            state = None if lifespan is None else await stack.enter_async_context(lifespan(app))
            # The probe port's heartbeat and readiness run on the service's open
            # resources, and stop before they close.
            await stack.enter_async_context(publish_probes(app, state or {}))
            try:
                yield state
            finally:
                # Readiness goes false before the service's resources close.
                begin_draining(app)

    return wrapped


def create_service_app(
    *,
    title: str,
    version: str,
    lifespan: Lifespan | None = None,
    routers: Sequence[APIRouter] = (),
    middleware: Sequence[Middleware] = (),
    registry: CollectorRegistry | None = None,
    readiness_checks: Sequence[ReadinessCheck] = (),
    description: str = "",
    openapi_tags: list[dict[str, Any]] | None = None,
    service: str | None = None,
    probe_timing: ProbeTiming | None = None,
) -> FastAPI:
    """Create a service's FastAPI app with the shared plumbing installed.

    The app has ``/healthz``, ``/readyz`` (running ``readiness_checks``),
    ``/metrics``, ``/docs`` and ``/redoc`` without any CDN, problem+json error
    handlers, and a request context middleware (``X-Request-ID``,
    ``traceparent``, HTTP metrics, access log) around everything the service
    brings, so every response carries its request id, the 500 of an unhandled
    exception included.

    Args:
        title: the API title, and the service name unless ``service`` is given.
        version: the service version.
        lifespan: opens the service's resources and yields its state.
        routers: the service's API routers, included in this order and tried
            before the operational routes.
        middleware: the service's own middleware, outermost first; it runs inside
            the request context (the request id is bound, its responses are
            counted and logged) and outside FastAPI's exception handlers and
            routing. An exception escaping it is still a 500 problem, without
            the request id. (Middleware added later with ``app.add_middleware``
            runs outside the request context.)
        registry: the Prometheus registry ``/metrics`` exports, which the service
            created to register its own metrics in; default: a new one. Either
            way it is ``app.state.metrics_registry`` too.
        readiness_checks: what ``/readyz`` checks, concurrently, each with its timeout.
        description: OpenAPI description (Markdown).
        openapi_tags: OpenAPI tag metadata.
        service: the ``service`` of health reports, when the title is not it
            (``title="Tessera API", service="gateway"``).
        probe_timing: heartbeat, stall and staleness bounds of the probe port
            (:class:`tessera_runtime.probes.ProbeServer`); the defaults suit production.

    Returns:
        The app.
    """
    registry = CollectorRegistry() if registry is None else registry
    app = _ServiceApp(
        title=title,
        version=version,
        description=description,
        openapi_tags=openapi_tags,
        # Added below, behind the service's routes (FastAPI would add it first).
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
        # FastAPI types a lifespan as yielding state or None, not either: this one
        # yields the service's state, or None for a service without a lifespan.
        lifespan=cast(Lifespan, _service_lifespan(lifespan)),
        # Metrics and trace context are ours (Prometheus, traceparent); FastAPI's
        # own OpenTelemetry hooks would only add per-request work.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.metrics_registry = registry
    app.state.draining = False

    # add_middleware puts each one outside those added before it: innermost first.
    app.add_middleware(UnhandledErrorMiddleware)
    for layer in reversed(middleware):
        app.add_middleware(layer.cls, *layer.args, **layer.kwargs)
    app.add_middleware(
        RequestContextMiddleware,
        metrics=HttpMetrics(registry, service=service or title, router=app.router),
        route_templates=RouteTemplates(app.router),
        quiet_routes=_QUIET_ROUTES,
    )
    install_problem_handlers(app)

    for router in routers:
        app.include_router(router)
    # FastAPI's own /openapi.json route (root path in `servers` and all), added by
    # its setup() now that the service's routes are in front of it.
    app.openapi_url = _OPENAPI_URL
    app.setup()
    install_health(
        app,
        service=service or title,
        version=version,
        checks=readiness_checks,
        timing=probe_timing,
    )
    app.add_api_route("/metrics", metrics_endpoint, methods=["GET"], include_in_schema=False)
    install_docs(app)
    return app
