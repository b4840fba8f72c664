"""Per-model Prometheus metrics, registered on the app's own registry.

Labels only ever take values of loaded models (never a name from a request),
so a client cannot blow up the series count by asking for made-up models.
"""

from __future__ import annotations

from typing import Literal

from prometheus_client import CollectorRegistry, Counter, Histogram

Api = Literal["v1", "v2", "nats"]
Outcome = Literal["ok", "invalid", "error"]

_LATENCY_BUCKETS = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
)  # fmt: skip
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 1024, 4096)


class InferenceMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "inference_requests",
            "Inference requests by model, version, API (v1, v2, nats) and outcome.",
            ["model", "version", "api", "outcome"],
            registry=registry,
        )
        self.latency = Histogram(
            "inference_request_duration_seconds",
            "Time from validated input to probabilities (batching wait included).",
            ["model", "version", "api"],
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )
        self.batch_size = Histogram(
            "inference_batch_size",
            "Rows per ONNX Runtime call.",
            ["model", "version"],
            buckets=_BATCH_BUCKETS,
            registry=registry,
        )

        # labels() takes a lock and builds a tuple per call; the label sets are
        # bounded (loaded models x APIs), so cache the children.
        self._counters: dict[tuple[str, str, str, str], Counter] = {}
        self._histograms: dict[tuple[str, str, str], Histogram] = {}

    def observe_request(
        self, model: str, version: str, api: Api, outcome: Outcome, seconds: float | None
    ) -> None:
        key = (model, version, api, outcome)
        counter = self._counters.get(key)
        if counter is None:
            counter = self._counters[key] = self.requests.labels(*key)
        counter.inc()
        if seconds is not None:
            hkey = (model, version, api)
            histogram = self._histograms.get(hkey)
            if histogram is None:
                histogram = self._histograms[hkey] = self.latency.labels(*hkey)
            histogram.observe(seconds)
