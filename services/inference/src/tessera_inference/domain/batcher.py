"""Dynamic batching: concurrent requests for one model version share an ONNX call.

A request joins the open batch and waits. The batch goes to the inference
thread pool when it holds `max_batch_size` rows or `max_wait_s` after its first
request arrived, whichever comes first; `max_wait_s=0` sends it at the end of
the current event-loop iteration, i.e. it gathers only what already arrived.
Each caller gets back exactly its own rows. Rows are validated before they get
here, so one caller's bad input cannot fail the others in its batch.

Every model execution, batched or not, goes through `execute`, which times it on
the inference thread and records it in the model version's `ModelMetrics` and,
with tracing on, as one span: a child of the first traced request of the batch,
linked to every traced request it served (N requests, 1 execution), so each
request's trace leads to the execution that answered it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass

import numpy as np
from opentelemetry import trace
from opentelemetry.trace import Link, Span
from tessera_runtime import tracing

from tessera_inference.domain.engine import Rows
from tessera_inference.metrics import ModelMetrics


def execute(
    run: Callable[[Rows], Rows],
    batch: Rows,
    enqueued: Sequence[float],
    metrics: ModelMetrics | None,
    requests: Sequence[Span] = (),
) -> Rows:
    """One model execution, on an inference thread: `run(batch)`, recorded in `metrics`.

    `enqueued` holds the `time.perf_counter()` at which each request of the batch
    joined the queue: its queue time ends now, when the execution starts. A
    failed execution records nothing here (its requests count as errors).
    `requests` are the recorded spans of the traced requests in the batch.
    """
    span = _execution_span(requests, metrics, len(enqueued), len(batch))
    started = time.perf_counter()
    try:
        result = run(batch)
    except BaseException as error:
        if span is not None:
            tracing.record_error(error, span)
        raise
    finally:
        if span is not None:
            span.end()
    if metrics is not None:
        compute_s = time.perf_counter() - started
        metrics.executed(len(batch), [started - joined for joined in enqueued], compute_s)
    return result


def _execution_span(
    requests: Sequence[Span], metrics: ModelMetrics | None, size: int, rows: int
) -> Span | None:
    tracer = tracing.tracer()
    if tracer is None or not requests:
        return None
    model, version = (metrics.model, metrics.version) if metrics is not None else ("", "")
    return tracer.start_span(
        f"execute {model}".strip(),
        context=trace.set_span_in_context(requests[0]),
        links=[Link(request.get_span_context()) for request in requests],
        attributes={
            "inference.model.name": model,
            "inference.model.version": version,
            "inference.batch.size": size,
            "inference.batch.rows": rows,
            "inference.batch.traced": len(requests),
        },
    )


@dataclass(slots=True)
class _Waiter:
    rows: Rows
    future: asyncio.Future[Rows]
    enqueued: float
    """`time.perf_counter()` when the request joined the batcher."""
    span: Span | None
    """The request's recorded span, which the execution's span links to."""


class BatcherClosed(RuntimeError):
    """The service is shutting down and takes no new work."""


class DynamicBatcher:
    def __init__(
        self,
        run: Callable[[Rows], Rows],
        executor: Executor,
        *,
        max_batch_size: int,
        max_wait_s: float,
        metrics: ModelMetrics | None = None,
    ) -> None:
        """Args:
        run: the synchronous model call, [N, F] float32 -> [N, C]; runs on `executor`.
        executor: where `run` is called (never the event loop).
        max_batch_size: most rows per call; one request larger than this runs alone.
        max_wait_s: longest a request waits for others before its batch is sent.
        metrics: where each execution is recorded (queue and compute times, counts).
        """
        self._run = run
        self._executor = executor
        self.max_batch_size = max_batch_size
        self.max_wait_s = max_wait_s
        self._metrics = metrics
        self._open: list[_Waiter] = []
        self._open_rows = 0
        self._timer: asyncio.TimerHandle | asyncio.Handle | None = None
        self._in_flight: set[asyncio.Future[Rows]] = set()
        self._closed = False

    async def infer(self, rows: Rows) -> Rows:
        """Probabilities for `rows` (float32, [N, F], already validated), batched with others."""
        if self._closed:
            raise BatcherClosed("the model is shutting down")
        loop = asyncio.get_running_loop()
        n = len(rows)
        if self._open and self._open_rows + n > self.max_batch_size:
            self._send()  # it would not fit: send what is open, start a new batch
        future: asyncio.Future[Rows] = loop.create_future()
        self._open.append(_Waiter(rows, future, time.perf_counter(), tracing.recording_span()))
        self._open_rows += n
        if self._open_rows >= self.max_batch_size:
            self._send()
        elif self._timer is None:
            self._timer = (
                loop.call_later(self.max_wait_s, self._send)
                if self.max_wait_s > 0
                else loop.call_soon(self._send)
            )
        return await future

    def _send(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        waiters = [w for w in self._open if not w.future.done()]  # drop cancelled callers
        self._open = []
        self._open_rows = 0
        if not waiters:
            return
        batch = waiters[0].rows if len(waiters) == 1 else np.concatenate([w.rows for w in waiters])
        enqueued = [w.enqueued for w in waiters]
        traced = [w.span for w in waiters if w.span is not None]
        try:
            call = asyncio.get_running_loop().run_in_executor(
                self._executor, execute, self._run, batch, enqueued, self._metrics, traced
            )
        except RuntimeError as error:  # the executor has been shut down
            for waiter in waiters:
                waiter.future.set_exception(BatcherClosed(str(error)))
            return
        self._in_flight.add(call)
        call.add_done_callback(lambda done: self._deliver(waiters, done))

    def _deliver(self, waiters: list[_Waiter], call: asyncio.Future[Rows]) -> None:
        self._in_flight.discard(call)
        error = call.exception() if not call.cancelled() else BatcherClosed("batch cancelled")
        if error is not None:
            # Only a fault of the model itself gets here (inputs were validated);
            # every caller of this batch sees it.
            for waiter in waiters:
                if not waiter.future.done():
                    waiter.future.set_exception(error)
            return
        result = call.result()
        start = 0
        for waiter in waiters:
            end = start + len(waiter.rows)
            if not waiter.future.done():
                waiter.future.set_result(result[start:end])
            start = end

    async def close(self) -> None:
        """Refuse new work, send what is open and wait for every batch in flight."""
        self._closed = True
        if self._open:
            self._send()
        if self._in_flight:
            await asyncio.wait(set(self._in_flight))
