"""Probes under overload, and what a refusal costs the gateway next to a served request.

    uv run python -m bench.run overload [--quick]

The gateway runs as in production (`python -m tessera_gateway`: uvloop,
httptools, its probe port), in front of the catalog on the embedded PostgreSQL.

1. CPU per request: wrk at 64 connections, first with an API key whose bucket
   wrk cannot empty (every request is served: proxied to the catalog), then
   anonymous (one client address over its quota: nearly every request is a
   429). The gateway's CPU time (utime + stime of its process, all threads,
   from /proc/<pid>/stat) over the run, divided by the requests wrk completed.
2. Probes: a client opens a fresh connection per probe (as the kubelet does)
   every 50 ms to `/healthz` and `/readyz` on the probe port, and on the API
   port for comparison: first on an idle gateway (the baseline), then while wrk
   holds 1,000 connections of anonymous requests. Latency p50/p99/max per
   target; a probe that gets no answer within 10 s counts as timed out.
"""

from __future__ import annotations

import contextlib
import http.client
import statistics
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import httpx

from bench.harness import (
    BenchError,
    ScenarioFailed,
    WrkResult,
    bench_key,
    catalog_env,
    cpu_seconds,
    demo_product_path,
    free_port,
    infrastructure,
    markdown_table,
    raise_open_files_limit,
    require_tool,
    service_process,
    uvicorn_service,
    wrk,
)

CPU_CONNECTIONS = 64
OVERLOAD_CONNECTIONS = 1000
PROBE_EVERY_S = 0.05
PROBE_TIMEOUT_S = 10.0
TARGET_P99_MS = 100.0
CATALOG = "tessera_catalog.app:create_app"


@dataclass(frozen=True)
class Gateway:
    api: str
    probes: str
    pid: int


@dataclass
class ProbeSeries:
    """Latencies of one probe target, in milliseconds, and the probes that got no answer."""

    latencies_ms: list[float] = field(default_factory=list)
    failures: int = 0
    statuses: dict[int, int] = field(default_factory=dict)


@contextlib.contextmanager
def _gateway(env: dict[str, str]) -> Iterator[Gateway]:
    """`python -m tessera_gateway` with a probe port, as the container runs it."""
    port, probe_port = free_port(), free_port()
    gateway_env = {
        "GATEWAY_HOST": "127.0.0.1",
        "GATEWAY_PORT": str(port),
        "GATEWAY_PROBE_PORT": str(probe_port),
        "GATEWAY_LOG_LEVEL": "WARNING",
        # As in the other gateway scenarios: the access log would cost both kinds
        # of request the same JSON line.
        "GATEWAY_ACCESS_LOG": "false",
        **env,
    }
    api, probes = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{probe_port}"
    with service_process(
        [sys.executable, "-m", "tessera_gateway"],
        gateway_env,
        ready_urls=[f"{probes}/readyz", f"{api}/readyz"],
        stop_timeout_s=30.0,
    ) as process:
        yield Gateway(api, probes, process.pid)


def _probe_once(base: str, path: str, series: ProbeSeries) -> None:
    host, _, port = base.removeprefix("http://").partition(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=PROBE_TIMEOUT_S)
    started = time.perf_counter()
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        response.read()
    except OSError:
        series.failures += 1
        return
    finally:
        connection.close()
    series.latencies_ms.append((time.perf_counter() - started) * 1000)
    series.statuses[response.status] = series.statuses.get(response.status, 0) + 1


def _probe_until(base: str, path: str, stop: threading.Event, series: ProbeSeries) -> None:
    while not stop.is_set():
        _probe_once(base, path, series)
        stop.wait(PROBE_EVERY_S)


def _probe_while(gateway: Gateway, hold: threading.Event) -> dict[str, ProbeSeries]:
    """Probe every target from its own thread until `hold` is set."""
    targets = {f"probe port {path}": (gateway.probes, path) for path in ("/healthz", "/readyz")} | {
        f"API port {path}": (gateway.api, path) for path in ("/healthz", "/readyz")
    }
    results = {name: ProbeSeries() for name in targets}
    threads = [
        threading.Thread(target=_probe_until, args=(base, path, hold, results[name]), daemon=True)
        for name, (base, path) in targets.items()
    ]
    for thread in threads:
        thread.start()
    hold.wait()
    for thread in threads:
        thread.join(PROBE_TIMEOUT_S + 5)
    return results


def _probe_for(gateway: Gateway, seconds: float) -> dict[str, ProbeSeries]:
    hold = threading.Event()
    timer = threading.Timer(seconds, hold.set)
    timer.start()
    return _probe_while(gateway, hold)


def _probe_during(gateway: Gateway, load: threading.Thread) -> dict[str, ProbeSeries]:
    hold = threading.Event()

    def release() -> None:
        load.join()
        hold.set()

    load.start()
    threading.Thread(target=release, daemon=True).start()
    return _probe_while(gateway, hold)


def _cpu_per_request(
    gateway: Gateway, url: str, duration_s: int, headers: dict[str, str]
) -> tuple[WrkResult, float]:
    before = cpu_seconds(gateway.pid)
    result = wrk(url, connections=CPU_CONNECTIONS, duration_s=duration_s, headers=headers)
    used = cpu_seconds(gateway.pid) - before
    return result, used / max(result.requests, 1)


def _percentile(values: list[float], q: int) -> float:
    if len(values) < 2:
        return values[0] if values else float("nan")
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def _probe_row(phase: str, name: str, series: ProbeSeries) -> list[object]:
    lat = series.latencies_ms
    statuses = ", ".join(f"{status}: {count}" for status, count in sorted(series.statuses.items()))
    return [
        phase,
        name,
        len(lat) + series.failures,
        f"{_percentile(lat, 50):.1f}" if lat else "-",
        f"{_percentile(lat, 99):.1f}" if lat else "-",
        f"{max(lat):.1f}" if lat else "-",
        series.failures,
        statuses or "-",
    ]


def run(quick: bool) -> str:
    require_tool("wrk", "wrk")
    raise_open_files_limit()
    cpu_s, idle_s, overload_s = (5, 5, 15) if quick else (20, 15, 60)
    key, api_keys = bench_key()
    with infrastructure() as infra:
        with uvicorn_service(CATALOG, catalog_env(infra)) as catalog:
            path = demo_product_path(catalog)
            gateway_env = {
                "GATEWAY_CATALOG_URL": catalog,
                "GATEWAY_NATS_URL": infra.nats_url,
                "GATEWAY_API_KEYS": api_keys,
                # The key's bucket is one wrk cannot empty; anonymous requests keep
                # the defaults, so one client address is over its quota at once.
                "GATEWAY_RATE_LIMIT_PER_S": "1000000",
                "GATEWAY_RATE_LIMIT_BURST": "1000000",
            }
            with _gateway(gateway_env) as gateway:
                auth = {"Authorization": f"Bearer {key}"}
                check = httpx.get(gateway.api + path, headers=auth, timeout=10)
                if check.status_code != 200:
                    raise BenchError(f"gateway answered {check.status_code}: {check.text[:200]}")
                served, served_cpu = _cpu_per_request(gateway, gateway.api + path, cpu_s, auth)
                refused, refused_cpu = _cpu_per_request(gateway, gateway.api + path, cpu_s, {})
                idle = _probe_for(gateway, idle_s)
                overload: dict[str, WrkResult] = {}

                def load() -> None:
                    overload["wrk"] = wrk(
                        gateway.api + path,
                        connections=OVERLOAD_CONNECTIONS,
                        duration_s=overload_s,
                        timeout_s=10,
                    )

                busy = _probe_during(gateway, threading.Thread(target=load))

    flood = overload["wrk"]
    cpu_table = markdown_table(
        ["request", "req/s", "non-2xx", "gateway CPU per request (us)"],
        [
            ["served (API key, proxied to the catalog)", f"{served.requests_per_s:,.0f}",
             served.non_2xx, f"{served_cpu * 1e6:.0f}"],
            ["refused (anonymous, over quota: 429)", f"{refused.requests_per_s:,.0f}",
             refused.non_2xx, f"{refused_cpu * 1e6:.0f}"],
        ],
    )  # fmt: skip
    probe_table = markdown_table(
        ["load", "target", "probes", "p50 ms", "p99 ms", "max ms", "no answer", "statuses"],
        [_probe_row("idle", name, series) for name, series in idle.items()]
        + [_probe_row(f"{OVERLOAD_CONNECTIONS} connections", n, s) for n, s in busy.items()],
    )
    probe_port_p99 = max(
        _percentile(series.latencies_ms, 99)
        for name, series in busy.items()
        if name.startswith("probe port") and series.latencies_ms
    )
    met = probe_port_p99 < TARGET_P99_MS and refused_cpu < served_cpu
    verdict = "meets" if probe_port_p99 < TARGET_P99_MS else "misses"
    section = f"""## Overload: probes and the cost of a refusal

Gateway (`python -m tessera_gateway`, one process, access log off) in front of
the catalog; `{path.rsplit("/", 1)[0]}/{{id}}` for every request.

### Gateway CPU per request, {CPU_CONNECTIONS} connections for {cpu_s} s each

{cpu_table}

A refusal costs {refused_cpu / served_cpu:.2f} x a served request.

### Probe latency, fresh connection every {PROBE_EVERY_S * 1000:.0f} ms per target

{probe_table}

Under load: wrk `-c {OVERLOAD_CONNECTIONS}` of anonymous requests for {overload_s} s,
{flood.requests_per_s:,.0f} req/s, {flood.non_2xx:,} non-2xx of {flood.requests:,},
socket errors: connect {flood.connect_errors}, read {flood.read_errors},
write {flood.write_errors}, timeout {flood.timeouts}. The probe port's worst p99
({probe_port_p99:.1f} ms) {verdict} the {TARGET_P99_MS:.0f} ms target.
"""
    if not met:
        # The two promises: probes within the target, refusals cheaper.
        raise ScenarioFailed(
            f"probe port p99 {probe_port_p99:.1f} ms (target {TARGET_P99_MS:.0f} ms), "
            f"refusal/served CPU {refused_cpu / served_cpu:.2f}",
            section,
        )
    return section
