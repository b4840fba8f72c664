"""`/metrics`: per-model request counts, latency and batch sizes."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest


def sample(metrics: str, name: str, **labels: str) -> float | None:
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in metrics.splitlines():
        if line.startswith(f"{name}{{{wanted}}} "):
            return float(line.rsplit(" ", 1)[1])
    return None


def oip(rows: int) -> dict[str, Any]:
    return {
        "inputs": [
            {"name": "x", "shape": [rows, 10], "datatype": "FP32", "data": [1.0] * 10 * rows}
        ]
    }


@pytest.fixture
async def metrics(client: httpx.AsyncClient, benign: list[float]) -> str:
    await client.post("/v1/predict", json={"features": benign})
    await client.post("/v1/predict", json={"features": benign, "model_version": "v2.0"})
    await client.post("/v1/predict", json={"features": [*benign[:9], 1e39]})  # invalid for v1.0
    await client.post("/v2/models/breast-cancer/versions/1/infer", json=oip(5))
    await client.post("/v2/models/breast-cancer/infer", json=oip(1) | {"outputs": [{"name": "z"}]})
    await client.post("/v2/models/made-up/infer", json=oip(1))
    return (await client.get("/metrics")).text


class TestInferenceMetrics:
    async def test_requests_are_counted_per_model_version_api_and_outcome(
        self, metrics: str
    ) -> None:
        v1_0 = {"model": "breast-cancer", "version": "1.0"}
        v2_0 = {"model": "breast-cancer", "version": "2.0"}

        assert sample(metrics, "inference_requests_total", api="v1", outcome="ok", **v1_0) == 1
        assert sample(metrics, "inference_requests_total", api="v1", outcome="ok", **v2_0) == 1
        assert sample(metrics, "inference_requests_total", api="v1", outcome="invalid", **v1_0) == 1
        assert sample(metrics, "inference_requests_total", api="v2", outcome="ok", **v1_0) == 1
        assert sample(metrics, "inference_requests_total", api="v2", outcome="invalid", **v2_0) == 1

    async def test_latency_is_recorded_for_answered_requests(self, metrics: str) -> None:
        count = sample(
            metrics, "inference_request_duration_seconds_count",
            api="v1", model="breast-cancer", version="1.0",
        )  # fmt: skip
        total = sample(
            metrics, "inference_request_duration_seconds_sum",
            api="v1", model="breast-cancer", version="1.0",
        )  # fmt: skip

        assert count == 1
        assert total is not None
        assert 0 < total < 1

    async def test_batch_sizes_count_rows_per_onnx_call(self, metrics: str) -> None:
        rows = sample(metrics, "inference_batch_size_sum", model="breast-cancer", version="1.0")
        over_4 = sample(
            metrics, "inference_batch_size_bucket", le="4.0", model="breast-cancer", version="1.0"
        )

        assert rows == 6  # one v1 row and five v2 rows; the invalid one never ran
        assert over_4 == 1  # the v1 row alone; the 5-row tensor is above the bucket

    async def test_a_made_up_model_name_creates_no_series(self, metrics: str) -> None:
        assert "made-up" not in metrics


async def test_concurrent_requests_show_up_as_larger_batches(
    serve: Any, settings: Any, benign: list[float]
) -> None:
    async with serve(settings.model_copy(update={"max_batch_wait_ms": 20})) as client:
        await asyncio.gather(
            *(client.post("/v1/predict", json={"features": benign}) for _ in range(16))
        )
        text = (await client.get("/metrics")).text

    calls = sample(text, "inference_batch_size_count", model="breast-cancer", version="1.0")
    assert sample(text, "inference_batch_size_sum", model="breast-cancer", version="1.0") == 16
    assert calls is not None
    assert calls < 16
