"""One model execution is one span: child of the batch's first traced request, linked to each.

The spans are exported over OTLP/HTTP to a receiver of the test's own.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from prometheus_client import CollectorRegistry
from tessera_inference.domain.batcher import DynamicBatcher
from tessera_inference.metrics import InferenceMetrics, ModelMetrics
from tessera_runtime import tracing
from tessera_runtime.tracing import configure_tracing, flush_tracing
from tessera_stack.otlp_receiver import OtlpReceiver, ReceivedSpan, otlp_receiver

from .test_batcher import RecordingModel, distinct_rows
from .test_batcher import executor as executor  # one inference thread


@pytest.fixture
def receiver() -> Iterator[OtlpReceiver]:
    with otlp_receiver() as running:
        configure_tracing(
            "inference", "1", environ={"OTEL_EXPORTER_OTLP_ENDPOINT": running.endpoint}
        )
        try:
            yield running
        finally:
            configure_tracing("inference", "1", environ={})


def _batcher(executor: ThreadPoolExecutor, model: RecordingModel) -> DynamicBatcher:
    metrics = ModelMetrics(InferenceMetrics(CollectorRegistry()), "breast-cancer", "1.0")
    return DynamicBatcher(model, executor, max_batch_size=64, max_wait_s=0.05, metrics=metrics)


async def _request(batcher: DynamicBatcher, name: str, *, traced: bool = True) -> None:
    if traced:
        with tracing.span(name, kind=tracing.SpanKind.SERVER):
            await batcher.infer(distinct_rows(1))
    else:
        await batcher.infer(distinct_rows(1))


def _exported(receiver: OtlpReceiver, count: int) -> list[ReceivedSpan]:
    flush_tracing()
    return receiver.wait_for(lambda spans: len(spans) >= count)


async def test_a_batch_of_traced_requests_is_one_execution_span_linked_to_each(
    executor: ThreadPoolExecutor, receiver: OtlpReceiver
) -> None:
    model = RecordingModel(0.0)
    batcher = _batcher(executor, model)
    names = [f"request {n}" for n in range(5)]
    # Each request is the root of a trace of its own; the batcher gathers them.
    await asyncio.gather(*(_request(batcher, name) for name in names))
    assert model.batches == [5]

    spans = _exported(receiver, 6)
    requests = {s.name: s for s in spans if s.name in names}
    (execution,) = [s for s in spans if s.name == "execute breast-cancer"]
    assert len({s.trace_id for s in requests.values()}) == 5
    assert {(k.trace_id, k.span_id) for k in execution.links} == {
        (s.trace_id, s.span_id) for s in requests.values()
    }
    # In the trace of the request that opened the batch.
    first = requests["request 0"]
    assert (execution.trace_id, execution.parent_span_id) == (first.trace_id, first.span_id)
    assert execution.attributes["inference.batch.size"] == 5
    assert execution.attributes["inference.model.version"] == "1.0"


async def test_untraced_requests_share_the_batch_without_a_link(
    executor: ThreadPoolExecutor, receiver: OtlpReceiver
) -> None:
    model = RecordingModel(0.0)
    batcher = _batcher(executor, model)
    await asyncio.gather(
        _request(batcher, "untraced", traced=False),
        _request(batcher, "traced"),
        _request(batcher, "untraced", traced=False),
    )
    assert model.batches == [3]

    spans = _exported(receiver, 2)
    traced = next(s for s in spans if s.name == "traced")
    (execution,) = [s for s in spans if s.name == "execute breast-cancer"]
    assert [(k.trace_id, k.span_id) for k in execution.links] == [(traced.trace_id, traced.span_id)]
    assert execution.parent_span_id == traced.span_id
    assert (execution.attributes["inference.batch.size"], execution.attributes["inference.batch.traced"]) == (3, 1)  # fmt: skip


async def test_a_batch_of_untraced_requests_makes_no_span(
    executor: ThreadPoolExecutor, receiver: OtlpReceiver
) -> None:
    batcher = _batcher(executor, RecordingModel(0.0))
    await asyncio.gather(*(_request(batcher, "x", traced=False) for _ in range(3)))
    await _request(batcher, "traced")  # shows the export works

    names = [s.name for s in _exported(receiver, 2)]
    assert sorted(names) == ["execute breast-cancer", "traced"]
