"""What a proxy costs per request: the gateway against the Python floor and nginx.

    uv run python -m bench.run proxies [--quick]

Each proxy forwards `GET /v1/products/{id}` (wrk, 64 connections, an API key on
every request) to one of two upstreams:

1. a fast one, nginx answering the product's JSON from a file, so the proxy is
   the bottleneck and its cost shows in req/s as well;
2. the real catalog (one uvicorn worker on the embedded PostgreSQL), where the
   catalog is the bottleneck and only the proxy's CPU per request tells them apart.

The proxies: nginx (keep-alive upstream), the Python floor (`bench/floor_proxy.py`:
raw ASGI on uvicorn, an aiohttp keep-alive pool, nothing else) and the gateway as
`tessera up` runs it (`python -m tessera_gateway`: key checked, rate limiter
consulted, metrics, JSON access log on). CPU per request is the utime + stime of
the proxy's process (nginx: with its worker) during a round, over the round's
requests. Rounds alternate the proxies; tables show medians over rounds, and the
gateway/floor ratio is the median of per-round ratios.

Last, the floor and the gateway run once more each under valgrind's callgrind
(Debian's `valgrind`) in front of the fast upstream, for the instructions they
execute per request: a count the machine's other load does not move.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator

import httpx

from bench.harness import (
    BenchError,
    CpuRound,
    Served,
    WrkResult,
    alternating,
    bench_key,
    catalog_env,
    counted_instructions,
    demo_product_path,
    free_port,
    infrastructure,
    markdown_table,
    median,
    nginx_proxy_process,
    nginx_static,
    raise_open_files_limit,
    service_process,
    uvicorn_command,
    uvicorn_process,
    wrk_with_cpu,
)

CONNECTIONS = 64
INSTRUCTION_CONNECTIONS = 16
"""Under callgrind each proxy answers a few hundred requests a second: fewer connections."""
CATALOG = "tessera_catalog.app:create_app"
FLOOR = "bench.floor_proxy:create_app"
TARGET_GATEWAY_VS_FLOOR = 1.25
"""Issue 11's target for the gateway's CPU per request, as a multiple of the floor's."""


_GATEWAY = [sys.executable, "-m", "tessera_gateway"]


def _gateway_env(port: int, upstream: str, nats_url: str, api_keys: str) -> dict[str, str]:
    """`python -m tessera_gateway` as `tessera up` runs it, in front of `upstream`."""
    return {
        "GATEWAY_HOST": "127.0.0.1",
        "GATEWAY_PORT": str(port),
        "GATEWAY_CATALOG_URL": upstream,
        "GATEWAY_NATS_URL": nats_url,
        "GATEWAY_API_KEYS": api_keys,
        # Consulted on every request, never refusing: the benchmark measures forwarding.
        "GATEWAY_RATE_LIMIT_PER_S": "1000000",
        "GATEWAY_RATE_LIMIT_BURST": "1000000",
    }


@contextlib.contextmanager
def _gateway(upstream: str, nats_url: str, api_keys: str) -> Iterator[Served]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = _gateway_env(port, upstream, nats_url, api_keys)
    with service_process(_GATEWAY, env, ready_urls=[f"{url}/readyz"]) as process:
        yield Served(url, process.pid)


def _instructions(
    upstream: str, nats_url: str, api_keys: str, path: str, headers: dict[str, str], duration_s: int
) -> tuple[str, float]:
    """Instructions per request of the floor and the gateway under callgrind, one after
    the other: the comparison that does not depend on how busy the machine is."""
    rounds: dict[str, tuple[WrkResult, float]] = {}
    for name in ("Python floor", "gateway"):
        port = free_port()
        if name == "gateway":
            command, env = _GATEWAY, _gateway_env(port, upstream, nats_url, api_keys)
        else:
            command, env = uvicorn_command(FLOOR, port), {"FLOOR_UPSTREAM": upstream}
        rounds[name] = counted_instructions(
            command,
            env,
            port,
            path,
            connections=INSTRUCTION_CONNECTIONS,
            duration_s=duration_s,
            headers=headers,
        )
    floor = rounds["Python floor"][1]
    rows = [
        [
            name,
            f"{result.requests:,}",
            f"{per_request / 1000:,.0f}",
            f"{per_request / floor:.2f}",
            result.non_2xx,
        ]
        for name, (result, per_request) in rounds.items()
    ]
    header = [
        "proxy",
        "requests counted",
        "instructions per request (thousands)",
        "vs floor",
        "non-2xx",
    ]
    ratio = rounds["gateway"][1] / floor
    return markdown_table(header, rows), ratio


def _rounds(
    proxies: dict[str, Served], path: str, rounds: int, duration_s: int, headers: dict[str, str]
) -> dict[str, list[CpuRound]]:
    for name, proxy in proxies.items():
        check = httpx.get(proxy.url + path, headers=headers, timeout=10)
        if check.status_code != 200:
            raise BenchError(f"{name} answered {check.status_code}: {check.text[:200]}")
    results: dict[str, list[CpuRound]] = {name: [] for name in proxies}
    for name in alternating(proxies, rounds):
        proxy = proxies[name]
        results[name].append(
            wrk_with_cpu(
                proxy.pid,
                proxy.url + path,
                connections=CONNECTIONS,
                duration_s=duration_s,
                headers=headers,
            )
        )
    return results


def _table(results: dict[str, list[CpuRound]]) -> tuple[str, float]:
    floor = results["Python floor"]
    rows = []
    for name, rounds in results.items():
        ratio = median(
            [
                r.cpu_per_request_us / f.cpu_per_request_us
                for r, f in zip(rounds, floor, strict=True)
            ]
        )
        errors = sum(
            r.result.connect_errors
            + r.result.read_errors
            + r.result.write_errors
            + r.result.timeouts
            for r in rounds
        )
        rows.append(
            [
                name,
                f"{median([r.result.requests_per_s for r in rounds]):,.0f}",
                f"{median([r.result.p99_ms for r in rounds]):.1f}",
                f"{median([r.cpu_per_request_us for r in rounds]):,.0f}",
                f"{ratio:.2f}",
                errors + sum(r.result.non_2xx for r in rounds),
            ]
        )
    gateway = median(
        [
            g.cpu_per_request_us / f.cpu_per_request_us
            for g, f in zip(results["gateway"], floor, strict=True)
        ]
    )
    table = markdown_table(
        ["proxy", "req/s", "p99 ms", "CPU per request (us)", "CPU vs floor", "errors"], rows
    )
    return table, gateway


def run(quick: bool) -> str:
    raise_open_files_limit()
    rounds, duration_s = (1, 3) if quick else (3, 10)
    key, api_keys = bench_key()
    headers = {"Authorization": f"Bearer {key}"}
    tables: dict[str, tuple[str, float]] = {}
    with infrastructure() as infra, contextlib.ExitStack() as servers:
        catalog = servers.enter_context(uvicorn_process(CATALOG, catalog_env(infra)))
        path = demo_product_path(catalog.url)
        body = httpx.get(catalog.url + path, timeout=10).content
        fast = servers.enter_context(nginx_static(body))
        for label, upstream in (("fast upstream", fast), ("catalog upstream", catalog)):
            with contextlib.ExitStack() as proxies_stack:
                proxies = {
                    "nginx": proxies_stack.enter_context(nginx_proxy_process(upstream.url)),
                    "Python floor": proxies_stack.enter_context(
                        uvicorn_process(FLOOR, {"FLOOR_UPSTREAM": upstream.url})
                    ),
                    "gateway": proxies_stack.enter_context(
                        _gateway(upstream.url, infra.nats_url, api_keys)
                    ),
                }
                tables[label] = _table(_rounds(proxies, path, rounds, duration_s, headers))
        instruction_table, instruction_ratio = _instructions(
            fast.url, infra.nats_url, api_keys, path, headers, 5 if quick else 20
        )

    fast_table, fast_ratio = tables["fast upstream"]
    catalog_table, catalog_ratio = tables["catalog upstream"]
    return f"""## Proxies: CPU per request of the gateway, the Python floor and nginx

`GET /v1/products/{{id}}`, wrk with 2 threads at {CONNECTIONS} connections, an API key
on every request. The floor is a raw ASGI app on uvicorn forwarding through an
aiohttp keep-alive pool (`bench/floor_proxy.py`); the gateway runs as `tessera up`
runs it (key checked, rate limiter consulted, metrics, JSON access log). CPU per
request: the proxy process's utime + stime during the round over its requests.

### Fast upstream (nginx answering the JSON from a file): the proxy is the bottleneck

{fast_table}

### The catalog as upstream: the catalog is the bottleneck

{catalog_table}

Gateway CPU per request: **{fast_ratio:.2f}x** the floor's with the fast upstream,
{catalog_ratio:.2f}x with the catalog (target: at most {TARGET_GATEWAY_VS_FLOOR}x).
{rounds} round(s) of {duration_s} s per proxy and upstream; medians over rounds.

### Instructions per request (fast upstream, under callgrind)

CPU time moves with whatever else shares the two cores; the instructions a
process executes do not. Each proxy runs under valgrind's callgrind, which
counts user-space instructions (not the kernel's, nor cache misses) while wrk
sends {INSTRUCTION_CONNECTIONS} connections of the same request, start-up and
warm-up left out, and each process's idle instructions per second (its timers and
background tasks, a far larger share per request at callgrind's pace than at full
speed) subtracted:

{instruction_table}

The gateway executes **{instruction_ratio:.2f}x** the floor's instructions per request."""
