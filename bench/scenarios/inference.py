"""Dynamic batching in the inference service, at three levels, off and on in the same run.

    uv run python -m bench.run inference [--quick]

Levels: engine (in-process, the batcher vs one `asyncio.to_thread` per request),
NATS request-reply and HTTP `POST /v1/predict` (the service under uvicorn).
Shared 2-core machines are noisy, so every configuration runs side by side (its
own service process and nats-server) and they are measured in short segments,
interleaved, alternating order, round after round: medians over rounds, and
on/off ratios as the median of per-round pairs. Service CPU per prediction
(from /proc) is shown too: it is what batching saves, and other processes
disturb it far less than throughput.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import multiprocessing
import os
import re
import subprocess
import tempfile
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor, ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.harness import BenchError, markdown_table, median, uvicorn_service, wrk

FACTORY = "tessera_inference.app:create_app"
CALLERS = 64
CLIENT_PROCESSES = 2
FEATURES = [13.54, 14.36, 87.46, 566.3, 0.09779, 0.08129, 0.06664, 0.04781, 0.1885, 0.05766]
# The v2.0 MLP: the model the orientation numbers were measured with.
REQUEST_BODY = (
    b'{"features": [' + ", ".join(map(str, FEATURES)).encode() + b'], "model_version": "v2.0"}'
)
SWEEP_WAITS_MS = (0.0, 1.0, 2.0)


def _default_wait_ms() -> float:
    from tessera_inference.settings import Settings

    return Settings().max_batch_wait_ms


def _name(wait_ms: float) -> str:
    return f"wait {wait_ms:g}"


def _configs() -> dict[str, float | None]:
    """Batching off, then on with each max_batch_wait_ms tried (the default among them)."""
    waits = sorted({*SWEEP_WAITS_MS, _default_wait_ms()})
    return {"off": None, **{_name(w): w for w in waits}}


@dataclass(frozen=True)
class Measure:
    per_s: float
    p50_ms: float
    p99_ms: float
    cpu_us: float | None = None
    """Service CPU time (all threads) per prediction."""
    errors: int = 0
    mean_batch: float | None = None
    """Rows per ONNX Runtime call in the service during the measurement."""


@dataclass(frozen=True)
class Load:
    """What one closed-loop load generator saw."""

    latencies: list[float]
    errors: int
    elapsed: float


def _summarise(loads: list[Load]) -> Measure:
    latencies = np.array([x for load in loads for x in load.latencies])
    if latencies.size == 0:
        raise BenchError("no request completed")
    p50, p99 = np.percentile(latencies, [50, 99]) * 1000
    per_s = sum(len(load.latencies) / load.elapsed for load in loads)
    return Measure(per_s, float(p50), float(p99), errors=sum(load.errors for load in loads))


Call = Callable[[], Awaitable[bool]]
Close = Callable[[], Awaitable[None]]


def _closed_loop_sync(
    make_call: Callable[[], Awaitable[tuple[Call, Close]]], callers: int, seconds: float
) -> Load:
    import uvloop  # the service runs on uvloop, so the load loops do too

    async def main() -> Load:
        call, close = await make_call()
        try:
            return await _closed_loop(call, callers, seconds)
        finally:
            await close()

    return uvloop.run(main())


async def _closed_loop(call: Call, callers: int, seconds: float) -> Load:
    """`callers` tasks calling `call` back to back for `seconds`, after a short warm-up."""
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
    await asyncio.sleep(0.25)  # warm-up: connections, caches, the batching rhythm
    measuring, began = True, time.perf_counter()
    stop_at = began + seconds
    _, stuck = await asyncio.wait(tasks, timeout=seconds + 10)
    for task in stuck:  # a request that never got an answer
        task.cancel()
        errors += 1
    return Load(latencies, errors, time.perf_counter() - began)


# -- level 1: the engine in-process ----------------------------------------------------


def _engine(batching: bool, callers: int, seconds: float) -> Measure:
    from tessera_inference.domain.batcher import DynamicBatcher
    from tessera_inference.domain.engine import inference_executor
    from tessera_inference.domain.registry import ModelRegistry
    from tessera_inference.settings import PACKAGED_MODELS, Settings

    settings = Settings()
    model = ModelRegistry.load(PACKAGED_MODELS).get("breast-cancer", "2.0")
    row = np.array([FEATURES], dtype=np.float32)
    executor = inference_executor(settings.inference_threads)

    async def make_call() -> tuple[Call, Close]:
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

        return (batched if batching else per_request), batcher.close

    try:
        return _summarise([_closed_loop_sync(make_call, callers, seconds)])
    finally:
        executor.shutdown()


# -- levels 2 and 3: the service under uvicorn ----------------------------------------------


@dataclass
class Service:
    base_url: str
    nats_url: str
    pid: int


def _nats_load(nats_url: str, callers: int, seconds: float) -> Load:
    """One load generator (run in a client process: module level, so it pickles)."""
    import itertools

    import nats
    from nats.aio.msg import Msg
    from tessera_contracts import is_problem
    from tessera_contracts.v1.subjects import PREDICT

    async def make_call() -> tuple[Call, Close]:
        # A lean requester: one wildcard reply subscription and a dict of futures.
        # nats-py's request() adds a timer per call, which made the load generator,
        # not the service, the limit at 64 callers.
        nc = await nats.connect(nats_url)
        inbox = nc.new_inbox()
        waiting: dict[str, asyncio.Future[Msg]] = {}
        ids = itertools.count()
        loop = asyncio.get_running_loop()

        async def on_reply(msg: Msg) -> None:
            future = waiting.pop(msg.subject, None)
            if future is not None and not future.done():
                future.set_result(msg)

        await nc.subscribe(inbox + ".*", cb=on_reply)

        async def call() -> bool:
            subject = f"{inbox}.{next(ids)}"
            future = waiting[subject] = loop.create_future()
            await nc.publish(PREDICT.name, REQUEST_BODY, reply=subject)
            reply = await future
            return not is_problem(reply.headers)

        return call, nc.close

    return _closed_loop_sync(make_call, callers, seconds)


def _nats(service: Service, callers: int, seconds: float, clients: Executor) -> Measure:
    def measure() -> Measure:
        if callers < CLIENT_PROCESSES:
            return _summarise([_nats_load(service.nats_url, callers, seconds)])
        # Split over client processes: one Python process cannot generate the load
        # of 64 callers as fast as the batched service answers it.
        share = callers // CLIENT_PROCESSES
        futures = [
            clients.submit(_nats_load, service.nats_url, share, seconds)
            for _ in range(CLIENT_PROCESSES)
        ]
        return _summarise([f.result() for f in futures])

    return _with_cpu(service, measure)


def _http(service: Service, callers: int, seconds: float, clients: Executor) -> Measure:
    del clients  # wrk runs its own threads

    def measure() -> Measure:
        result = wrk(
            f"{service.base_url}/v1/predict",
            connections=callers,
            threads=min(2, callers),
            duration_s=max(1, round(seconds)),
            method="POST",
            body=REQUEST_BODY,
            headers={"Content-Type": "application/json"},
        )
        errors = result.connect_errors + result.read_errors + result.timeouts + result.non_2xx
        return Measure(result.requests_per_s, result.p50_ms, result.p99_ms, errors=errors)

    return _with_cpu(service, measure)


def _with_cpu(service: Service, measure: Callable[[], Measure]) -> Measure:
    calls_before = _batch_counts(service)
    before, started = _cpu_seconds(service.pid), time.perf_counter()
    result = measure()
    cpu, elapsed = _cpu_seconds(service.pid) - before, time.perf_counter() - started
    calls_after = _batch_counts(service)
    rows, calls = (a - b for a, b in zip(calls_after, calls_before, strict=True))
    # Warm-up requests are in the CPU time but not in the count: estimate over the whole span.
    cpu_us = cpu / (result.per_s * elapsed) * 1e6
    return dataclasses.replace(result, cpu_us=cpu_us, mean_batch=rows / calls if calls else None)


_BATCH_SAMPLE = re.compile(
    r'^inference_batch_size_(sum|count)\{model="breast-cancer",version="2\.0"\} (\S+)$', re.M
)


def _batch_counts(service: Service) -> tuple[float, float]:
    """(rows, ONNX calls) of breast-cancer 2.0 so far, from the service's /metrics."""
    import httpx

    found = dict(_BATCH_SAMPLE.findall(httpx.get(f"{service.base_url}/metrics").text))
    return float(found.get("sum", 0)), float(found.get("count", 0))


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def _listening_pid(port: int) -> int:
    out = subprocess.run(
        ["ss", "-Htlnp", f"sport = :{port}"], capture_output=True, text=True, check=False
    ).stdout
    match = re.search(r"pid=(\d+)", out)
    if match is None:
        raise BenchError(f"no process found listening on port {port} (ss -tlnp)")
    return int(match.group(1))


def _services(stack: contextlib.ExitStack) -> dict[str, Service]:
    """One nats-server and one service process per configuration, all running until `stack` closes."""
    from tessera_stack.nats import EmbeddedNats

    tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="tessera-bench-inf-")))
    services: dict[str, Service] = {}
    for i, (name, wait_ms) in enumerate(_configs().items()):
        # Own nats-server each: services on one server would all answer the subject.
        nats_url = stack.enter_context(EmbeddedNats(tmp / f"nats-{i}")).url
        env = {
            "INFERENCE_NATS_URL": nats_url,
            "INFERENCE_BATCHING_ENABLED": "false" if wait_ms is None else "true",
            "INFERENCE_MAX_BATCH_WAIT_MS": str(wait_ms or 0),
        }
        base_url = stack.enter_context(uvicorn_service(FACTORY, env))
        pid = _listening_pid(int(base_url.rsplit(":", 1)[1]))
        services[name] = Service(base_url, nats_url, pid)
    return services


def run(quick: bool) -> str:
    rounds, seconds = (1, 1) if quick else (5, 3)
    cells: dict[tuple[str, int, str], list[Measure]] = {}

    def add(level: str, callers: int, config: str, measure: Measure) -> None:
        cells.setdefault((level, callers, config), []).append(measure)

    for r in range(rounds):
        flip = r % 2 == 1  # alternate which configuration goes first
        for callers in (CALLERS, 1):
            for batching in (True, False) if flip else (False, True):
                measure = _engine(batching, callers, seconds)
                add("engine", callers, "on" if batching else "off", measure)

    with contextlib.ExitStack() as stack:
        services = _services(stack)
        clients = stack.enter_context(
            ProcessPoolExecutor(CLIENT_PROCESSES, mp_context=multiprocessing.get_context("spawn"))
        )
        for r in range(rounds):
            flip = r % 2 == 1
            for level, load in (("NATS", _nats), ("HTTP", _http)):
                for callers in (CALLERS, 1):
                    names = list(services)
                    for name in reversed(names) if flip else names:
                        add(level, callers, name, load(services[name], callers, seconds, clients))
    return _report(cells, rounds, seconds)


# -- the report --------------------------------------------------------------------------


def _f(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def _med(measures: list[Measure], field: str) -> float | None:
    values = [getattr(m, field) for m in measures if getattr(m, field) is not None]
    return median(values) if values else None


def _ratio(on: list[Measure], off: list[Measure]) -> str:
    return f"{median([a.per_s / b.per_s for a, b in zip(on, off, strict=True)]):.2f}x"


def _stats(ms: list[Measure]) -> list[str]:
    return [_f(_med(ms, "per_s"), 0), _f(_med(ms, "p50_ms")), _f(_med(ms, "p99_ms")),
            _f(_med(ms, "cpu_us"), 0)]  # fmt: skip


def _report(cells: dict[tuple[str, int, str], list[Measure]], rounds: int, seconds: float) -> str:
    from tessera_inference.settings import Settings

    defaults = Settings()
    rows = []
    for level in ("engine", "NATS", "HTTP"):
        for callers in (CALLERS, 1):
            off = cells[level, callers, "off"]
            on = cells[
                level, callers, "on" if level == "engine" else _name(defaults.max_batch_wait_ms)
            ]
            p99_off, p99_on = _med(off, "p99_ms") or 0.0, _med(on, "p99_ms") or 0.0
            rows.append([level, callers, *_stats(off), *_stats(on), _ratio(on, off),
                         "yes" if p99_on <= p99_off else "no", sum(m.errors for m in off + on)])  # fmt: skip
    table = markdown_table(
        ["level", "callers", "off pred/s", "off p50 ms", "off p99 ms", "off CPU µs/pred",
         "on pred/s", "on p50 ms", "on p99 ms", "on CPU µs/pred", "on/off", "p99 on ≤ off",
         "errors"],
        rows,
    )  # fmt: skip
    sweep_rows = []
    for name, wait_ms in _configs().items():
        if wait_ms is None:
            continue
        nats_, http = cells["NATS", CALLERS, name], cells["HTTP", CALLERS, name]
        sweep_rows.append(
            [f"{wait_ms:g}",
             _f(_med(nats_, "per_s"), 0), _f(_med(nats_, "p99_ms")),
             _ratio(nats_, cells["NATS", CALLERS, "off"]), _f(_med(nats_, "mean_batch"), 1),
             _f(_med(http, "per_s"), 0), _f(_med(http, "p99_ms")),
             _ratio(http, cells["HTTP", CALLERS, "off"]), _f(_med(http, "mean_batch"), 1),
             _f(_med(cells["NATS", 1, name], "p50_ms")), _f(_med(cells["HTTP", 1, name], "p50_ms"))]
        )  # fmt: skip
    lone = [_f(_med(cells[level, 1, "off"], "p50_ms")) for level in ("NATS", "HTTP")]
    sweep = markdown_table(
        ["max_batch_wait_ms", "NATS pred/s", "NATS p99 ms", "NATS on/off", "NATS rows/call",
         "HTTP pred/s", "HTTP p99 ms", "HTTP on/off", "HTTP rows/call",
         f"1 caller NATS p50 ms (off {lone[0]})", f"1 caller HTTP p50 ms (off {lone[1]})"],
        sweep_rows,
    )  # fmt: skip
    return f"""\
### Inference: dynamic batching

{CALLERS} concurrent callers (and 1), {rounds} round(s) of {seconds:g} s segments, every
configuration in every round, interleaved; medians over rounds, on/off = median of
per-round ratios. Model breast-cancer 2.0 (the MLP), one 10-feature row per request.
"on" = the defaults: max_batch_size {defaults.max_batch_size}, max_batch_wait_ms
{defaults.max_batch_wait_ms:g}, {defaults.inference_threads} inference thread; uvicorn
(uvloop, 1 worker, INFO logs as deployed), one nats-server per service.

- engine: in-process; off = one `asyncio.to_thread(model.run)` per request, on = the batcher.
- NATS: `inference.v1.predict` request-reply, {CALLERS} callers split over {CLIENT_PROCESSES} nats-py client processes.
- HTTP: wrk (2 threads) against `POST /v1/predict`.
- CPU µs/pred: the service process's CPU time (all threads) per prediction.

{table}

Batching on, by `max_batch_wait_ms` ({CALLERS} callers unless stated; rows/call = mean rows per
ONNX Runtime call in the service):

{sweep}
"""
