"""``create_service_app``: a FastAPI app with everything a Tessera service must have."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from typing import Any

from fastapi import FastAPI
from prometheus_client import CollectorRegistry
from starlette.routing import BaseRoute
from starlette.types import ASGIApp

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
from tessera_runtime.problems import install_problem_handlers

__all__ = ["Lifespan", "create_service_app"]

Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[Mapping[str, Any]]]
"""A lifespan that yields the service's state (a TypedDict), as in FastAPI."""

_QUIET_ROUTES = ("/healthz", "/readyz", "/metrics")


class _ServiceApp(FastAPI):
    """FastAPI with the request context middleware outside everything else."""

    def __init__(self, *, http_metrics: HttpMetrics, **kwargs: Any) -> None:
        self._http_metrics = http_metrics
        self._operational_routes: list[BaseRoute] = []
        super().__init__(**kwargs)

    def build_middleware_stack(self) -> ASGIApp:
        # Runs once, on the first ASGI call, after the service added its routers.
        # Every request walks the route list in order, so the operational routes
        # (probes, metrics, docs: rare, and fixed paths no API route shares) move
        # behind the API routes instead of costing each API request a regex match
        # apiece. (A top-level catch-all route would now shadow them: don't add one.)
        if self._operational_routes:
            ops = {id(route) for route in self._operational_routes}
            api = [route for route in self.router.routes if id(route) not in ops]
            self.router.routes[:] = api + self._operational_routes
            self._operational_routes = []
        # add_middleware() can only place middleware inside ServerErrorMiddleware,
        # whose 500 response for an unhandled exception would then bypass us: no
        # X-Request-ID on exactly the responses people need to report, and a status
        # our metrics never see. Wrapping the whole stack puts us outermost.
        return RequestContextMiddleware(
            super().build_middleware_stack(),
            metrics=self._http_metrics,
            route_templates=RouteTemplates(self.router),
            quiet_routes=_QUIET_ROUTES,
        )

    def openapi(self) -> dict[str, Any]:
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
    readiness_checks: Sequence[ReadinessCheck] = (),
    description: str = "",
    openapi_tags: list[dict[str, Any]] | None = None,
    service: str | None = None,
    probe_timing: ProbeTiming | None = None,
) -> FastAPI:
    """Create a service's FastAPI app with the shared plumbing installed.

    The app has ``/healthz``, ``/readyz`` (running ``readiness_checks``),
    ``/metrics`` (registry at ``app.state.metrics_registry``), ``/docs`` and
    ``/redoc`` without any CDN, problem+json error handlers, and a request
    context middleware (``X-Request-ID``, ``traceparent``, HTTP metrics, access log).

    Args:
        title: the API title, and the service name unless ``service`` is given.
        version: the service version.
        lifespan: opens the service's resources and yields its state.
        readiness_checks: what ``/readyz`` checks, concurrently, each with its timeout.
        description: OpenAPI description (Markdown).
        openapi_tags: OpenAPI tag metadata.
        service: the ``service`` of health reports, when the title is not it
            (``title="Tessera API", service="gateway"``).
        probe_timing: heartbeat, stall and staleness bounds of the probe port
            (:class:`tessera_runtime.probes.ProbeServer`); the defaults suit production.

    Returns:
        The app; add the service's routers to it.
    """
    registry = CollectorRegistry()
    app = _ServiceApp(
        http_metrics=HttpMetrics(registry),
        title=title,
        version=version,
        description=description,
        openapi_tags=openapi_tags,
        docs_url=None,
        redoc_url=None,
        lifespan=_service_lifespan(lifespan),
        # Metrics and trace context are ours (Prometheus, traceparent); FastAPI's
        # own OpenTelemetry hooks would only add per-request work.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.metrics_registry = registry
    app.state.draining = False
    install_problem_handlers(app)
    install_health(
        app,
        service=service or title,
        version=version,
        checks=readiness_checks,
        timing=probe_timing,
    )
    app.add_api_route("/metrics", metrics_endpoint, methods=["GET"], include_in_schema=False)
    install_docs(app)
    app._operational_routes = list(app.router.routes)
    return app
