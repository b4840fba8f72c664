"""Per-app Prometheus registry with the HTTP request metrics every service exports."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram
from prometheus_client.exposition import generate_latest
from starlette.requests import Request
from starlette.responses import Response

__all__ = ["UNMATCHED_ROUTE", "HttpMetrics", "metrics_endpoint"]

UNMATCHED_ROUTE = "<unmatched>"
"""``route`` label of requests that matched no route (never the raw path)."""

# Any other method string a client sends is folded into "OTHER": label values
# must come from a bounded set or the time series count is up to the client.
_KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class HttpMetrics:
    """``http_requests_total`` and ``http_request_duration_seconds`` in one registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
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
        # labels() takes a lock and builds tuples on every call; the label sets are
        # bounded, so caching the children keeps the per-request cost to dict lookups.
        self._counters: dict[tuple[str, str, int], Counter] = {}
        self._histograms: dict[tuple[str, str], Histogram] = {}

    def observe(self, method: str, route: str, status: int, duration_s: float) -> None:
        """Count one finished request and record its duration."""
        if method not in _KNOWN_METHODS:
            method = "OTHER"
        key = (method, route, status)
        counter = self._counters.get(key)
        if counter is None:
            counter = self._counters[key] = self.requests.labels(method, route, str(status))
        counter.inc()
        hkey = (method, route)
        histogram = self._histograms.get(hkey)
        if histogram is None:
            histogram = self._histograms[hkey] = self.duration.labels(method, route)
        histogram.observe(duration_s)


async def metrics_endpoint(request: Request) -> Response:
    """Prometheus text exposition of this app's registry."""
    registry: CollectorRegistry = request.app.state.metrics_registry
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
