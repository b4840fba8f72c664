"""Per-model Prometheus metrics, registered on the app's own registry.

Labels only ever take values of loaded models (never a name from a request),
so a client cannot blow up the series count by asking for made-up models.

The execution metrics follow Triton's definitions (its metrics page): a
request's *queue time* runs until the model execution carrying its rows starts;
*inference count* counts rows (a batch of n is n inferences), *execution count*
counts model executions (ONNX Runtime calls), so inference count / execution
count is the mean batch size. They mean the same with batching off: the queue
is then the wait for an inference thread, and each request is one execution.
"""

from __future__ import annotations

from collections.abc import Sequence
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
            "Rows per ONNX Runtime call that completed.",
            ["model", "version"],
            buckets=_BATCH_BUCKETS,
            registry=registry,
        )
        self.queue_duration = Histogram(
            "inference_queue_duration_seconds",
            "Time each request waited, from joining its model version's queue (the "
            "dynamic batcher; with batching off, the wait for an inference thread) until "
            "the model execution carrying its rows started (Triton's queue time, "
            "nv_inference_queue_duration_us, per request).",
            ["model", "version"],
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )
        self.compute_duration = Histogram(
            "inference_compute_duration_seconds",
            "Time of each model execution (one ONNX Runtime call, one observation per "
            "batch, however many requests it carried).",
            ["model", "version"],
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )
        self.inference_count = Counter(
            "inference_count",
            "Inferences performed: rows computed, a batch of n counting as n (Triton's "
            "nv_inference_count).",
            ["model", "version"],
            registry=registry,
        )
        self.execution_count = Counter(
            "inference_execution_count",
            "Model executions (ONNX Runtime calls), a batch counting as one; "
            "inference_count / execution_count is the mean batch size (Triton's "
            "nv_inference_exec_count).",
            ["model", "version"],
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


class ModelMetrics:
    """The execution metrics of one model version, its label children resolved once."""

    __slots__ = (
        "_batch_size",
        "_compute",
        "_executions",
        "_inferences",
        "_queue",
        "model",
        "version",
    )

    def __init__(self, metrics: InferenceMetrics, model: str, version: str) -> None:
        self.model = model
        self.version = version
        self._batch_size = metrics.batch_size.labels(model, version)
        self._queue = metrics.queue_duration.labels(model, version)
        self._compute = metrics.compute_duration.labels(model, version)
        self._inferences = metrics.inference_count.labels(model, version)
        self._executions = metrics.execution_count.labels(model, version)

    def executed(self, rows: int, queued_s: Sequence[float], compute_s: float) -> None:
        """Record one completed execution of `rows` rows that took `compute_s`, whose
        requests each waited one of `queued_s` for it to start."""
        for waited in queued_s:
            self._queue.observe(waited)
        self._compute.observe(compute_s)
        self._batch_size.observe(rows)
        self._inferences.inc(rows)
        self._executions.inc()
