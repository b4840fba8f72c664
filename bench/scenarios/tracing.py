"""What OpenTelemetry tracing costs per request: off, 100 % and 1 % sampling, same run.

    uv run python -m bench.run tracing [--quick]

Three configurations of every process, running side by side: tracing off (no
`OTEL_*` variable), on with every trace sampled, and on with 1 % sampled
(`OTEL_TRACES_SAMPLER_ARG=0.01`). The traced ones export over OTLP/HTTP, with
the SDK's default batch processor, to a receiver in this process
(`tessera_stack.otlp_receiver`, one per configuration): the export's encoding and
sending run in a thread of the service, so its CPU is the service's, as in
production (the receiver's decoding is load on the same two cores, as a collector
on the host would be). Each configuration has its own catalog and a gateway in
front of it with the same configuration (the catalog follows the gateway's sampled
flag); one untraced inference worker answers every catalog's predictions (it is
not measured).

1. CPU per request at 64 connections (wrk): `GET /v1/products/{id}` and
   `GET /v1/products/{id}/enriched` on the catalog, and `GET /v1/products/{id}`
   through the gateway with an API key (the catalog behind it is accounted too).
   Rounds alternate every target and configuration; CPU is the measured process's
   utime + stime from the start of its round until the spans of the round's last
   requests were exported (the processor's next tick), over the requests served.
   Ratios to "off" are medians of per-round ratios, with their spread.
2. Instructions per request (valgrind's callgrind), one connection, each process's
   idle instructions per second subtracted, the export of the counted requests'
   spans included: a count the machine's other load does not move.
3. Spans received: the server spans each receiver got against the requests
   served, so a tracer that is silently off (or drops spans) cannot pass.

The issue's targets: at most 15 % more CPU per request at 100 % sampling and 3 %
at 1 %, for the gateway and for the catalog, on both measures.
"""

from __future__ import annotations

import contextlib
import math
import os
import tempfile
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx
from tessera_stack.otlp_receiver import OtlpReceiver, ReceivedSpan, otlp_receiver

from bench.harness import (
    BenchError,
    CpuRound,
    Infra,
    ScenarioFailed,
    Served,
    WrkResult,
    _counting,
    _dumped_instructions,
    alternating,
    bench_key,
    callgrind_command,
    catalog_env,
    free_port,
    idle_instructions_per_s,
    infrastructure,
    markdown_table,
    median,
    raise_open_files_limit,
    service_process,
    tree_cpu_seconds,
    uvicorn_command,
    uvicorn_process,
    uvicorn_service,
    wrk,
)
from bench.scenarios.catalog import INFERENCE, _product_id, _wait_enriched_complete
from bench.scenarios.proxies import _GATEWAY, _gateway_env

CONNECTIONS = 64
INSTRUCTION_CONNECTIONS = 1
CATALOG = "tessera_catalog.app:create_app"
CONFIGURATIONS: dict[str, float | None] = {"off": None, "100 %": 1.0, "1 %": 0.01}
"""Sampling ratio of each configuration (None: tracing off)."""
TARGETS = {"100 %": 1.15, "1 %": 1.03}
"""Issue 12's targets: CPU per request as a multiple of the untraced process's."""
READINESS_REQUESTS = 200
"""At most the requests the readiness checks make (enriched: polled until inference answers)."""
EXPORT_SETTLE_S = 6.0
"""Longer than the batch processor's schedule delay (5 s, `OTEL_BSP_SCHEDULE_DELAY`):
the spans a round leaves in its queue are exported, and counted, before its CPU is read."""
GET, ENRICHED, GATEWAY = "catalog GET /v1/products/{id}", "catalog GET …/enriched", "gateway GET"
SPAN_NAMES = {
    GET: ("catalog", "GET /v1/products/{product_id}"),
    ENRICHED: ("catalog", "GET /v1/products/{product_id}/enriched"),
    GATEWAY: ("gateway", "GET /v1/products/{product_id}"),
}


def tracing_env(ratio: float | None, endpoint: str) -> dict[str, str]:
    """The variables that give a service a configuration (none for tracing off)."""
    if ratio is None:
        return {}
    return {"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, "OTEL_TRACES_SAMPLER_ARG": f"{ratio:g}"}


def plausible_spans(requests: int, uncounted: int, ratio: float) -> tuple[int, int]:
    """The server spans to expect for `requests` the load generator counted and up to
    `uncounted` it did not (in flight when a round ended, readiness checks), each
    sampled with probability `ratio`: the binomial means within 5 standard deviations."""
    low, high = requests * ratio, (requests + uncounted) * ratio
    return (
        max(0, math.floor(low - 5 * math.sqrt(low * (1 - ratio)))),
        math.ceil(high + 5 * math.sqrt(high * (1 - ratio))),
    )


def server_spans(spans: Sequence[ReceivedSpan], service: str, name: str) -> tuple[int, int]:
    """Server spans of `service` named `name`: (roots, children of another service's span)."""
    counts = Counter(
        span.parent_span_id is None
        for span in spans
        if span.kind == "server" and span.service == service and span.name == name
    )
    return counts[True], counts[False]


@dataclass(frozen=True)
class Stack:
    """The processes of one configuration."""

    catalog: Served
    gateway: Served
    receiver: OtlpReceiver | None


@contextlib.contextmanager
def _stacks(
    infra_env: dict[str, str], nats_url: str, api_keys: str, receivers: dict[str, OtlpReceiver]
) -> Iterator[dict[str, Stack]]:
    with contextlib.ExitStack() as stack:
        stacks: dict[str, Stack] = {}
        for config, ratio in CONFIGURATIONS.items():
            receiver = receivers.get(config)
            traced = tracing_env(ratio, receiver.endpoint if receiver else "")
            catalog = stack.enter_context(uvicorn_process(CATALOG, {**infra_env, **traced}))
            port = free_port()
            url = f"http://127.0.0.1:{port}"
            env = {**_gateway_env(port, catalog.url, nats_url, api_keys), **traced}
            process = stack.enter_context(
                service_process(_GATEWAY, env, ready_urls=[f"{url}/readyz"])
            )
            stacks[config] = Stack(catalog, Served(url, process.pid), receiver)
        yield stacks


def _round(
    pids: Sequence[int], url: str, duration_s: int, headers: dict[str, str]
) -> list[CpuRound]:
    """One wrk round, and the CPU of each of `pids` until the round's spans were exported."""
    before = [tree_cpu_seconds(pid) for pid in pids]
    result = wrk(url, connections=CONNECTIONS, duration_s=duration_s, headers=headers)
    time.sleep(EXPORT_SETTLE_S)
    return [
        CpuRound(result, tree_cpu_seconds(pid) - b) for pid, b in zip(pids, before, strict=True)
    ]


def _errors(result: WrkResult) -> int:
    return (
        result.connect_errors + result.read_errors + result.write_errors
        + result.timeouts + result.non_2xx
    )  # fmt: skip


class Checks:
    """The targets and span counts checked, and which of them failed."""

    def __init__(self) -> None:
        self.failed: list[str] = []

    def check(self, condition: bool, what: str) -> str:
        if not condition:
            self.failed.append(what)
        return "yes" if condition else "**no**"

    def target(self, config: str, ratio: float, what: str) -> str:
        limit = TARGETS.get(config)
        if limit is None:
            return ""
        return self.check(ratio <= limit, f"{what}, {config}: {ratio:.3f}x off")

    def spans(self, what: str, spans: int, requests: int, uncounted: int, ratio: float) -> str:
        low, high = plausible_spans(requests, uncounted, ratio)
        met = self.check(low <= spans <= high, f"{what}: {spans:,} spans for {requests:,}")
        return f"{spans:,} of {low:,}–{high:,}: {met}"


def _cpu_table(
    rounds: dict[tuple[str, str], list[list[CpuRound]]], checks: Checks
) -> tuple[str, float]:
    """The table, and the widest spread of a target's per-round ratios (the noise)."""
    rows: list[list[object]] = []
    widest = 0.0
    for target in (GET, ENRICHED, GATEWAY):
        processes = [(target, 0)] + ([("catalog behind it", 1)] if target == GATEWAY else [])
        for label, index in processes:
            off = [r[index] for r in rounds[(target, "off")]]
            for config in CONFIGURATIONS:
                measured = [r[index] for r in rounds[(target, config)]]
                ratios = [
                    m.cpu_per_request_us / o.cpu_per_request_us
                    for m, o in zip(measured, off, strict=True)
                ]
                met = "" if index else checks.target(config, median(ratios), f"{target} CPU")
                widest = max(widest, max(ratios) - min(ratios))
                rows.append([
                    label, config,
                    f"{median([m.result.requests_per_s for m in measured]):,.0f}",
                    f"{median([m.result.p99_ms for m in measured]):.1f}",
                    f"{median([m.cpu_per_request_us for m in measured]):,.0f}",
                    f"{median(ratios):.3f}", f"{min(ratios):.2f}–{max(ratios):.2f}", met,
                    sum(_errors(m.result) for m in measured),
                ])  # fmt: skip
    header = [
        "process", "sampling", "req/s", "p99 ms", "CPU per request (us)", "vs off",
        "per-round ratios", "target met", "errors",
    ]  # fmt: skip
    return markdown_table(header, rows), widest


def _span_table(
    stacks: dict[str, Stack], requests: dict[tuple[str, str], int], uncounted: int, checks: Checks
) -> str:
    rows: list[list[object]] = []
    for config, ratio in CONFIGURATIONS.items():
        receiver = stacks[config].receiver
        if ratio is None or receiver is None:
            continue
        spans = receiver.spans
        for target, (service, name) in SPAN_NAMES.items():
            served = requests[(target, config)]
            roots, _ = server_spans(spans, service, name)
            found = checks.spans(f"{target}, {config}", roots, served, uncounted, ratio)
            rows.append([f"{target} (roots)", config, f"{served:,}", found])
        # The catalog follows the gateway's decision: a catalog span per sampled gateway request.
        sampled, _ = server_spans(spans, *SPAN_NAMES[GATEWAY])
        _, children = server_spans(spans, *SPAN_NAMES[GET])
        found = checks.spans(f"catalog behind the gateway, {config}", children, sampled, 0, 1.0)
        rows.append(["catalog behind the gateway (children)", config, f"{sampled:,}", found])
    header = ["server spans of", "sampling", "requests", "spans received, of plausible: ok"]
    return markdown_table(header, rows)


@dataclass(frozen=True)
class Counted:
    """One callgrind round: its wrk result, instructions per request, server spans exported."""

    result: WrkResult
    per_request: float
    spans: int


def _counted(
    command: Sequence[str],
    env: dict[str, str],
    port: int,
    path: str,
    *,
    ratio: float | None,
    span_name: tuple[str, str],
    duration_s: int,
    headers: dict[str, str],
) -> Counted:
    """`command` under callgrind for one round on `path`, as `counted_instructions` does,
    with the export of the round's spans inside the count: the instructions from the
    round's start until its spans were exported, less the idle instructions of that
    time, over the requests."""
    url = f"http://127.0.0.1:{port}"
    with (
        otlp_receiver() as receiver,
        tempfile.TemporaryDirectory(prefix="tessera-callgrind-") as tmp,
    ):
        out_file = Path(tmp) / "callgrind.out"
        with service_process(
            callgrind_command(command, out_file),
            {**env, **tracing_env(ratio, receiver.endpoint)},
            ready_urls=[f"{url}/readyz"],
            ready_timeout_s=300,
            stop_timeout_s=60,
        ) as process:
            wrk(url + path, connections=INSTRUCTION_CONNECTIONS, duration_s=3, headers=headers)
            # The warm-up's spans go out before the idle count, not during it.
            _settle(receiver, span_name, None)
            idle_per_s = idle_instructions_per_s(process.pid, out_file)
            before, _ = server_spans(receiver.spans, *span_name)
            with _counting(process.pid):
                started = time.monotonic()
                result = wrk(
                    url + path,
                    connections=INSTRUCTION_CONNECTIONS,
                    duration_s=duration_s,
                    headers=headers,
                )
                _settle(receiver, span_name, before + result.requests if ratio == 1 else None)
                elapsed = time.monotonic() - started
            instructions = _dumped_instructions(out_file)
        after, _ = server_spans(receiver.spans, *span_name)
    if _errors(result):
        raise BenchError(f"{' '.join(command)} answered errors under callgrind")
    per_request = (instructions - idle_per_s * elapsed) / max(result.requests, 1)
    return Counted(result, per_request, after - before)


def _settle(
    receiver: OtlpReceiver, span_name: tuple[str, str], at_least: int | None, timeout_s: float = 120
) -> None:
    """Until the batch processor's next tick has exported what is queued; under
    callgrind an export takes seconds, so with every request sampled, until the
    receiver has `at_least` server spans."""
    time.sleep(EXPORT_SETTLE_S)
    deadline = time.monotonic() + timeout_s
    while at_least is not None and server_spans(receiver.spans, *span_name)[0] < at_least:
        if time.monotonic() > deadline:
            raise BenchError(f"fewer than {at_least} server spans exported in {timeout_s} s")
        time.sleep(0.5)


def _instructions(
    stacks: dict[str, Stack],
    infra: Infra,
    paths: dict[str, str],
    api_keys: str,
    headers: dict[str, str],
    duration_s: int,
    checks: Checks,
) -> str:
    rows: list[list[object]] = []
    for target in (GET, ENRICHED, GATEWAY):
        counted: dict[str, Counted] = {}
        for config, ratio in CONFIGURATIONS.items():
            port = free_port()
            if target == GATEWAY:
                # In front of its configuration's catalog, which runs natively.
                upstream = stacks[config].catalog.url
                command, env = _GATEWAY, _gateway_env(port, upstream, infra.nats_url, api_keys)
            else:
                command, env = uvicorn_command(CATALOG, port), catalog_env(infra, log_level="INFO")
            counted[config] = count = _counted(
                command, env, port, paths[target], ratio=ratio, span_name=SPAN_NAMES[target],
                duration_s=duration_s, headers=headers,
            )  # fmt: skip
            ratio_to_off = count.per_request / counted["off"].per_request
            spans = "" if ratio is None else checks.spans(
                f"{target}, {config}, callgrind", count.spans, count.result.requests,
                INSTRUCTION_CONNECTIONS, ratio,
            )  # fmt: skip
            rows.append([
                target, config, f"{count.result.requests:,}", f"{count.per_request / 1000:,.0f}k",
                f"{ratio_to_off:.3f}", checks.target(config, ratio_to_off, f"{target} instructions"),
                spans,
            ])  # fmt: skip
    header = ["target", "sampling", "requests counted", "instructions per request", "vs off",
              "target met", "server spans exported, of plausible: ok"]  # fmt: skip
    return markdown_table(header, rows)


def _inherited_tracing() -> list[str]:
    """Variables of this process that every service would inherit, changing what is measured."""
    from tessera_runtime.tracing import TRACE_DIR_VARIABLE

    return sorted(
        name for name in os.environ if name.startswith("OTEL_") or name == TRACE_DIR_VARIABLE
    )


def _check_configurations(stacks: dict[str, Stack], path: str, headers: dict[str, str]) -> None:
    """Each gateway answers, and its `traceparent` says whether it sampled the request."""
    for config, stack in stacks.items():
        answer = httpx.get(stack.gateway.url + path, headers=headers, timeout=10)
        if answer.status_code != 200:
            raise BenchError(
                f"gateway ({config}) answered {answer.status_code}: {answer.text[:200]}"
            )
        flags = answer.headers.get("traceparent", "")[-2:]
        if config in ("off", "100 %") and flags != ("00" if config == "off" else "01"):
            raise BenchError(f"gateway ({config}) answered traceparent flags {flags!r}")


def run(quick: bool) -> str:
    inherited = _inherited_tracing()
    if inherited:
        raise BenchError(f"unset {', '.join(inherited)}: every service would inherit it")
    raise_open_files_limit()
    rounds, duration_s, instruction_s = (1, 3, 5) if quick else (5, 10, 20)
    key, api_keys = bench_key()
    headers = {"Authorization": f"Bearer {key}"}
    checks = Checks()
    with (
        infrastructure() as infra,
        otlp_receiver() as every_trace,
        otlp_receiver() as one_percent,
    ):
        product_id = _product_id(infra.database_url)
        paths = {GET: f"/v1/products/{product_id}", GATEWAY: f"/v1/products/{product_id}"}
        paths[ENRICHED] = f"{paths[GET]}/enriched"
        inference_env = {"INFERENCE_NATS_URL": infra.nats_url, "INFERENCE_LOG_LEVEL": "WARNING"}
        receivers = {"100 %": every_trace, "1 %": one_percent}
        with (
            uvicorn_service(INFERENCE, inference_env),
            _stacks(
                catalog_env(infra, log_level="INFO"), infra.nats_url, api_keys, receivers
            ) as stacks,
        ):
            for stack in stacks.values():
                _wait_enriched_complete(stack.catalog.url + paths[ENRICHED])
            _check_configurations(stacks, paths[GATEWAY], headers)
            names = {f"{t} | {c}": (t, c) for t in (GET, ENRICHED, GATEWAY) for c in CONFIGURATIONS}
            measured: dict[tuple[str, str], list[list[CpuRound]]] = {k: [] for k in names.values()}
            for name in alternating(names, rounds):
                target, config = names[name]
                stack = stacks[config]
                served = stack.gateway if target == GATEWAY else stack.catalog
                pids = [served.pid] + ([stack.catalog.pid] if target == GATEWAY else [])
                round_ = _round(pids, served.url + paths[target], duration_s, headers)
                measured[(target, config)].append(round_)
            requests = {k: sum(r[0].result.requests for r in v) for k, v in measured.items()}
            # In flight when a round ended, and the readiness checks above.
            uncounted = rounds * CONNECTIONS + READINESS_REQUESTS
            span_table = _span_table(stacks, requests, uncounted, checks)
            cpu_table, widest = _cpu_table(measured, checks)
            instruction_table = _instructions(
                stacks, infra, paths, api_keys, headers, instruction_s, checks
            )
    noise = (
        f" Per-round ratios spread by up to {widest:.2f}: the machine was shared with other "
        "test runs while this ran, so the callgrind counts below are the steadier measure."
        if widest > 0.1
        else ""
    )
    verdict = (
        "**Not met:** " + "; ".join(checks.failed) + "."
        if checks.failed
        else "**Targets met** on both measures, and the spans arrived."
    )
    section = f"""## Tracing overhead: CPU per request with tracing off, 100 % and 1 % sampling

Each configuration has its own catalog and gateway, exporting over OTLP/HTTP
(the SDK's batch processor, default settings) to a receiver in the benchmark
process. Targets (issue 12): CPU per request at most {TARGETS["100 %"]}x the untraced
process's with 100 % sampling, {TARGETS["1 %"]}x with 1 %, for the catalog and the gateway.

{verdict}

### CPU per request, {CONNECTIONS} connections (wrk)

The process's utime + stime from its round's start until the round's spans were
exported ({EXPORT_SETTLE_S:g} s after wrk stopped), over the requests served.
{rounds} round(s) of {duration_s} s per target and configuration, alternating; medians;
"vs off" is the median of per-round ratios, whose range follows.{noise}

{cpu_table}

### Instructions per request (callgrind, {INSTRUCTION_CONNECTIONS} connection, {instruction_s} s)

Counted from the round's start until its spans were exported, the process's idle
instructions per second subtracted; the gateway in front of its configuration's
catalog, which runs natively.

{instruction_table}

### Server spans received during the wrk rounds

Plausible: the binomial mean within 5 standard deviations, plus the requests wrk
did not count (in flight at a round's end, readiness checks); under the gateway,
one catalog span per sampled gateway request, whatever the catalog's own ratio.

{span_table}"""
    if checks.failed:
        raise ScenarioFailed(f"not met: {'; '.join(checks.failed)}", section)
    return section
