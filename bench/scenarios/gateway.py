"""The gateway's pass-through cost: catalog direct vs nginx vs the gateway, same run.

    uv run python -m bench.run gateway [--quick]

1. `GET /v1/products/{id}` at 64 connections (wrk), rounds alternating the
   targets: the catalog directly, nginx proxying to it (keep-alive upstream),
   the gateway as deployed (aiohttp client, proxy router, an API key checked and
   rate limited on every request), and variants of the gateway that show what
   its design choices are worth: httpx instead of aiohttp, and uvicorn's stock httptools
   protocol instead of the header-limited one (what the limits cost). Medians
   over rounds; ratios are the median of per-round ratios to nginx.
2. 1,000 connections for 60 s (`--timeout 10s`) against nginx and the gateway:
   connection errors, non-2xx responses, p50 and p99.

Every server runs as in production: uvicorn with uvloop and httptools, one
worker each, access logs off (nginx's too), the catalog on the embedded
PostgreSQL with the demo data. The machine's two cores are shared by wrk,
the proxy, the catalog and PostgreSQL, so the catalog is the same for every
target and the proxy's own CPU per request is what separates them.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field

import httpx

from bench.harness import (
    BenchError,
    WrkResult,
    alternating,
    bench_key,
    catalog_env,
    demo_product_path,
    infrastructure,
    markdown_table,
    median,
    nginx_proxy,
    raise_open_files_limit,
    uvicorn_service,
    wrk,
)

CONNECTIONS = 64
SOAK_CONNECTIONS = 1000
CATALOG = "tessera_catalog.app:create_app"
GATEWAY = "tessera_gateway.app:create_app"


@dataclass(frozen=True)
class Variant:
    env: dict[str, str] = field(default_factory=dict)
    hardened: bool = True
    """Under `python -m tessera_gateway` (header limits, timeouts), not plain uvicorn."""


VARIANTS: dict[str, Variant] = {
    "gateway": Variant(),
    "gateway, httpx client": Variant({"GATEWAY_UPSTREAM_CLIENT": "httpx"}),
    "gateway, stock uvicorn protocol (no header limits)": Variant(hardened=False),
}


def _ensure_tools() -> None:
    """nginx and wrk from Debian's packages, installed once if missing and allowed."""
    missing = [tool for tool in ("nginx", "wrk") if not _which(tool)]
    if not missing:
        return
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise BenchError(f"{', '.join(missing)} missing: apt-get install -y nginx wrk")
    for command in (["apt-get", "update"], ["apt-get", "install", "-y", "nginx", "wrk"]):
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise BenchError(f"`{' '.join(command)}` failed: {done.stderr.strip()[-500:]}")


def _which(tool: str) -> bool:
    return bool(shutil.which(tool) or os.path.exists(f"/usr/sbin/{tool}"))


@contextlib.contextmanager
def _gateway(catalog: str, nats_url: str, api_keys: str, variant: Variant) -> Iterator[str]:
    env = {
        "GATEWAY_CATALOG_URL": catalog,
        "GATEWAY_NATS_URL": nats_url,
        "GATEWAY_API_KEYS": api_keys,
        "GATEWAY_ACCESS_LOG": "false",
        # The benchmark measures forwarding, not refusals: a bucket wrk cannot empty.
        "GATEWAY_RATE_LIMIT_PER_S": "1000000",
        "GATEWAY_RATE_LIMIT_BURST": "1000000",
        **variant.env,
    }
    with uvicorn_service(GATEWAY, env, hardened=variant.hardened) as url:
        yield url


def _row(name: str, results: list[WrkResult], baseline: list[WrkResult]) -> list[object]:
    ratio = median(
        [r.requests_per_s / b.requests_per_s for r, b in zip(results, baseline, strict=True)]
    )
    errors = sum(r.connect_errors + r.read_errors + r.write_errors + r.timeouts for r in results)
    return [
        name,
        f"{median([r.requests_per_s for r in results]):,.0f}",
        f"{median([r.p50_ms for r in results]):.1f}",
        f"{median([r.p99_ms for r in results]):.1f}",
        f"{ratio:.2f}",
        errors,
        sum(r.non_2xx for r in results),
    ]


def _soak_row(name: str, result: WrkResult) -> list[object]:
    return [
        name,
        f"{result.requests_per_s:,.0f}",
        f"{result.p50_ms:.1f}",
        f"{result.p99_ms:.1f}",
        result.connect_errors,
        result.read_errors + result.write_errors,
        result.timeouts,
        result.non_2xx,
    ]


def run(quick: bool) -> str:
    _ensure_tools()
    raise_open_files_limit()
    rounds, duration_s, soak_s = (1, 3, 10) if quick else (3, 10, 60)
    key, api_keys = bench_key()
    auth = {"Authorization": f"Bearer {key}"}
    with infrastructure() as infra:
        with contextlib.ExitStack() as servers:
            catalog = servers.enter_context(uvicorn_service(CATALOG, catalog_env(infra)))
            path = demo_product_path(catalog)
            bases = {
                "catalog (direct)": catalog,
                "nginx": servers.enter_context(nginx_proxy(catalog)),
            }
            for name, variant in VARIANTS.items():
                bases[name] = servers.enter_context(
                    _gateway(catalog, infra.nats_url, api_keys, variant)
                )
            for name, base in bases.items():
                check = httpx.get(base + path, headers=auth, timeout=10)
                if check.status_code != 200:
                    raise BenchError(f"{name} answered {check.status_code}: {check.text[:200]}")

            results: dict[str, list[WrkResult]] = {name: [] for name in bases}
            for name in alternating(bases, rounds):
                results[name].append(
                    wrk(
                        bases[name] + path,
                        connections=CONNECTIONS,
                        duration_s=duration_s,
                        headers=auth,
                    )
                )
            soak = {
                name: wrk(
                    bases[name] + path,
                    connections=SOAK_CONNECTIONS,
                    duration_s=soak_s,
                    timeout_s=10,
                    headers=auth,
                )
                for name in ("nginx", "gateway")
            }

    nginx = results["nginx"]
    throughput = markdown_table(
        ["target", "req/s", "p50 ms", "p99 ms", "vs nginx", "socket errors", "non-2xx"],
        [_row(name, rows, nginx) for name, rows in results.items()],
    )
    soak_table = markdown_table(
        [
            "target",
            "req/s",
            "p50 ms",
            "p99 ms",
            "connect errors",
            "read/write errors",
            "timeouts",
            "non-2xx",
        ],
        [_soak_row(name, result) for name, result in soak.items()],
    )
    return f"""## Gateway: pass-through overhead

`GET /v1/products/{{id}}` (one demo product), wrk with 2 threads, each target
behind the same catalog (one uvicorn worker on the embedded PostgreSQL).
Gateway requests carry an API key (checked and rate limited per request).

### {CONNECTIONS} connections, {rounds} round(s) of {duration_s} s, medians

{throughput}

### {SOAK_CONNECTIONS} connections for {soak_s} s (wrk `--timeout 10s`)

{soak_table}

The gateway holds at most `GATEWAY_UPSTREAM_MAX_CONNECTIONS` (64) requests at
the catalog and queues the rest in FIFO order, so the catalog is never asked
for more than it can answer in time; nginx passes all {SOAK_CONNECTIONS}
connections through, and the catalog's non-2xx answers above are its own
503s (database pool exhausted).
"""
