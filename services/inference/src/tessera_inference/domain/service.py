"""What every API calls: resolve a model, validate rows, run them (batched or not).

HTTP v1, HTTP v2 (Open Inference Protocol) and the NATS worker share one
`InferenceService`, so they share its batchers too: a v1 request and a NATS
request for the same model version can ride in the same ONNX call.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np
from tessera_contracts import v1
from tessera_runtime import tracing

from tessera_inference.domain.batcher import BatcherClosed, DynamicBatcher, execute
from tessera_inference.domain.engine import OnnxModel, Rows, inference_executor
from tessera_inference.domain.registry import ModelRegistry
from tessera_inference.errors import InvalidInput, ShuttingDown
from tessera_inference.metrics import Api, InferenceMetrics, ModelMetrics
from tessera_inference.settings import Settings


def as_rows(data: Sequence[Any] | np.ndarray, shape: Sequence[int], n_features: int) -> Rows:
    """Validated float32 rows [N, n_features] from flat row-major (or nested) values.

    Every check happens here, before the rows can join a batch, so one caller's
    bad input fails only that caller.

    Raises:
        InvalidInput: wrong shape, or values that are not finite and >= 0.
    """
    if len(shape) != 2 or shape[1] != n_features or shape[0] < 1:
        raise InvalidInput(f"shape must be [N, {n_features}] with N >= 1, got {list(shape)}")
    try:
        # No dtype here: numpy would quietly turn "1.5" or true into numbers,
        # and JSON clients sending those have a bug worth telling them about.
        values = np.asarray(data)
    except (TypeError, ValueError) as error:  # ragged nesting
        raise InvalidInput(f"data must be numbers nested like the shape: {error}") from error
    if values.dtype.kind not in "fiu":
        raise InvalidInput("data must hold only numbers")
    if values.size != shape[0] * shape[1]:
        raise InvalidInput(
            f"shape {list(shape)} needs {shape[0] * shape[1]} values, got {values.size}"
        )
    with np.errstate(over="ignore"):  # overflow to inf is reported below
        rows = values.astype(np.float32).reshape(shape[0], shape[1])
    # float32, so a finite float64 too large for float32 (1e39) is caught as inf.
    bad = ~np.isfinite(rows) | (rows < 0)
    if bad.any():
        row, column = (int(i) for i in np.argwhere(bad)[0])
        raise InvalidInput(
            f"features must be finite and >= 0; row {row}, column {column} is {rows[row, column]}"
        )
    return rows


class InferenceService:
    def __init__(
        self, registry: ModelRegistry, settings: Settings, metrics: InferenceMetrics
    ) -> None:
        self.registry = registry
        self.settings = settings
        self.metrics = metrics
        self._executor = inference_executor(settings.inference_threads)
        self._batchers: dict[str, DynamicBatcher] = {}
        self._model_metrics: dict[str, ModelMetrics] = {}
        for model in registry:
            model_metrics = self._model_metrics[model.key] = ModelMetrics(
                metrics, model.card.name, model.card.version
            )
            enabled, max_batch_size, max_wait_ms = self.batch_settings(model)
            if enabled:
                self._batchers[model.key] = DynamicBatcher(
                    model.run,
                    self._executor,
                    max_batch_size=max_batch_size,
                    max_wait_s=max_wait_ms / 1000,
                    metrics=model_metrics,
                )
        self._closed = False

    def batch_settings(self, model: OnnxModel) -> tuple[bool, int, float]:
        """(enabled, max_batch_size, max_wait_ms) of `model`: global, then model, then version."""
        s = self.settings
        enabled, size, wait = s.batching_enabled, s.max_batch_size, s.max_batch_wait_ms
        for key in (model.card.name, model.key):
            override = s.batch_overrides.get(key)
            if override is not None:
                enabled = enabled if override.enabled is None else override.enabled
                size = size if override.max_batch_size is None else override.max_batch_size
                wait = wait if override.max_wait_ms is None else override.max_wait_ms
        return enabled, size, wait

    def batcher(self, model: OnnxModel) -> DynamicBatcher | None:
        return self._batchers.get(model.key)

    async def infer(self, model: OnnxModel, rows: Rows, api: Api) -> Rows:
        """Probabilities [N, len(labels)] for validated `rows`, off the event loop."""
        if self._closed:
            raise ShuttingDown()
        started = time.perf_counter()
        name, version = model.card.name, model.card.version
        batcher = self._batchers.get(model.key)
        try:
            if batcher is not None:
                result = await batcher.infer(rows)
            else:
                # Not batched: the request's queue is the wait for an inference thread.
                enqueued = (time.perf_counter(),)
                span = tracing.recording_span()
                loop = asyncio.get_running_loop()
                result = await loop.run_in_executor(
                    self._executor,
                    execute,
                    model.run,
                    rows,
                    enqueued,
                    self._model_metrics[model.key],
                    () if span is None else (span,),
                )
        except BatcherClosed as error:
            raise ShuttingDown() from error
        except RuntimeError as error:
            if self._closed:  # the executor was shut down under us
                raise ShuttingDown() from error
            self.metrics.observe_request(name, version, api, "error", None)
            raise
        except Exception:
            self.metrics.observe_request(name, version, api, "error", None)
            raise
        self.metrics.observe_request(name, version, api, "ok", time.perf_counter() - started)
        return result

    def reject(self, model: OnnxModel, api: Api) -> None:
        """Count a request for `model` whose input was invalid."""
        self.metrics.observe_request(model.card.name, model.card.version, api, "invalid", None)

    async def predict_v1(self, request: v1.PredictionRequest, api: Api) -> v1.PredictionResponse:
        """The v1 contract: one sample, a decision threshold on the positive class."""
        started = time.perf_counter()
        model = self.registry.get(self.settings.default_model, request.model_version)
        try:
            rows = as_rows(request.features, (1, len(request.features)), model.n_features)
        except InvalidInput:
            self.reject(model, api)
            raise
        probabilities = (await self.infer(model, rows, api))[0]
        positive = model.card.positive_index
        if probabilities[positive] >= request.confidence_threshold:
            prediction = positive
        else:
            # Below the threshold: the most probable of the other classes
            # (for these binary models, simply the other class).
            others = probabilities.copy()
            others[positive] = -1.0
            prediction = int(np.argmax(others))
        return v1.PredictionResponse(
            prediction=prediction,
            confidence=float(probabilities[prediction]),
            model_version=f"v{model.card.version}",
            timestamp=datetime.now(UTC),
            processing_time_ms=(time.perf_counter() - started) * 1000,
            label=model.labels[prediction],
            probabilities={
                label: float(p) for label, p in zip(model.labels, probabilities, strict=True)
            },
        )

    async def close(self) -> None:
        """Finish every batch in flight, then stop the inference threads."""
        self._closed = True
        await asyncio.gather(*(b.close() for b in self._batchers.values()))
        self._executor.shutdown(wait=True)
