"""Dynamic batching in the inference service, at three levels, off and on in the same run.

    uv run python -m bench.run inference [--quick]

1. engine: in-process, the batcher vs one `asyncio.to_thread` call per request;
2. NATS: request-reply on `inference.v1.predict` through a real nats-server to
   the service under uvicorn;
3. HTTP: `POST /v1/predict` to the service under uvicorn, driven by wrk.

Each level runs 64 concurrent callers (and 1 caller, where batching cannot
help) for a fixed time; every round measures batching off and on back to back,
alternating which goes first, and the tables show medians over the rounds.
A last table sweeps `max_batch_wait_ms`, which is what the default follows.
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.harness import BenchError, markdown_table, median, uvicorn_service, wrk

FACTORY = "tessera_inference.app:create_app"
CALLERS = 64
FEATURES = [13.54, 14.36, 87.46, 566.3, 0.09779, 0.08129, 0.06664, 0.04781, 0.1885, 0.05766]
# The v2.0 MLP: the model the orientation numbers were measured with.
REQUEST_BODY = (
    b'{"features": [' + ", ".join(map(str, FEATURES)).encode() + b'], "model_version": "v2.0"}'
)
SWEEP_WAITS_MS = (0.0, 1.0, 2.0)


@dataclass(frozen=True)
class Measure:
    per_s: float
    p50_ms: float
    p99_ms: float
    errors: int = 0


@dataclass(frozen=True)
class Row:
    level: str
    callers: int
    off: Measure
    on: Measure


def _summary(measures: list[Measure]) -> Measure:
    return Measure(
        per_s=median([m.per_s for m in measures]),
        p50_ms=median([m.p50_ms for m in measures]),
        p99_ms=median([m.p99_ms for m in measures]),
        errors=sum(m.errors for m in measures),
    )


def _percentiles(latencies: list[float], count: int, elapsed: float, errors: int) -> Measure:
    if not latencies:
        raise BenchError("no request completed")
    p50, p99 = np.percentile(np.array(latencies), [50, 99]) * 1000
    return Measure(per_s=count / elapsed, p50_ms=float(p50), p99_ms=float(p99), errors=errors)


async def _closed_loop(
    call: Callable[[], Awaitable[bool]], callers: int, duration_s: float
) -> Measure:
    """`callers` tasks each calling `call` back to back for `duration_s` (after a short warm-up)."""
    latencies: list[float] = []
    errors = 0
    measuring = False
    stop_at = float("inf")

    async def caller() -> None:
        nonlocal errors
        while True:
            started = time.perf_counter()
            if started >= stop_at:
                return
            ok = await call()
            if measuring:
                latencies.append(time.perf_counter() - started)
                errors += not ok

    tasks = [asyncio.create_task(caller()) for _ in range(callers)]
    await asyncio.sleep(min(0.5, duration_s / 4))  # warm-up: connections, caches, batch rhythm
    measuring, began = True, time.perf_counter()
    stop_at = began + duration_s
    await asyncio.gather(*tasks)
    return _percentiles(latencies, len(latencies), time.perf_counter() - began, errors)


# -- level 1: the engine in-process ----------------------------------------------------


async def _engine(batching: bool, callers: int, duration_s: float) -> Measure:
    from tessera_inference.batcher import DynamicBatcher
    from tessera_inference.engine import inference_executor
    from tessera_inference.registry import ModelRegistry
    from tessera_inference.settings import PACKAGED_MODELS, Settings

    settings = Settings()
    model = ModelRegistry.load(PACKAGED_MODELS).get("breast-cancer", "2.0")
    row = np.array([FEATURES], dtype=np.float32)
    executor = inference_executor(settings.inference_threads)
    batcher = DynamicBatcher(
        model.run,
        executor,
        max_batch_size=settings.max_batch_size,
        max_wait_s=settings.max_batch_wait_ms / 1000,
    )

    async def batched() -> bool:
        await batcher.infer(row)
        return True

    async def per_request() -> bool:
        await asyncio.to_thread(model.run, row)
        return True

    try:
        return await _closed_loop(batched if batching else per_request, callers, duration_s)
    finally:
        await batcher.close()
        executor.shutdown()


def _run_async(coroutine: Awaitable[Measure]) -> Measure:
    import uvloop  # the service runs on uvloop, so the load loops do too

    async def main() -> Measure:
        return await coroutine

    return uvloop.run(main())


# -- level 2: NATS request-reply ----------------------------------------------------------


async def _nats(url: str, callers: int, duration_s: float) -> Measure:
    import nats
    from tessera_contracts import is_problem
    from tessera_contracts.v1.subjects import PREDICT

    nc = await nats.connect(url)

    async def call() -> bool:
        try:
            reply = await nc.request(PREDICT.name, REQUEST_BODY, timeout=10)
        except Exception:
            return False
        return not is_problem(reply.headers)

    try:
        return await _closed_loop(call, callers, duration_s)
    finally:
        await nc.close()


# -- level 3: HTTP, with wrk ----------------------------------------------------------------


def _http(base_url: str, callers: int, duration_s: int) -> Measure:
    result = wrk(
        f"{base_url}/v1/predict",
        connections=callers,
        threads=min(2, callers),
        duration_s=duration_s,
        method="POST",
        body=REQUEST_BODY,
        headers={"Content-Type": "application/json"},
    )
    errors = result.connect_errors + result.read_errors + result.timeouts + result.non_2xx
    return Measure(result.requests_per_s, result.p50_ms, result.p99_ms, errors)


@contextlib.contextmanager
def _nats_server() -> Iterator[str]:
    from tessera_stack.nats import EmbeddedNats

    # Only NATS is needed here, so not harness.infrastructure() (which adds PostgreSQL).
    with (
        tempfile.TemporaryDirectory(prefix="tessera-bench-nats-") as tmp,
        EmbeddedNats(Path(tmp) / "nats") as server,
    ):
        yield server.url


def _service_env(nats_url: str, batching: bool, wait_ms: float | None = None) -> dict[str, str]:
    env = {
        "INFERENCE_NATS_URL": nats_url,
        "INFERENCE_BATCHING_ENABLED": "true" if batching else "false",
        "INFERENCE_LOG_LEVEL": "WARNING",
    }
    if wait_ms is not None:
        env["INFERENCE_MAX_BATCH_WAIT_MS"] = str(wait_ms)
    return env


def _service_round(
    nats_url: str, batching: bool, duration_s: int, wait_ms: float | None = None, single: bool = True
) -> dict[tuple[str, int], Measure]:
    """One service process: NATS then HTTP, 64 callers (and 1 when `single`)."""
    results: dict[tuple[str, int], Measure] = {}
    with uvicorn_service(FACTORY, _service_env(nats_url, batching, wait_ms)) as base_url:
        for callers in (CALLERS, 1) if single else (CALLERS,):
            results["NATS", callers] = _run_async(_nats(nats_url, callers, duration_s))
            results["HTTP", callers] = _http(base_url, callers, duration_s)
    return results


def run(quick: bool) -> str:
    rounds = 1 if quick else 3
    duration_s = 2 if quick else 5
    samples: dict[tuple[str, int, bool], list[Measure]] = {}

    def add(level: str, callers: int, batching: bool, measure: Measure) -> None:
        samples.setdefault((level, callers, batching), []).append(measure)

    for round_no in range(rounds):
        order = (False, True) if round_no % 2 == 0 else (True, False)
        for batching in order:
            for callers in (CALLERS, 1):
                add("engine", callers, batching, _run_async(_engine(batching, callers, duration_s)))

    sweep: dict[float, list[Measure]] = {}
    with _nats_server() as nats_url:
        for round_no in range(rounds):
            order = (False, True) if round_no % 2 == 0 else (True, False)
            for batching in order:
                for (level, callers), measure in _service_round(nats_url, batching, duration_s).items():
                    add(level, callers, batching, measure)
            for wait_ms in SWEEP_WAITS_MS:
                measured = _service_round(nats_url, True, duration_s, wait_ms, single=False)
                sweep.setdefault(wait_ms, []).append(measured["HTTP", CALLERS])
                sweep.setdefault(-wait_ms - 1, []).append(measured["NATS", CALLERS])

    rows = [
        Row(level, callers, _summary(samples[level, callers, False]), _summary(samples[level, callers, True]))
        for level in ("engine", "NATS", "HTTP")
        for callers in (CALLERS, 1)
    ]
    return _report(rows, sweep, rounds, duration_s)


def _fmt(value: float, digits: int = 2) -> str:
    return f"{value:,.{digits}f}"


def _report(rows: list[Row], sweep: dict[float, list[Measure]], rounds: int, duration_s: int) -> str:
    from tessera_inference.settings import Settings

    defaults = Settings()
    table = markdown_table(
        ["level", "callers", "off: pred/s", "off p50 ms", "off p99 ms",
         "on: pred/s", "on p50 ms", "on p99 ms", "on/off", "p99 on ≤ off", "errors"],
        [
            [
                row.level, row.callers,
                _fmt(row.off.per_s, 0), _fmt(row.off.p50_ms), _fmt(row.off.p99_ms),
                _fmt(row.on.per_s, 0), _fmt(row.on.p50_ms), _fmt(row.on.p99_ms),
                f"{row.on.per_s / row.off.per_s:.2f}x",
                "yes" if row.on.p99_ms <= row.off.p99_ms else "no",
                row.off.errors + row.on.errors,
            ]
            for row in rows
        ],
    )  # fmt: skip
    sweep_rows = []
    for wait_ms in SWEEP_WAITS_MS:
        http, nats_ = _summary(sweep[wait_ms]), _summary(sweep[-wait_ms - 1])
        sweep_rows.append(
            [f"{wait_ms:g}", _fmt(nats_.per_s, 0), _fmt(nats_.p99_ms), _fmt(http.per_s, 0), _fmt(http.p99_ms)]
        )
    sweep_table = markdown_table(
        ["max_batch_wait_ms", "NATS pred/s", "NATS p99 ms", "HTTP pred/s", "HTTP p99 ms"], sweep_rows
    )
    return f"""\
### Inference: dynamic batching

`uv run python -m bench.run inference`: {CALLERS} concurrent callers (and 1),
{rounds} round(s) of {duration_s} s per cell, batching off and on measured back to back in
every round (alternating which goes first); medians over the rounds. Model: breast-cancer
2.0 (the MLP), one 10-feature row per request. Service defaults: max_batch_size
{defaults.max_batch_size}, max_batch_wait_ms {defaults.max_batch_wait_ms:g},
{defaults.inference_threads} inference thread, uvicorn with uvloop, 1 worker.

- engine: in-process; off = one `asyncio.to_thread(model.run)` per request, on = the batcher.
- NATS: `inference.v1.predict` request-reply from one nats-py client in the bench process.
- HTTP: wrk (2 threads) against `POST /v1/predict`.

{table}

Batching on, {CALLERS} callers, by `max_batch_wait_ms` (one service process per value):

{sweep_table}
"""


def _self_check() -> None:  # pragma: no cover - used by hand: python -m bench.scenarios.inference
    print(run(quick=True))


if __name__ == "__main__":
    _self_check()
    statistics.median([1.0])
