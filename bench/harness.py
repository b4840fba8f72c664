"""Shared pieces of the load scenarios: servers, wrk, nginx, medians.

Every scenario measures its baseline in the same run as the thing it measures,
because these machines are noisy: only ratios and medians are comparable.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

REPO_ROOT = Path(__file__).resolve().parent.parent


class BenchError(RuntimeError):
    """A scenario could not run (a missing tool, a server that did not start)."""


class ScenarioFailed(BenchError):
    """A scenario ran but what it checks did not hold; `section` is its report all the same."""

    def __init__(self, message: str, section: str) -> None:
        super().__init__(message)
        self.section = section


@dataclass(frozen=True)
class Infra:
    database_url: str
    nats_url: str


@dataclass(frozen=True)
class WrkResult:
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    requests: int
    connect_errors: int
    read_errors: int
    write_errors: int
    timeouts: int
    non_2xx: int


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def require_tool(name: str, debian_package: str) -> str:
    path = shutil.which(name) or (
        f"/usr/sbin/{name}" if Path(f"/usr/sbin/{name}").exists() else None
    )
    if path is None:
        raise BenchError(
            f"{name} is missing: install it with `apt-get update && apt-get install -y {debian_package}`"
        )
    return path


def raise_open_files_limit(wanted: int = 65536) -> None:
    """wrk and the servers need a descriptor per connection (1,000+ in the soak runs)."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = min(wanted, hard) if hard != resource.RLIM_INFINITY else wanted
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


@contextlib.contextmanager
def infrastructure() -> Iterator[Infra]:
    """Embedded PostgreSQL and NATS in a temp dir, with migrations and demo data applied."""
    from tessera_catalog.db.migrate import apply_migrations
    from tessera_catalog.db.seed import seed_if_empty
    from tessera_stack.nats import EmbeddedNats
    from tessera_stack.postgres import EmbeddedPostgres, create_database

    with tempfile.TemporaryDirectory(prefix="tessera-bench-") as tmp:
        root = Path(tmp)
        with EmbeddedPostgres(root / "postgres") as postgres, EmbeddedNats(root / "nats") as nats:
            database_url = asyncio.run(create_database(postgres.dsn, "bench"))
            asyncio.run(apply_migrations(database_url))
            asyncio.run(seed_if_empty(database_url))
            yield Infra(database_url=database_url, nats_url=nats.url)


def catalog_env(infra: Infra, *, log_level: str = "WARNING") -> dict[str, str]:
    """The catalog's environment on the bench infrastructure. Where the catalog is
    only an upstream, warnings only; where the catalog itself is measured,
    `log_level="INFO"`, as `tessera up` and the deployment run it (JSON access log on)."""
    return {
        "CATALOG_DATABASE_URL": infra.database_url,
        "CATALOG_NATS_URL": infra.nats_url,
        "CATALOG_LOG_LEVEL": log_level,
    }


def demo_product_path(catalog_url: str) -> str:
    """`/v1/products/{id}` of the first demo product."""
    page = httpx.get(f"{catalog_url}/v1/products", params={"limit": 1}, timeout=10).json()
    if not page["items"]:
        raise BenchError("the demo data has no product")
    return f"/v1/products/{page['items'][0]['id']}"


def alternating(names: Iterable[str], rounds: int) -> Iterator[str]:
    """Every name once a round, in reverse order every other round, so no target
    always runs on a warmer (or hotter) machine."""
    order = list(names)
    for index in range(rounds):
        yield from (order if index % 2 == 0 else reversed(order))


def wait_until_answering(
    url: str, process: subprocess.Popen[bytes], *, ready_status: int = 200, timeout_s: float = 30.0
) -> None:
    """Poll `url` until it answers `ready_status`; fail fast if `process` exits first."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise BenchError(f"{url}: server exited with {process.returncode} before it answered")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=1.0).status_code == ready_status:
                return
        time.sleep(0.1)
    raise BenchError(f"{url} did not answer {ready_status} within {timeout_s} s")


_SERVICE_FACTORY = re.compile(r"(?P<module>tessera_(gateway|catalog|inference))\.app:create_app")


def cpu_seconds(pid: int) -> float:
    """utime + stime of the process (every thread), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    # After the command name: state is field 3, utime 14 and stime 15 (1-based).
    ticks = int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def _children(pid: int) -> list[int]:
    children: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        text = (task / "children").read_text()
        children.extend(int(child) for child in text.split())
    return children


def tree_cpu_seconds(pid: int) -> float:
    """`cpu_seconds` of the process and its living descendants (nginx's workers)."""
    total = 0.0
    pending = [pid]
    while pending:
        current = pending.pop()
        try:
            total += cpu_seconds(current)
            pending.extend(_children(current))
        except FileNotFoundError:
            continue  # exited meanwhile
    return total


def bench_key() -> tuple[str, str]:
    """A catalog:read API key and its GATEWAY_API_KEYS entry: wrk sends it on every request."""
    from tessera_contracts.operations import CATALOG_READ
    from tessera_gateway.domain.auth import generate_key

    key, entry = generate_key("bench", [CATALOG_READ])
    return key, entry.to_setting()


@dataclass(frozen=True)
class CpuRound:
    """One wrk round and the CPU time the measured process spent during it."""

    result: WrkResult
    cpu_s: float

    @property
    def cpu_per_request_us(self) -> float:
        return self.cpu_s / max(self.result.requests, 1) * 1e6


@dataclass(frozen=True)
class Served:
    """A server a scenario started: where it answers and which process to account."""

    url: str
    pid: int


@contextlib.contextmanager
def uvicorn_service(
    factory: str, env: Mapping[str, str], *, hardened: bool = True
) -> Iterator[str]:
    """Serve `factory` (e.g. `tessera_catalog.app:create_app`) on a free port for the block.

    A service's factory runs as in production, `python -m tessera_<name>` (uvicorn
    under the service's header limits and timeouts); any other (a baseline app), or
    a service with `hardened=False` (to measure what the limits cost), under plain
    uvicorn with uvloop and httptools.
    """
    with uvicorn_process(factory, env, hardened=hardened) as served:
        yield served.url


@contextlib.contextmanager
def uvicorn_process(
    factory: str,
    env: Mapping[str, str],
    port: int | None = None,
    *,
    hardened: bool = True,
) -> Iterator[Served]:
    """`uvicorn_service`, also telling the process (for its CPU time)."""
    port = port or free_port()
    base_url = f"http://127.0.0.1:{port}"
    command = uvicorn_command(factory, port, hardened=hardened)
    with service_process(command, env, ready_urls=[f"{base_url}/readyz"]) as process:
        yield Served(base_url, process.pid)


def uvicorn_command(factory: str, port: int, *, hardened: bool = True) -> list[str]:
    """The command `uvicorn_process` runs (see `uvicorn_service`)."""
    service = _SERVICE_FACTORY.fullmatch(factory)
    if service is not None and hardened:
        return [
            sys.executable, "-m", service["module"], "--host", "127.0.0.1", "--port", str(port)
        ]  # fmt: skip
    return [
        sys.executable, "-m", "uvicorn", factory, "--factory",
        "--host", "127.0.0.1", "--port", str(port),
        "--loop", "uvloop", "--http", "httptools",
        "--no-access-log", "--log-level", "warning",
    ]  # fmt: skip


@contextlib.contextmanager
def service_process(
    command: Sequence[str],
    env: Mapping[str, str],
    *,
    ready_urls: Sequence[str],
    ready_timeout_s: float = 30.0,
    stop_timeout_s: float = 15.0,
) -> Iterator[subprocess.Popen[bytes]]:
    """Run `command` with `env` added for the block, once every one of `ready_urls` answers 200."""
    # Keep the service's JSON logs out of the benchmark's own output.
    process = subprocess.Popen(
        list(command),
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for url in ready_urls:
            wait_until_answering(url, process, timeout_s=ready_timeout_s)
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=stop_timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextlib.contextmanager
def nginx_proxy(upstream_base_url: str, port: int | None = None) -> Iterator[str]:
    """nginx in the foreground as a keep-alive reverse proxy in front of `upstream_base_url`."""
    with nginx_proxy_process(upstream_base_url, port) as served:
        yield served.url


@contextlib.contextmanager
def nginx_proxy_process(upstream_base_url: str, port: int | None = None) -> Iterator[Served]:
    """`nginx_proxy`, also telling its master process (its worker is a child)."""
    upstream = upstream_base_url.removeprefix("http://")
    server = f"""\
        upstream app {{ server {upstream}; keepalive 64; }}
        server {{
            listen 127.0.0.1:{{port}};
            location / {{
                proxy_pass http://app;
                proxy_http_version 1.1;
                proxy_set_header Connection "";
            }}
        }}
    """
    # The upstream's liveness through the proxy: nginx and upstream both answer.
    with _nginx(server, port, ready_path="/healthz") as served:
        yield served


@contextlib.contextmanager
def nginx_static(body: bytes, port: int | None = None) -> Iterator[Served]:
    """nginx answering every request with `body` as JSON: an upstream that costs next
    to nothing, so a proxy in front of it is the bottleneck."""
    server = """\
        server {
            listen 127.0.0.1:{port};
            default_type application/json;
            location / { root {root}; try_files /body.json =404; }
        }
    """
    with _nginx(server, port, ready_path="/readyz", files={"body.json": body}) as served:
        yield served


@contextlib.contextmanager
def _nginx(
    server: str, port: int | None, *, ready_path: str, files: Mapping[str, bytes] | None = None
) -> Iterator[Served]:
    """nginx in the foreground, one worker, running `server` (`{port}` and `{root}`
    filled in), with `files` in its root directory."""
    nginx = require_tool("nginx", "nginx")
    port = port or free_port()
    with tempfile.TemporaryDirectory(prefix="tessera-nginx-") as tmp:
        for name, content in (files or {}).items():
            (Path(tmp) / name).write_bytes(content)
            # nginx's worker runs as another user (`nobody`) when started as root.
            (Path(tmp) / name).chmod(0o644)
            Path(tmp).chmod(0o755)
        conf = Path(tmp) / "nginx.conf"
        conf.write_text(
            textwrap.dedent(
                f"""\
                worker_processes 1;
                daemon off;
                error_log {tmp}/error.log warn;
                pid {tmp}/nginx.pid;
                events {{ worker_connections 4096; }}
                http {{
                    access_log off;
                    client_body_temp_path {tmp}/body;
                    proxy_temp_path {tmp}/proxy;
                    fastcgi_temp_path {tmp}/fastcgi;
                    uwsgi_temp_path {tmp}/uwsgi;
                    scgi_temp_path {tmp}/scgi;
                """
            )
            + textwrap.indent(
                textwrap.dedent(server).replace("{port}", str(port)).replace("{root}", tmp),
                "    ",
            )
            + "}\n"
        )
        process = subprocess.Popen(
            [nginx, "-c", str(conf), "-p", tmp],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        base_url = f"http://127.0.0.1:{port}"
        try:
            wait_until_answering(f"{base_url}{ready_path}", process)
            yield Served(base_url, process.pid)
        finally:
            process.terminate()
            process.wait(timeout=10)


_LATENCY_LINE = re.compile(r"^\s*(\d+(?:\.\d+)?)%\s+(\d+(?:\.\d+)?)(us|ms|s)\s*$")
_UNIT_TO_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def parse_wrk(output: str) -> WrkResult:
    """Parse `wrk --latency` output."""
    percentiles: dict[str, float] = {}
    for line in output.splitlines():
        match = _LATENCY_LINE.match(line)
        if match:
            percentiles[match.group(1)] = float(match.group(2)) * _UNIT_TO_MS[match.group(3)]
    rps = re.search(r"Requests/sec:\s+([\d.]+)", output)
    total = re.search(r"(\d+) requests in", output)
    errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    if rps is None or total is None or "50" not in percentiles or "99" not in percentiles:
        raise BenchError(f"could not parse wrk output:\n{output}")
    connect, read, write, timeout = (int(g) for g in errors.groups()) if errors else (0, 0, 0, 0)
    return WrkResult(
        requests_per_s=float(rps.group(1)),
        p50_ms=percentiles["50"],
        p99_ms=percentiles["99"],
        requests=int(total.group(1)),
        connect_errors=connect,
        read_errors=read,
        write_errors=write,
        timeouts=timeout,
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
    )


def wrk(
    url: str,
    *,
    connections: int,
    duration_s: int,
    threads: int = 2,
    timeout_s: int = 10,
    method: str = "GET",
    body: bytes | None = None,
    headers: Mapping[str, str] | None = None,
) -> WrkResult:
    """Run wrk against `url` and return its parsed result."""
    binary = require_tool("wrk", "wrk")
    raise_open_files_limit()
    command = [
        binary, "--latency", f"-t{min(threads, connections)}", f"-c{connections}",
        f"-d{duration_s}s", f"--timeout={timeout_s}s",
    ]  # fmt: skip
    for name, value in (headers or {}).items():
        command += ["-H", f"{name}: {value}"]
    with tempfile.TemporaryDirectory(prefix="tessera-wrk-") as tmp:
        if method != "GET" or body is not None:
            script = Path(tmp) / "request.lua"
            body_literal = (body or b"").decode().replace("\\", "\\\\").replace('"', '\\"')
            script.write_text(f'wrk.method = "{method}"\nwrk.body = "{body_literal}"\n')
            command += ["-s", str(script)]
        command.append(url)
        completed = subprocess.run(command, capture_output=True, text=True, check=False)
    if completed.returncode != 0:
        raise BenchError(f"wrk failed ({completed.returncode}): {completed.stderr.strip()}")
    return parse_wrk(completed.stdout)


def wrk_with_cpu(
    pid: int,
    url: str,
    *,
    connections: int,
    duration_s: int,
    headers: Mapping[str, str] | None = None,
) -> CpuRound:
    """`wrk` against `url`, with the CPU time of process `pid` and its children meanwhile."""
    before = tree_cpu_seconds(pid)
    result = wrk(url, connections=connections, duration_s=duration_s, headers=headers)
    return CpuRound(result, tree_cpu_seconds(pid) - before)


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def machine_summary() -> str:
    """One line naming what the numbers were measured on."""
    cpu = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return f"{os.cpu_count()} cores ({cpu}), Python {sys.version.split()[0]}"


def callgrind_command(command: Sequence[str], out_file: Path) -> list[str]:
    """`command` under valgrind's callgrind, counting nothing until `wrk_with_instructions`
    switches it on (start-up and warm-up stay out of the count)."""
    valgrind = require_tool("valgrind", "valgrind")
    return [
        valgrind, "--tool=callgrind", "--instr-atstart=no",
        f"--callgrind-out-file={out_file}", *command,
    ]  # fmt: skip


def wrk_with_instructions(
    pid: int,
    out_file: Path,
    url: str,
    *,
    connections: int,
    duration_s: int,
    headers: Mapping[str, str] | None = None,
) -> tuple[WrkResult, float]:
    """A wrk round against `pid` (started by `callgrind_command`), and the user-space
    instructions it executed per request during the round: a count that, unlike CPU
    time, does not move with what else the machine is doing."""
    with _counting(pid):
        result = wrk(url, connections=connections, duration_s=duration_s, headers=headers)
    return result, _dumped_instructions(out_file) / max(result.requests, 1)


@contextlib.contextmanager
def _counting(pid: int) -> Iterator[None]:
    """Callgrind counts `pid`'s instructions during the block, then dumps them."""
    control = require_tool("callgrind_control", "valgrind")
    subprocess.run([control, "--instr=on", str(pid)], check=True, capture_output=True)
    try:
        yield
    finally:
        subprocess.run([control, "--instr=off", str(pid)], check=True, capture_output=True)
        # A dump writes the counts so far to `<out_file>.<n>` and zeroes them.
        subprocess.run([control, "--dump", str(pid)], check=True, capture_output=True)


def counted_instructions(
    command: Sequence[str],
    env: Mapping[str, str],
    port: int,
    path: str,
    *,
    connections: int,
    duration_s: int,
    headers: Mapping[str, str] | None = None,
) -> tuple[WrkResult, float]:
    """Serve `command` (listening on `port`) under callgrind for one wrk round on
    `path`: the round and the instructions per request of the request path, that is
    with the process's idle instructions per second subtracted."""
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory(prefix="tessera-callgrind-") as tmp:
        out_file = Path(tmp) / "callgrind.out"
        with service_process(
            callgrind_command(command, out_file),
            env,
            ready_urls=[f"{url}/readyz"],
            # Everything runs tens of times slower under valgrind, start-up too.
            ready_timeout_s=300,
            stop_timeout_s=60,
        ) as process:
            wrk(url + path, connections=connections, duration_s=3, headers=headers)
            idle_per_s = idle_instructions_per_s(process.pid, out_file)
            result, per_request = wrk_with_instructions(
                process.pid,
                out_file,
                url + path,
                connections=connections,
                duration_s=duration_s,
                headers=headers,
            )
    return result, per_request - idle_per_s * duration_s / max(result.requests, 1)


def idle_instructions_per_s(pid: int, out_file: Path, seconds: float = 5.0) -> float:
    """The user-space instructions per second `pid` (started by `callgrind_command`)
    executes with no request to serve: its timers and background tasks. Under
    callgrind a process serves few requests a second, so this share of a round's
    count is far larger per request than it is at full speed; subtract it to get
    the request path's own cost."""
    with _counting(pid):
        time.sleep(seconds)
    return _dumped_instructions(out_file) / seconds


def _dumped_instructions(out_file: Path) -> int:
    """The instructions in the dumps so far, which are then removed (the next count starts at 0)."""
    instructions = 0
    for dump in out_file.parent.glob(f"{out_file.name}.*"):
        for line in dump.read_text().splitlines():
            if line.startswith("totals:"):
                instructions += int(line.split()[1])
        dump.unlink()
    return instructions
