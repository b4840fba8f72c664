"""Triton-style execution metrics: queue and compute times, inference and execution counts."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as openmetrics_families,
)
from prometheus_client.parser import text_string_to_metric_families
from tessera_inference.domain.batcher import DynamicBatcher
from tessera_inference.domain.engine import Rows
from tessera_inference.metrics import InferenceMetrics, ModelMetrics
from tessera_inference.settings import Settings

from .conftest import Serve
from .test_batcher import RecordingModel, distinct_rows
from .test_batcher import executor as executor  # one inference thread

OPENMETRICS = "application/openmetrics-text; version=1.0.0"
MODEL = {"model": "breast-cancer", "version": "1.0"}


class Recorded:
    """A batcher over a `RecordingModel`, recording into a registry of its own."""

    def __init__(
        self, executor: ThreadPoolExecutor, *, delay_s: float = 0.0, **limits: Any
    ) -> None:
        self.registry = CollectorRegistry()
        self.model = RecordingModel(delay_s)
        metrics = ModelMetrics(InferenceMetrics(self.registry), "m", "1")
        self.batcher = DynamicBatcher(self.model, executor, metrics=metrics, **limits)

    def value(self, name: str) -> float:
        return self.registry.get_sample_value(name, {"model": "m", "version": "1"}) or 0.0


class TestBatcherExecutions:
    async def test_rows_count_as_inferences_and_batches_as_executions(
        self, executor: ThreadPoolExecutor
    ) -> None:
        recorded = Recorded(executor, max_batch_size=8, max_wait_s=0.05)
        requests = [distinct_rows(n % 4 + 1) for n in range(10)]  # 23 rows in 10 requests

        await asyncio.gather(*(recorded.batcher.infer(rows) for rows in requests))

        executions = recorded.model.batches
        assert 1 < len(executions) < len(requests)
        assert recorded.value("inference_count_total") == sum(executions) == 23
        assert recorded.value("inference_execution_count_total") == len(executions)
        assert recorded.value("inference_compute_duration_seconds_count") == len(executions)
        assert recorded.value("inference_batch_size_count") == len(executions)
        assert recorded.value("inference_batch_size_sum") == 23
        # One queue time per request, however many rows it had.
        assert recorded.value("inference_queue_duration_seconds_count") == len(requests)

    async def test_a_lone_request_queues_for_the_batching_wait(
        self, executor: ThreadPoolExecutor
    ) -> None:
        recorded = Recorded(executor, max_batch_size=64, max_wait_s=0.1)

        await recorded.batcher.infer(distinct_rows(1))

        # The batch starts when the wait is over (the loop's clock may round it down a little).
        assert recorded.value("inference_queue_duration_seconds_sum") >= 0.09

    async def test_a_batch_waiting_for_a_busy_thread_is_still_queued(
        self, executor: ThreadPoolExecutor
    ) -> None:
        # One inference thread, one row per batch: the second batch waits for the first.
        recorded = Recorded(executor, delay_s=0.1, max_batch_size=1, max_wait_s=0.0)

        await asyncio.gather(*(recorded.batcher.infer(distinct_rows(1)) for _ in range(2)))

        assert recorded.model.batches == [1, 1]
        assert recorded.value("inference_queue_duration_seconds_sum") >= 0.1
        assert recorded.value("inference_compute_duration_seconds_sum") >= 0.2

    async def test_a_failed_execution_is_not_an_inference(
        self, executor: ThreadPoolExecutor
    ) -> None:
        def failing(rows: Rows) -> Rows:
            raise RuntimeError("model fault")

        registry = CollectorRegistry()
        metrics = ModelMetrics(InferenceMetrics(registry), "m", "1")
        batcher = DynamicBatcher(
            failing, executor, max_batch_size=4, max_wait_s=0.0, metrics=metrics
        )

        with pytest.raises(RuntimeError, match="model fault"):
            await batcher.infer(distinct_rows(2))

        labels = {"model": "m", "version": "1"}
        assert registry.get_sample_value("inference_count_total", labels) == 0
        assert registry.get_sample_value("inference_execution_count_total", labels) == 0


def scraped(text: str) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """Every sample of an exposition: name -> sorted label pairs -> value."""
    found: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return found


def of_model(samples: dict[str, dict[tuple[tuple[str, str], ...], float]], name: str) -> float:
    return samples.get(name, {}).get(tuple(sorted(MODEL.items())), 0.0)


def oip(rows: int) -> dict[str, Any]:
    data = np.tile(
        np.asarray([13.54, 14.36, 87.46, 566.3, 0.1, 0.08, 0.07, 0.05, 0.19, 0.06]), rows
    )
    return {
        "inputs": [{"name": "x", "shape": [rows, 10], "datatype": "FP32", "data": data.tolist()}]
    }


async def predict_concurrently(serve: Serve, settings: Settings, benign: list[float]) -> str:
    """16 one-row v1 requests and two 5-row v2 requests at once; the /metrics page after."""
    async with serve(settings) as client:
        answers = await asyncio.gather(
            *(client.post("/v1/predict", json={"features": benign}) for _ in range(16)),
            *(
                client.post("/v2/models/breast-cancer/versions/1/infer", json=oip(5))
                for _ in range(2)
            ),
        )
        assert [answer.status_code for answer in answers] == [200] * 18
        openmetrics = await client.get("/metrics", headers={"Accept": OPENMETRICS})
        # Every family of the registry is valid OpenMetrics too (the parser checks).
        families = openmetrics_families(openmetrics.text)  # type: ignore[no-untyped-call]
        assert "inference_queue_duration_seconds" in {family.name for family in families}
        return (await client.get("/metrics")).text


class TestServiceExecutions:
    async def test_with_batching_requests_share_executions(
        self, serve: Serve, settings: Settings, benign: list[float]
    ) -> None:
        batching = settings.model_copy(update={"batching_enabled": True, "max_batch_wait_ms": 20})

        samples = scraped(await predict_concurrently(serve, batching, benign))

        executions = of_model(samples, "inference_execution_count_total")
        assert of_model(samples, "inference_count_total") == 16 + 2 * 5
        assert 1 <= executions < 18
        assert of_model(samples, "inference_batch_size_count") == executions
        assert of_model(samples, "inference_compute_duration_seconds_count") == executions
        assert of_model(samples, "inference_queue_duration_seconds_count") == 18

    async def test_without_batching_each_request_is_one_execution(
        self, serve: Serve, settings: Settings, benign: list[float]
    ) -> None:
        direct = settings.model_copy(update={"batching_enabled": False})

        samples = scraped(await predict_concurrently(serve, direct, benign))

        assert of_model(samples, "inference_count_total") == 16 + 2 * 5
        assert of_model(samples, "inference_execution_count_total") == 18
        assert of_model(samples, "inference_compute_duration_seconds_count") == 18
        assert of_model(samples, "inference_queue_duration_seconds_count") == 18

    async def test_the_operations_are_counted_under_the_inference_service(
        self, serve: Serve, settings: Settings, benign: list[float]
    ) -> None:
        samples = scraped(await predict_concurrently(serve, settings, benign))

        requests = {
            dict(labels)["operation"]: value
            for labels, value in samples["tessera_operation_requests_total"].items()
            if dict(labels)["service"] == "inference" and dict(labels)["status"] == "200"
        }
        assert requests == {"v1_predict": 16, "v2_infer_version": 2}
