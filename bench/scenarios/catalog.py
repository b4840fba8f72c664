"""The catalog's two hot reads, against bare FastAPI baselines measured in the same run.

    uv run python -m bench.run catalog [--quick]

1. Throughput at 64 connections (wrk): `GET /v1/products/{id}` and
   `GET /v1/products/{id}/enriched` (with the real inference service answering
   over NATS), against two baselines: a bare FastAPI app returning a fixed
   product JSON, and the smallest idiomatic FastAPI + asyncpg app doing the same
   primary-key read with `response_model` validation (`bench/bare_catalog.py`).
   Rounds alternate the targets; tables show medians over rounds, ratios are the
   median of per-round ratios, and CPU per request is the serving process's
   utime + stime during a round over its requests.
2. Instructions per request (valgrind's callgrind), catalog against the bare
   FastAPI + asyncpg app: a count that does not move with the machine's noise.
   One connection, so both serve requests one at a time (no batching of event
   loop wake-ups varies the count), and each process's idle instructions per
   second (timers, background tasks) are subtracted.
3. Fan-out: every PostgreSQL round trip of the catalog delayed by D (a delaying
   TCP proxy in front of PostgreSQL) and inference answering after D (a NATS
   responder that sleeps). Sequential parts would cost 4 D (product, reviews,
   inventory, prediction); concurrent ones cost the longest chain, product then
   prediction: 2 D.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import threading
import time
from collections.abc import Coroutine, Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

import httpx

from bench.harness import (
    BenchError,
    CpuRound,
    Infra,
    Served,
    alternating,
    catalog_env,
    counted_instructions,
    free_port,
    infrastructure,
    markdown_table,
    median,
    uvicorn_command,
    uvicorn_process,
    uvicorn_service,
    wrk,
    wrk_with_cpu,
)

if TYPE_CHECKING:
    from nats.aio.client import Client as NATS

T = TypeVar("T")

CONNECTIONS = 64
INSTRUCTION_CONNECTIONS = 1
FAN_OUT_CONNECTIONS = 4
DELAY_S = 0.025
CATALOG = "tessera_catalog.app:create_app"
INFERENCE = "tessera_inference.app:create_app"
BASELINE = "bench.scenarios.catalog:baseline_app"
BARE_ASYNCPG = "bench.bare_catalog:create_app"
TARGET_VS_BARE_ASYNCPG = 0.9
"""Issue 11's target: the catalog's req/s as a fraction of the bare FastAPI + asyncpg app's."""

# The baseline's body: one product as the catalog serves it.
FIXED_PRODUCT = json.dumps(
    {
        "id": "5d0c8f61-4a39-5d27-9a61-6b6f5b1d8a2e",
        "sku": "HOM-0001",
        "name": "Studio Walnut Vase",
        "description": "Studio Walnut Vase in sand. Made from walnut for home use; "
        "designed to last and backed by a two-year warranty.",
        "category": "home",
        "price": 144.49,
        "currency": "USD",
        "features": [17.3781, 22.66834, 114.12982, 979.35492, 0.07673, 0.16465, 0.12858,
                     0.02755, 0.24142, 0.05672],
        "version": 1,
        "created_at": "2025-01-06T09:17:00Z",
        "updated_at": "2025-01-06T09:17:00Z",
    },
    separators=(",", ":"),
).encode()  # fmt: skip


def baseline_app() -> object:
    """A bare FastAPI app: the same route shape, a fixed body, no database."""
    from fastapi import FastAPI, Response

    app = FastAPI()

    @app.get("/v1/products/{product_id}")
    async def product(product_id: str) -> Response:
        return Response(FIXED_PRODUCT, media_type="application/json")

    @app.get("/readyz")
    async def ready() -> Response:
        return Response(b'{"status":"ok"}', media_type="application/json")

    return app


def _product_id(database_url: str) -> str:
    import asyncpg

    async def first_with_features() -> str:
        conn = await asyncpg.connect(database_url)
        try:
            # A product with a feature vector and reviews: every part has work to do.
            value = await conn.fetchval(
                "SELECT p.id FROM products p WHERE p.features IS NOT NULL "
                "AND EXISTS (SELECT 1 FROM reviews r WHERE r.product_id = p.id) "
                "ORDER BY p.created_at LIMIT 1"
            )
        finally:
            await conn.close()
        if value is None:
            raise BenchError("the demo data has no product with features and reviews")
        return str(value)

    return asyncio.run(first_with_features())


def _wait_enriched_complete(url: str, timeout_s: float = 30.0) -> None:
    """Until inference answers: the first enriched product with nothing degraded."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=5).json().get("degraded") == []:
                return
        time.sleep(0.2)
    raise BenchError(f"{url} kept answering degraded for {timeout_s} s")


def _counters(catalog_url: str) -> dict[str, float]:
    """Degraded parts and enriched responses by status, from the catalog's /metrics."""
    text = httpx.get(f"{catalog_url}/metrics", timeout=5).text
    counts: dict[str, float] = {}
    degraded = r'^catalog_enriched_degraded_total\{part="(\w+)"\} (\S+)$'
    for part, value in re.findall(degraded, text, re.M):
        counts[f"degraded {part}"] = float(value)
    enriched = (
        r'^http_requests_total\{method="GET",'
        r'route="/v1/products/\{product_id\}/enriched",status="(\d+)"\} (\S+)$'
    )
    for status, value in re.findall(enriched, text, re.M):
        counts[f"status {status}"] = float(value)
    return counts


def _difference(after: dict[str, float], before: dict[str, float]) -> str:
    changed = {k: v - before.get(k, 0.0) for k, v in sorted(after.items())}
    return ", ".join(f"{k}: {v:,.0f}" for k, v in changed.items() if v) or "none"


def _ratio(results: list[CpuRound], baseline: list[CpuRound]) -> float:
    return median(
        [
            r.result.requests_per_s / b.result.requests_per_s
            for r, b in zip(results, baseline, strict=True)
        ]
    )


def _row(name: str, results: list[CpuRound], baseline: list[CpuRound]) -> list[object]:
    errors = sum(
        r.result.connect_errors + r.result.read_errors + r.result.timeouts + r.result.non_2xx
        for r in results
    )
    return [
        name,
        f"{median([r.result.requests_per_s for r in results]):,.0f}",
        f"{median([r.result.p50_ms for r in results]):.1f}",
        f"{median([r.result.p99_ms for r in results]):.1f}",
        f"{median([r.cpu_per_request_us for r in results]):,.0f}",
        f"{_ratio(results, baseline):.2f}",
        errors,
    ]


def _throughput(infra: Infra, product_id: str, rounds: int, duration_s: int) -> str:
    # The catalog as `tessera up` runs it: INFO, so every request writes its JSON access line.
    env = catalog_env(infra, log_level="INFO")
    inference_env = {"INFERENCE_NATS_URL": infra.nats_url, "INFERENCE_LOG_LEVEL": "WARNING"}
    with (
        uvicorn_service(INFERENCE, inference_env),
        uvicorn_process(CATALOG, env) as catalog,
        uvicorn_process(BASELINE, {}) as fixed,
        uvicorn_process(BARE_ASYNCPG, {"BARE_DATABASE_URL": infra.database_url}) as bare,
    ):
        get_url = f"{catalog.url}/v1/products/{product_id}"
        enriched_url = f"{get_url}/enriched"
        _wait_enriched_complete(enriched_url)
        targets: dict[str, tuple[Served, str]] = {
            "fixed": (fixed, f"{fixed.url}/v1/products/{product_id}"),
            "bare": (bare, f"{bare.url}/v1/products/{product_id}"),
            "get": (catalog, get_url),
            "enriched": (catalog, enriched_url),
        }
        bare_answer = httpx.get(targets["bare"][1], timeout=10)
        catalog_answer = httpx.get(get_url, timeout=10)
        if bare_answer.json() != catalog_answer.json():
            raise BenchError("the bare FastAPI + asyncpg app does not answer what the catalog does")
        results: dict[str, list[CpuRound]] = {name: [] for name in targets}
        counters_before = _counters(catalog.url)
        for name in alternating(targets, rounds):
            served, url = targets[name]
            results[name].append(
                wrk_with_cpu(served.pid, url, connections=CONNECTIONS, duration_s=duration_s)
            )
        counters = _difference(_counters(catalog.url), counters_before)
    fixed_rounds, bare_rounds = results["fixed"], results["bare"]
    table = markdown_table(
        [
            "endpoint",
            "req/s",
            "p50 ms",
            "p99 ms",
            "CPU per request (us)",
            "vs fixed JSON (req/s)",
            "errors",
        ],
        [
            _row("bare FastAPI, fixed product JSON", fixed_rounds, fixed_rounds),
            _row("bare FastAPI + asyncpg, same read", bare_rounds, fixed_rounds),
            _row("GET /v1/products/{id}", results["get"], fixed_rounds),
            _row("GET /v1/products/{id}/enriched", results["enriched"], fixed_rounds),
        ],
    )
    get_vs_bare = _ratio(results["get"], bare_rounds)
    cpu_vs_bare = median(
        [
            g.cpu_per_request_us / b.cpu_per_request_us
            for g, b in zip(results["get"], bare_rounds, strict=True)
        ]
    )
    return (
        f"{table}\n\nThe catalog's `GET /v1/products/{{id}}` against the bare FastAPI + asyncpg "
        f"app: **{get_vs_bare:.2f}x its req/s**, {cpu_vs_bare:.2f}x its CPU per request "
        f"(target: at least {TARGET_VS_BARE_ASYNCPG}x the req/s).\n\n"
        f"{CONNECTIONS} connections, {rounds} round(s) of {duration_s} s per target; "
        f"medians over rounds; errors are wrk's socket errors and non-2xx answers. Enriched "
        f"answers by status and degraded parts (from the catalog's /metrics): {counters}. "
        "A part over its budget (0.5 s; 1 s for the product row, else 503) is how overload shows."
    )


def _instructions(infra: Infra, product_id: str, duration_s: int) -> str:
    path = f"/v1/products/{product_id}"
    targets = {
        "bare FastAPI + asyncpg, same read": (
            BARE_ASYNCPG,
            {"BARE_DATABASE_URL": infra.database_url},
        ),
        "GET /v1/products/{id}": (CATALOG, catalog_env(infra, log_level="INFO")),
    }
    counted: dict[str, tuple[int, float]] = {}
    for name, (factory, env) in targets.items():
        port = free_port()
        result, per_request = counted_instructions(
            uvicorn_command(factory, port),
            env,
            port,
            path,
            connections=INSTRUCTION_CONNECTIONS,
            duration_s=duration_s,
        )
        if result.non_2xx or result.connect_errors or result.read_errors:
            raise BenchError(f"{factory} answered errors under callgrind")
        counted[name] = (result.requests, per_request)
    bare = counted["bare FastAPI + asyncpg, same read"][1]
    rows = [
        [name, f"{requests:,}", f"{per_request / 1000:,.0f}k", f"{per_request / bare:.2f}"]
        for name, (requests, per_request) in counted.items()
    ]
    table = markdown_table(
        ["endpoint", "requests counted", "instructions per request", "vs bare"], rows
    )
    ratio = counted["GET /v1/products/{id}"][1] / bare
    return (
        f"Under valgrind's callgrind, {INSTRUCTION_CONNECTIONS} connection for {duration_s} s "
        f"per target, each process's idle instructions subtracted: the catalog executes "
        f"**{ratio:.2f}x the bare app's instructions per request**. A count, so it does not "
        f"vary with the machine's noise as the CPU times above do.\n\n{table}"
    )


# -- fan-out with injected delays ------------------------------------------------------


class _Background:
    """An event loop in a thread for the delaying proxy and the slow NATS responder."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def __enter__(self) -> _Background:
        self.thread.start()
        return self

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=30)

    def __exit__(self, *exc: object) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay_s: float) -> None:
    # Each chunk goes out `delay_s` after it arrived, in order: latency without a
    # bandwidth limit, like a long network path.
    queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

    async def deliver() -> None:
        while True:
            due, chunk = await queue.get()
            if not chunk:
                break
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            writer.write(chunk)
            await writer.drain()
        writer.close()

    sender = asyncio.create_task(deliver())
    with contextlib.suppress(ConnectionError):
        while chunk := await reader.read(65536):
            queue.put_nowait((time.monotonic() + delay_s, chunk))
    queue.put_nowait((0.0, b""))
    with contextlib.suppress(ConnectionError):
        await sender


async def _start_delay_proxy(host: str, port: int, delay_s: float) -> tuple[asyncio.Server, int]:
    async def handle(
        client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter
    ) -> None:
        upstream_reader, upstream_writer = await asyncio.open_connection(host, port)
        await asyncio.gather(
            _pipe(client_reader, upstream_writer, 0.0),
            _pipe(upstream_reader, client_writer, delay_s),  # every answer arrives late
        )

    listen_port = free_port()
    server = await asyncio.start_server(handle, "127.0.0.1", listen_port)
    return server, listen_port


async def _start_slow_responder(nats_url: str, delay_s: float) -> NATS:
    import nats
    from nats.aio.msg import Msg
    from tessera_contracts import v1

    nc = await nats.connect(nats_url)

    replies: set[asyncio.Task[None]] = set()

    async def reply(msg: Msg) -> None:
        await asyncio.sleep(delay_s)
        answer = v1.PredictionResponse(
            prediction=1, confidence=0.9, model_version="v1.0", timestamp=datetime.now(UTC),
            processing_time_ms=delay_s * 1000, label="benign",
            probabilities={"malignant": 0.1, "benign": 0.9},
        )  # fmt: skip
        await msg.respond(v1.PREDICT.encode_reply(answer))

    async def answer_later(msg: Msg) -> None:
        # nats-py runs one callback per subscription at a time: sleeping in it
        # would queue the requests behind each other.
        task = asyncio.create_task(reply(msg))
        replies.add(task)
        task.add_done_callback(replies.discard)

    await nc.subscribe(v1.PREDICT.name, queue="bench-slow", cb=answer_later)
    await nc.flush()
    return nc


@contextlib.contextmanager
def _delayed(infra: Infra, delay_s: float) -> Iterator[str]:
    """The DSN of a path to PostgreSQL that delays every answer, with a slow responder on NATS."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(infra.database_url)
    with _Background() as background:
        server, port = background.run(
            _start_delay_proxy(parts.hostname or "127.0.0.1", parts.port or 5432, delay_s)
        )
        responder = background.run(_start_slow_responder(infra.nats_url, delay_s))
        netloc = parts.netloc.rsplit(":", 1)[0] + f":{port}"
        try:
            yield urlunsplit(parts._replace(netloc=netloc))
        finally:
            background.run(responder.close())
            server.close()


def _fan_out(infra: Infra, product_id: str, duration_s: int) -> str:
    with _delayed(infra, DELAY_S) as slow_dsn:
        env = catalog_env(Infra(database_url=slow_dsn, nats_url=infra.nats_url))
        with uvicorn_service(CATALOG, env) as catalog:
            get_url = f"{catalog}/v1/products/{product_id}"
            _wait_enriched_complete(f"{get_url}/enriched")
            single = wrk(get_url, connections=FAN_OUT_CONNECTIONS, duration_s=duration_s)
            enriched = wrk(
                f"{get_url}/enriched", connections=FAN_OUT_CONNECTIONS, duration_s=duration_s
            )
    d_ms = DELAY_S * 1000
    table = markdown_table(
        ["request", "p50 ms", "p99 ms", "if parts ran one after another"],
        [
            [
                "GET product (one round trip)",
                f"{single.p50_ms:.1f}",
                f"{single.p99_ms:.1f}",
                f"{d_ms:.0f}",
            ],
            [
                "GET enriched (4 parts)",
                f"{enriched.p50_ms:.1f}",
                f"{enriched.p99_ms:.1f}",
                f"{4 * d_ms:.0f} (product, reviews, inventory, prediction)",
            ],
        ],
    )
    return (
        f"Every PostgreSQL answer delayed by {d_ms:.0f} ms, inference answering after {d_ms:.0f} ms, "
        f"{FAN_OUT_CONNECTIONS} connections for {duration_s} s. The enriched product costs its "
        f"longest chain, product then prediction (~{2 * d_ms:.0f} ms), not the sum of its parts "
        f"(~{4 * d_ms:.0f} ms): reviews and inventory run meanwhile on their own connections.\n\n{table}"
    )


def run(quick: bool) -> str:
    rounds, duration_s = (1, 3) if quick else (3, 10)
    with infrastructure() as infra:
        product_id = _product_id(infra.database_url)
        throughput = _throughput(infra, product_id, rounds, duration_s)
        instructions = _instructions(infra, product_id, duration_s)
        fan_out = _fan_out(infra, product_id, duration_s)
    return (
        "## Catalog: get product and enriched product\n\n"
        f"{throughput}\n\n### Instructions per request\n\n{instructions}\n\n"
        f"### Enriched fan-out: latency follows the slowest part\n\n{fan_out}"
    )
