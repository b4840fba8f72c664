"""Dynamic batching under concurrency, with the real model and with a slow stand-in model."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from tessera_inference.domain.batcher import BatcherClosed, DynamicBatcher
from tessera_inference.domain.engine import OnnxModel, Rows, inference_executor
from tessera_inference.domain.registry import ModelRegistry
from tessera_inference.domain.service import InferenceService, as_rows
from tessera_inference.errors import InvalidInput
from tessera_inference.metrics import InferenceMetrics, ModelMetrics
from tessera_inference.settings import PACKAGED_MODELS, Settings


@pytest.fixture
def executor() -> Iterator[ThreadPoolExecutor]:
    pool = inference_executor(1)
    yield pool
    pool.shutdown(wait=True)


@pytest.fixture(scope="module")
def model() -> OnnxModel:
    return ModelRegistry.load(PACKAGED_MODELS).get("breast-cancer", "2.0")


def distinct_rows(n: int) -> Rows:
    rng = np.random.default_rng(7)
    return rng.uniform(0.01, 30.0, size=(n, 10)).astype(np.float32)


def recorded(
    executor: ThreadPoolExecutor, *, max_batch_size: int, max_wait_s: float
) -> tuple[RecordingModel, DynamicBatcher]:
    """A batcher over a new `RecordingModel`, and that model."""
    run = RecordingModel()
    return run, DynamicBatcher(run, executor, max_batch_size=max_batch_size, max_wait_s=max_wait_s)


async def one_row_each(batcher: DynamicBatcher, callers: int) -> list[Rows]:
    """What `callers` concurrent requests of one row each get back."""
    return await asyncio.gather(*(batcher.infer(distinct_rows(1)) for _ in range(callers)))


class RecordingModel:
    """A stand-in for a model call: records each batch and the thread it ran on."""

    def __init__(self, delay_s: float = 0.0) -> None:
        self.delay_s = delay_s
        self.batches: list[int] = []
        self.threads: set[str] = set()

    def __call__(self, rows: Rows) -> Rows:
        self.threads.add(threading.current_thread().name)
        self.batches.append(len(rows))
        if self.delay_s:
            time.sleep(self.delay_s)  # what a slow model does to its thread
        # Each output row is derived from its input row, so a mix-up shows.
        return np.stack([rows[:, 0], rows[:, 1]], axis=1)


class TestEveryCallerGetsItsOwnAnswer:
    async def test_64_concurrent_callers_get_the_rows_a_single_call_gives(
        self, model: OnnxModel, executor: ThreadPoolExecutor
    ) -> None:
        from prometheus_client import CollectorRegistry

        rows = distinct_rows(64)
        registry = CollectorRegistry()
        metrics = ModelMetrics(InferenceMetrics(registry), "breast-cancer", "2.0")
        batcher = DynamicBatcher(
            model.run, executor, max_batch_size=64, max_wait_s=0.05, metrics=metrics
        )

        results = await asyncio.gather(*(batcher.infer(rows[i : i + 1]) for i in range(64)))

        expected = model.run(rows)
        for i, result in enumerate(results):
            np.testing.assert_allclose(result, expected[i : i + 1], atol=1e-6)
        labels = {"model": "breast-cancer", "version": "2.0"}
        assert registry.get_sample_value("inference_batch_size_count", labels) == 1
        assert registry.get_sample_value("inference_batch_size_sum", labels) == 64

    async def test_multi_row_requests_get_back_exactly_their_rows(
        self, executor: ThreadPoolExecutor
    ) -> None:
        run, batcher = recorded(executor, max_batch_size=64, max_wait_s=0.05)
        requests = [distinct_rows(10)[: n + 1] + n for n in range(6)]  # 1..6 rows each

        results = await asyncio.gather(*(batcher.infer(r) for r in requests))

        for request, result in zip(requests, results, strict=True):
            np.testing.assert_array_equal(result, request[:, :2])
        assert run.batches == [21]


class TestBatchLimits:
    async def test_a_full_batch_goes_without_waiting(self, executor: ThreadPoolExecutor) -> None:
        run, batcher = recorded(executor, max_batch_size=8, max_wait_s=10.0)

        started = time.perf_counter()
        await one_row_each(batcher, 8)

        assert time.perf_counter() - started < 1.0
        assert run.batches == [8]

    async def test_callers_beyond_the_maximum_go_in_the_next_batch(
        self, executor: ThreadPoolExecutor
    ) -> None:
        run, batcher = recorded(executor, max_batch_size=8, max_wait_s=0.01)

        await one_row_each(batcher, 20)

        assert sorted(run.batches, reverse=True) == [8, 8, 4]

    async def test_a_request_larger_than_the_maximum_runs_alone(
        self, executor: ThreadPoolExecutor
    ) -> None:
        run, batcher = recorded(executor, max_batch_size=8, max_wait_s=0.01)

        big, small = await asyncio.gather(
            batcher.infer(distinct_rows(20)), batcher.infer(distinct_rows(1))
        )

        assert (len(big), len(small)) == (20, 1)
        assert sorted(run.batches) == [1, 20]

    @pytest.mark.parametrize("wait_s", [0.05, 0.15])
    async def test_a_lone_caller_waits_the_maximum_wait_and_no_longer(
        self, executor: ThreadPoolExecutor, wait_s: float
    ) -> None:
        batcher = DynamicBatcher(RecordingModel(), executor, max_batch_size=64, max_wait_s=wait_s)

        started = time.perf_counter()
        await batcher.infer(distinct_rows(1))
        elapsed = time.perf_counter() - started

        assert wait_s * 0.9 <= elapsed < wait_s + 0.25

    async def test_the_wait_counts_from_the_first_request_of_the_batch(
        self, executor: ThreadPoolExecutor
    ) -> None:
        run, batcher = recorded(executor, max_batch_size=64, max_wait_s=0.5)
        first = asyncio.create_task(batcher.infer(distinct_rows(1)))
        await asyncio.sleep(0.2)

        started = time.perf_counter()
        await batcher.infer(distinct_rows(1))  # joins the open batch: ~0.3 s left, not 0.5
        await first

        assert time.perf_counter() - started < 0.45
        assert run.batches == [2]

    async def test_zero_wait_gathers_only_what_arrived_in_the_same_loop_iteration(
        self, executor: ThreadPoolExecutor
    ) -> None:
        run, batcher = recorded(executor, max_batch_size=64, max_wait_s=0.0)

        await one_row_each(batcher, 5)
        await batcher.infer(distinct_rows(1))

        assert run.batches == [5, 1]


class TestOffTheEventLoop:
    async def test_the_model_runs_on_the_inference_threads(
        self, executor: ThreadPoolExecutor
    ) -> None:
        run, batcher = recorded(executor, max_batch_size=4, max_wait_s=0.0)

        await batcher.infer(distinct_rows(1))

        assert run.threads
        assert all(name.startswith("onnx") for name in run.threads)

    async def test_the_loop_keeps_running_while_a_batch_computes(
        self, executor: ThreadPoolExecutor
    ) -> None:
        batcher = DynamicBatcher(
            RecordingModel(delay_s=0.3), executor, max_batch_size=4, max_wait_s=0.0
        )
        ticks = 0

        async def tick() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0.01)

        ticker = asyncio.create_task(tick())
        await batcher.infer(distinct_rows(1))
        ticker.cancel()

        assert ticks >= 15  # ~30 if the loop was free for the whole 0.3 s


class TestIsolation:
    @pytest.fixture
    async def service(self) -> AsyncIterator[InferenceService]:
        from prometheus_client import CollectorRegistry

        settings = Settings(nats_enabled=False, max_batch_wait_ms=50)
        service = InferenceService(
            ModelRegistry.load(PACKAGED_MODELS), settings, InferenceMetrics(CollectorRegistry())
        )
        yield service
        await service.close()

    async def test_a_bad_row_fails_only_its_own_caller(
        self, service: InferenceService, model: OnnxModel
    ) -> None:
        good = distinct_rows(8)
        bad = good[0].copy()
        bad[3] = -1.0

        async def call(values: list[float]) -> Rows:
            rows = as_rows(values, (1, 10), model.n_features)  # validation, as every API does
            return await service.infer(model, rows, "v2")

        calls = [call(list(map(float, row))) for row in good]
        calls.insert(4, call(list(map(float, bad))))
        results = await asyncio.gather(*calls, return_exceptions=True)

        assert isinstance(results[4], InvalidInput)
        answers = [r for i, r in enumerate(results) if i != 4]
        for row, answer in zip(good, answers, strict=True):
            assert isinstance(answer, np.ndarray)
            np.testing.assert_allclose(answer[0], model.run(row[None, :])[0], atol=1e-6)

    async def test_a_cancelled_caller_does_not_disturb_the_batch(
        self, executor: ThreadPoolExecutor
    ) -> None:
        run, batcher = recorded(executor, max_batch_size=64, max_wait_s=0.05)
        rows = [distinct_rows(3)[i : i + 1] for i in range(3)]
        tasks = [asyncio.create_task(batcher.infer(r)) for r in rows]
        await asyncio.sleep(0)
        tasks[1].cancel()

        done = await asyncio.gather(*tasks, return_exceptions=True)

        assert isinstance(done[1], asyncio.CancelledError)
        np.testing.assert_array_equal(done[0], rows[0][:, :2])
        np.testing.assert_array_equal(done[2], rows[2][:, :2])
        assert run.batches == [2]

    async def test_a_model_fault_reaches_every_caller_of_that_batch(
        self, executor: ThreadPoolExecutor
    ) -> None:
        def failing(rows: Rows) -> Rows:
            raise RuntimeError("onnx exploded")

        batcher = DynamicBatcher(failing, executor, max_batch_size=64, max_wait_s=0.01)

        results = await asyncio.gather(
            *(batcher.infer(distinct_rows(1)) for _ in range(3)), return_exceptions=True
        )

        assert all(isinstance(r, RuntimeError) and "exploded" in str(r) for r in results)


class TestClose:
    async def test_close_sends_the_open_batch_and_waits_for_it(
        self, executor: ThreadPoolExecutor
    ) -> None:
        run = RecordingModel(delay_s=0.05)
        batcher = DynamicBatcher(run, executor, max_batch_size=64, max_wait_s=10.0)
        pending = asyncio.create_task(batcher.infer(distinct_rows(1)))
        await asyncio.sleep(0)

        await batcher.close()

        assert pending.done()
        assert len(pending.result()) == 1

    async def test_after_close_new_requests_are_refused(self, executor: ThreadPoolExecutor) -> None:
        batcher = DynamicBatcher(RecordingModel(), executor, max_batch_size=4, max_wait_s=0.0)
        await batcher.close()

        with pytest.raises(BatcherClosed):
            await batcher.infer(distinct_rows(1))


class TestValidation:
    @pytest.mark.parametrize(
        ("data", "shape", "message"),
        [
            ([1.0] * 10, [1, 9], "shape must be [N, 10]"),
            ([1.0] * 10, [10], "shape must be [N, 10]"),
            ([1.0] * 9, [1, 10], "needs 10 values"),
            ([[1.0] * 10, [1.0] * 9], [2, 10], "nested like the shape"),
            (["1.0"] * 10, [1, 10], "only numbers"),
            ([True] * 10, [1, 10], "only numbers"),
            ([None] * 10, [1, 10], "only numbers"),
            ([1.0] * 9 + [float("nan")], [1, 10], "row 0, column 9 is nan"),
            ([1.0] * 9 + [1e39], [1, 10], "column 9 is inf"),  # finite, but not in float32
            ([1.0] * 19 + [-0.5], [2, 10], "row 1, column 9 is -0.5"),
        ],
    )
    def test_bad_input_is_refused_naming_the_problem(
        self, data: list[object], shape: list[int], message: str
    ) -> None:
        with pytest.raises(InvalidInput) as error:
            as_rows(data, shape, 10)

        assert message in str(error.value)

    def test_flat_and_nested_data_give_the_same_rows(self) -> None:
        flat = [float(i) for i in range(20)]
        nested = [flat[:10], flat[10:]]

        np.testing.assert_array_equal(as_rows(flat, [2, 10], 10), as_rows(nested, [2, 10], 10))
        assert as_rows(flat, [2, 10], 10).dtype == np.float32


class TestPerModelSettings:
    def test_a_version_override_beats_a_model_override_beats_the_global_setting(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        from prometheus_client import CollectorRegistry

        monkeypatch.setenv(
            "INFERENCE_BATCH_OVERRIDES",
            '{"breast-cancer": {"max_wait_ms": 5, "max_batch_size": 16},'
            ' "breast-cancer/1.0": {"enabled": false}}',
        )
        registry = ModelRegistry.load(PACKAGED_MODELS)
        service = InferenceService(
            registry, Settings(max_batch_wait_ms=1), InferenceMetrics(CollectorRegistry())
        )

        assert service.batcher(registry.get("breast-cancer", "1.0")) is None
        batcher = service.batcher(registry.get("breast-cancer", "2.0"))
        assert batcher is not None
        assert (batcher.max_batch_size, batcher.max_wait_s) == (16, 0.005)

    async def test_a_model_without_batching_still_answers_off_the_loop(self) -> None:
        from prometheus_client import CollectorRegistry

        settings = Settings(batching_enabled=False)
        registry = ModelRegistry.load(PACKAGED_MODELS)
        service = InferenceService(registry, settings, InferenceMetrics(CollectorRegistry()))
        model = registry.get("breast-cancer", "1.0")
        rows = distinct_rows(3)

        try:
            result = await service.infer(model, rows, "v2")
        finally:
            await service.close()

        np.testing.assert_allclose(result, model.run(rows), atol=1e-6)
