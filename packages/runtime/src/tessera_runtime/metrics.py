"""Per-app Prometheus registry with the HTTP and per-operation metrics every service exports.

Two views of the same requests, both recorded by :meth:`HttpMetrics.observe`:

* ``http_requests_total`` / ``http_request_duration_seconds``: every request,
  by method, route template and status (probes, ``/metrics`` and unmatched
  paths included);
* ``tessera_operation_requests_total`` / ``tessera_operation_errors_total`` /
  ``tessera_operation_duration_seconds``: the requests of contract operations
  only, by service and operation id (the OpenAPI ``operationId``, e.g.
  ``v1_get_product``), so one query covers the gateway, the catalog and
  inference alike. The duration histogram carries the trace id of sampled
  requests as an exemplar, which the OpenMetrics exposition shows.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Final

from fastapi.routing import iter_route_contexts
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram
from prometheus_client.exposition import generate_latest
from prometheus_client.openmetrics import exposition as openmetrics
from starlette.requests import Request
from starlette.responses import Response

from tessera_runtime import tracing
from tessera_runtime.context import current_context
from tessera_runtime.tracing import KNOWN_HTTP_METHODS

if TYPE_CHECKING:
    from starlette.routing import BaseRoute

__all__ = ["OPERATION_DURATION_BUCKETS", "UNMATCHED_ROUTE", "HttpMetrics", "metrics_endpoint"]

UNMATCHED_ROUTE = "<unmatched>"
"""``route`` label of requests that matched no route (never the raw path)."""

OPERATION_DURATION_BUCKETS: Final = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip
"""Buckets of ``tessera_operation_duration_seconds``: Prometheus' defaults plus two
below 5 ms, where the gateway's and inference's operations answer."""

_SAMPLED = "01"
_OPENMETRICS = "application/openmetrics-text"


class _Routes:
    """What ``observe`` needs of one (method, route template): resolved once, then reused."""

    __slots__ = ("by_status", "duration", "operation", "operation_duration")

    def __init__(
        self, duration: Histogram, operation: str | None, operation_duration: Histogram | None
    ) -> None:
        self.duration = duration
        self.operation = operation
        self.operation_duration = operation_duration
        self.by_status: dict[int, tuple[Counter, ...]] = {}
        """The counters one answer of each status increments."""


class HttpMetrics:
    """The HTTP and per-operation request metrics of one app, in its registry."""

    def __init__(
        self,
        registry: CollectorRegistry,
        *,
        service: str = "",
        router: object | None = None,
    ) -> None:
        """Args:
        registry: where the metrics are registered.
        service: the ``service`` label of the per-operation metrics.
        router: the app's router, whose ``routes`` serving a contract operation
            (``OperationRoute``) make the per-operation metrics; None: none does.
        """
        self.registry = registry
        self.service = service
        self._router = router
        self.requests = Counter(
            "http_requests_total",
            "HTTP requests handled, by method, route template and status code.",
            ("method", "route", "status"),
            registry=registry,
        )
        self.duration = Histogram(
            "http_request_duration_seconds",
            "Time from receiving an HTTP request to the end of its response.",
            ("method", "route"),
            registry=registry,
        )
        self.operation_requests = Counter(
            "tessera_operation_requests",
            "Answered requests of a contract operation (the OpenAPI operationId), by "
            "service, operation and HTTP status code; every status, 4xx and 5xx included.",
            ("service", "operation", "status"),
            registry=registry,
        )
        self.operation_errors = Counter(
            "tessera_operation_errors",
            "Answers of a contract operation with a status >= 500 (the server's errors), "
            "by service, operation and status. 4xx answers are the client's errors and "
            "are not counted here.",
            ("service", "operation", "status"),
            registry=registry,
        )
        self.operation_duration = Histogram(
            "tessera_operation_duration_seconds",
            "Time from receiving a contract operation's request to the end of its "
            "response, by service and operation; exemplars carry the trace_id of "
            "sampled requests (OpenMetrics exposition).",
            ("service", "operation"),
            buckets=OPERATION_DURATION_BUCKETS,
            registry=registry,
        )
        # labels() takes a lock and builds tuples on every call; the label sets are
        # bounded, so caching the children keeps the per-request cost to dict lookups.
        self._by_route: dict[tuple[str, str], _Routes] = {}
        self._operations: dict[tuple[str, str], str] = {}
        self._indexed_count = -1

    def observe(self, method: str, route: str, status: int, duration_s: float) -> None:
        """Count one finished request and record its duration."""
        # Any other method string a client sends is folded into "OTHER": label values
        # must come from a bounded set or the time series count is up to the client.
        if method not in KNOWN_HTTP_METHODS:
            method = "OTHER"
        key = (method, route)
        series = self._by_route.get(key)
        if series is None:
            series = self._by_route[key] = self._series(method, route)
        counters = series.by_status.get(status)
        if counters is None:
            counters = series.by_status[status] = self._counters(series, method, route, status)
        for counter in counters:
            counter.inc()
        series.duration.observe(duration_s)
        histogram = series.operation_duration
        if histogram is not None:
            # Only a trace this service recorded is worth pointing to: with tracing
            # off, a sampled flag is the caller's claim, not a trace anyone can find.
            ctx = current_context() if tracing.tracer() is not None else None
            if ctx is not None and ctx.trace_flags == _SAMPLED:
                histogram.observe(duration_s, {"trace_id": ctx.trace_id})
            else:
                histogram.observe(duration_s)

    def operation_of(self, method: str, route: str) -> str | None:
        """The operation id served at (method, route template), if a contract operation is."""
        routes = list(getattr(self._router, "routes", ()))
        # Routes are normally all added before the first request; re-index if not.
        if len(routes) != self._indexed_count:
            self._operations = _operation_index(routes)
            self._indexed_count = len(routes)
        return self._operations.get((method, route))

    def _series(self, method: str, route: str) -> _Routes:
        operation = self.operation_of(method, route)
        return _Routes(
            self.duration.labels(method, route),
            operation,
            None if operation is None else self.operation_duration.labels(self.service, operation),
        )

    def _counters(
        self, series: _Routes, method: str, route: str, status: int
    ) -> tuple[Counter, ...]:
        label = str(status)
        counters = [self.requests.labels(method, route, label)]
        if series.operation is not None:
            counters.append(self.operation_requests.labels(self.service, series.operation, label))
            if status >= 500:
                counters.append(self.operation_errors.labels(self.service, series.operation, label))
        return tuple(counters)


def _operation_index(routes: Iterable[BaseRoute]) -> dict[tuple[str, str], str]:
    """(method, full route template) -> operation id of every route serving an operation.

    Included routers stay nested in FastAPI: their route contexts give each original
    route with the template it is served at, the one the middleware reports.
    """
    # Imported here: tessera_runtime.operations imports (through the problem
    # handlers) the middleware, which imports this module.
    from tessera_runtime.operations import OperationRoute, operation_id

    index: dict[tuple[str, str], str] = {}
    for context in iter_route_contexts(list(routes)):
        route = context.original_route
        template = context.path_format
        if not isinstance(route, OperationRoute) or template is None:
            continue
        for method in context.methods or ():
            # The first route of a (method, template) is the one the router dispatches to.
            index.setdefault((method, template), operation_id(route.operation))
    return index


def _accepts_openmetrics(accept: str) -> bool:
    return any(
        media_range.split(";", 1)[0].strip().lower() == _OPENMETRICS
        for media_range in accept.split(",")
    )


async def metrics_endpoint(request: Request) -> Response:
    """This app's registry: the OpenMetrics text format (with exemplars) when the
    scraper accepts it (``Accept: application/openmetrics-text``, as Prometheus
    sends), the classic Prometheus text format otherwise."""
    registry: CollectorRegistry = request.app.state.metrics_registry
    if _accepts_openmetrics(request.headers.get("accept", "")):
        # prometheus_client leaves the OpenMetrics encoder unannotated.
        body: bytes = openmetrics.generate_latest(registry)  # type: ignore[no-untyped-call]
        return Response(body, media_type=openmetrics.CONTENT_TYPE_LATEST)
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
