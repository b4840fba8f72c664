"""The gateway's own metrics, in the app's registry beside the runtime's HTTP metrics.

`create_app` creates the registry, builds these in it and hands the same registry
to `create_service_app`, which exports it at `/metrics`.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge


class UpstreamMetrics:
    """Failure-side metrics only: nothing here runs on a request that went well."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.failures = Counter(
            "gateway_upstream_failures_total",
            "Failed upstream attempts, by upstream and reason.",
            ("upstream", "reason"),
            registry=registry,
        )
        self.retries = Counter(
            "gateway_upstream_retries_total",
            "Upstream attempts that were retries.",
            ("upstream",),
            registry=registry,
        )
        self.breaker_open = Gauge(
            "gateway_circuit_open",
            "1 while the upstream's circuit is open or half-open, else 0.",
            ("upstream",),
            registry=registry,
        )
