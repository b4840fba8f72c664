"""`tessera up` end to end: a subprocess with embedded servers and the three real services."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO

import asyncpg
import httpx
from tessera_stack.process import free_port
from tessera_stack.testing import process_state

READY_LINE = "Press Ctrl-C to stop."
SERVICES = ("gateway", "catalog", "inference")


class Output:
    """Lines of a stream, collected by a thread so the child never blocks on a full pipe."""

    def __init__(self, stream: object) -> None:
        self.lines: list[str] = []
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def _read(self, stream: object) -> None:
        assert hasattr(stream, "readline")
        for line in iter(stream.readline, ""):
            self.lines.append(line.rstrip("\n"))

    @property
    def text(self) -> str:
        return "\n".join(self.lines)

    def join(self) -> None:
        self._thread.join(timeout=5)


def _up_command(data_dir: Path, ports: dict[str, int]) -> list[str]:
    return [
        sys.executable, "-m", "tessera_stack.cli", "up", "--data-dir", str(data_dir),
        "--gateway-port", str(ports["gateway"]),
        "--catalog-port", str(ports["catalog"]),
        "--inference-port", str(ports["inference"]),
    ]  # fmt: skip


_NOT_INHERITED = (
    # Force the embedded servers, whatever the developer's shell points at...
    "DATABASE_URL",
    "NATS_URL",
    # ...and spans kept on disk rather than sent to the shell's collector.
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
)


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in _NOT_INHERITED}


def _start_up(
    data_dir: Path, ports: dict[str, int], *, stderr: int
) -> tuple[subprocess.Popen[str], IO[str]]:
    """`tessera up` on these ports and its stdout (`stderr` a pipe too, or merged into it)."""
    up = subprocess.Popen(
        _up_command(data_dir, ports), env=_env(), stdout=subprocess.PIPE, stderr=stderr, text=True
    )
    assert up.stdout is not None
    return up, up.stdout


def _free_ports() -> dict[str, int]:
    ports: dict[str, int] = {}
    while len(set(ports.values())) < 3:
        ports = {name: free_port() for name in SERVICES}
    return ports


def service_pids(parent: int) -> dict[str, int]:
    """The live service processes `tessera up` (pid `parent`) runs, by service name."""
    found: dict[str, int] = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue
        state, ppid = fields[0], int(fields[1])
        for name in SERVICES:
            if ppid == parent and state != "Z" and f"tessera_{name}" in cmdline:
                found[name] = int(proc.name)
    return found


def _alive(pid: int) -> bool:
    return process_state(pid) not in (None, "Z")


def wait_exited(pids: Iterable[int], timeout_s: float) -> list[int]:
    """Poll until none of `pids` is alive; return those still alive after the timeout."""
    deadline = time.monotonic() + timeout_s
    left = [pid for pid in pids if _alive(pid)]
    while left and time.monotonic() < deadline:
        time.sleep(0.05)
        left = [pid for pid in left if _alive(pid)]
    return left


async def test_up_runs_everything_and_ctrl_c_leaves_nothing_behind(
    reachable_tmp: Path,
    find_processes: Callable[[str], list[str]],
    wait_gone: Callable[[str, float], list[str]],
) -> None:
    data_dir = reachable_tmp / "data"
    ports = _free_ports()
    up, stdout = _start_up(data_dir, ports, stderr=subprocess.PIPE)
    assert up.stderr is not None
    out, err = Output(stdout), Output(up.stderr)
    try:
        deadline = time.monotonic() + 120
        while READY_LINE not in out.lines and up.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert READY_LINE in out.lines, f"not up:\n{out.text}\n{err.text}"

        # Status lines name where each server is and where its data lives.
        # The database URL printed is the catalog's: the data is in database `tessera`.
        assert re.search(r"^postgres: embedded at postgresql://tessera@127\.0\.0\.1:\d+/tessera \(data .*data/postgres\)$", out.text, re.M)  # fmt: skip
        assert re.search(r"^nats: embedded at nats://127\.0\.0\.1:\d+ \(store .*data/nats\)$", out.text, re.M)  # fmt: skip
        assert "migrations: applied " in out.text
        assert re.search(r"^demo data: loaded \d+ rows$", out.text, re.M)
        # The URL list starts with the gateway's docs.
        urls = out.lines[out.lines.index("tessera is up:") + 1 :]
        assert urls[0].split()[:3] == ["API", "docs", f"http://127.0.0.1:{ports['gateway']}/docs"]
        assert re.search(r"^catalog   \| ", out.text, re.M)  # service logs, prefixed
        # No collector configured: the services keep their spans in the data dir.
        traces = data_dir / "traces"
        hint = f"  traces     uv run tessera trace --last --data-dir {data_dir}   (spans kept in {traces})"
        assert hint in out.lines
        assert traces.is_dir()

        async with httpx.AsyncClient() as client:
            for port in ports.values():
                response = await client.get(f"http://127.0.0.1:{port}/readyz")
                assert response.status_code == 200, response.text
            assert (
                await client.get(f"http://127.0.0.1:{ports['gateway']}/docs")
            ).status_code == 200

            # The local API key is printed, kept in the data dir, and accepted.
            key = (data_dir / "api-key").read_text().strip()
            assert f"API key    {key}" in out.text
            products = f"http://127.0.0.1:{ports['gateway']}/v1/products?limit=1"
            accepted = await client.get(products, headers={"Authorization": f"Bearer {key}"})
            assert accepted.status_code == 200, accepted.text
            wrong = await client.get(products, headers={"Authorization": f"Bearer {key}x"})
            assert wrong.status_code == 401

        # One JSON access line per request, from the service, not uvicorn's own.
        deadline = time.monotonic() + 10
        while not _access_lines(out.text, "/v1/products") and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _access_lines(out.text, "/v1/products")
        assert "uvicorn.access" not in out.text

        # The demo data is in the database at the URL printed.
        match = re.search(r"postgres: embedded at (postgresql://\S+)", out.text)
        assert match is not None
        connection = await asyncpg.connect(match.group(1))
        try:
            assert await connection.fetchval("SELECT count(*) FROM products") > 0
        finally:
            await connection.close()

        # A second `up` on the same data dir refuses, without touching the first.
        second = subprocess.run(
            _up_command(data_dir, {name: free_port() for name in ports}),
            env=_env(),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert second.returncode == 1
        assert "is already running with data dir" in second.stderr
        assert f"pid {up.pid}" in second.stderr
        assert up.poll() is None

        assert find_processes(str(data_dir / "postgres"))
        services = service_pids(up.pid)
        assert sorted(services) == sorted(ports)
        for pid in services.values():
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
            assert f"TESSERA_TRACE_DIR={traces}".encode() in environ
        up.send_signal(signal.SIGINT)
        assert up.wait(timeout=60) == 0
        out.join()
        assert out.lines[-1] == "stopped"
    finally:
        if up.poll() is None:
            up.kill()
            up.wait()
        out.join()
        err.join()
        stdout.close()
        up.stderr.close()

    assert wait_gone(str(data_dir), 1.0) == []
    assert wait_exited(services.values(), 1.0) == []


# A restart waits 1 s (the first delay), then the service has --ready-timeout (60 s).
RESTARTED_WITHIN_S = 1 + 60


def _access_lines(text: str, route: str) -> list[dict[str, object]]:
    """The JSON access lines (logger `tessera.access`) for `route` in `text`, whose
    service lines are prefixed with the service's name (`catalog   | {...}`)."""
    lines = []
    for line in text.splitlines():
        _, bar, logged = line.partition("| ")
        if not bar or not logged.startswith("{"):
            continue
        try:
            record = json.loads(logged)
        except ValueError:
            continue
        if record.get("logger") == "tessera.access" and record.get("route") == route:
            lines.append(record)
    return lines


@contextlib.contextmanager
def running_up(
    data_dir: Path, ports: dict[str, int]
) -> Iterator[tuple[subprocess.Popen[str], Output]]:
    """`tessera up` until it printed READY_LINE; killed at the end if it is still running."""
    up, stdout = _start_up(data_dir, ports, stderr=subprocess.STDOUT)
    out = Output(stdout)
    try:
        wait_for_line(up, out, re.escape(READY_LINE), 120)
        yield up, out
    finally:
        if up.poll() is None:
            up.kill()
            up.wait()
        out.join()
        stdout.close()


def wait_for_line(up: subprocess.Popen[str], out: Output, pattern: str, timeout_s: float) -> str:
    """The first line of `up`'s output that matches `pattern` whole, waiting for it."""
    deadline = time.monotonic() + timeout_s
    while True:
        found = next((line for line in list(out.lines) if re.fullmatch(pattern, line)), None)
        if found is not None:
            return found
        assert up.poll() is None, f"tessera up exited with {up.returncode}:\n{out.text}"
        assert time.monotonic() < deadline, f"no line {pattern!r} within {timeout_s} s:\n{out.text}"
        time.sleep(0.05)


class Poller:
    """Requests each URL in turn from a thread, until the block ends; keeps every answer."""

    def __init__(self, urls: dict[str, str], headers: dict[str, str]) -> None:
        self.answers: dict[str, list[httpx.Response | str]] = {name: [] for name in urls}
        self._urls = urls
        self._headers = headers
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Poller:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def statuses(self, name: str) -> set[int | str]:
        return {a.status_code if isinstance(a, httpx.Response) else a for a in self.answers[name]}

    def _run(self) -> None:
        with httpx.Client(timeout=10.0, headers=self._headers) as client:
            while not self._stop.wait(0.05):
                for name, url in self._urls.items():
                    try:
                        self.answers[name].append(client.get(url))
                    except httpx.HTTPError as e:
                        self.answers[name].append(type(e).__name__)


def test_a_service_that_dies_is_restarted_alone_while_the_others_keep_serving(
    reachable_tmp: Path,
    wait_gone: Callable[[str, float], list[str]],
    time_waits: Callable[[int], int],
) -> None:
    data_dir = reachable_tmp / "data"
    ports = _free_ports()
    gateway, catalog, inference = (f"http://127.0.0.1:{ports[name]}" for name in SERVICES)
    with running_up(data_dir, ports) as (up, out):
        auth = {"Authorization": f"Bearer {(data_dir / 'api-key').read_text().strip()}"}
        with httpx.Client(timeout=10.0, headers=auth) as client:
            listed = client.get(f"{gateway}/v1/products?limit=1")
            product = listed.json()["items"][0]["id"]
        first = service_pids(up.pid)

        # kill -9 of inference: only it is restarted; products are served meanwhile,
        # enriched ones without their prediction.
        urls = {
            "products": f"{gateway}/v1/products?limit=1",
            "enriched": f"{gateway}/v1/products/{product}/enriched",
            "catalog": f"{catalog}/readyz",
        }
        with Poller(urls, auth) as during_inference:
            os.kill(first["inference"], signal.SIGKILL)
            wait_for_line(up, out, r"inference is ready again after \d+\.\d s \(restart 1\)", RESTARTED_WITHIN_S)  # fmt: skip
        assert "inference exited with status -9; restarting in 1 s (restart 1)" in out.lines
        assert during_inference.statuses("products") == {200}
        assert during_inference.statuses("catalog") == {200}
        assert during_inference.statuses("enriched") == {200}
        enriched = during_inference.answers["enriched"]
        degraded = [a.json()["degraded"] for a in enriched if isinstance(a, httpx.Response)]
        assert ["prediction"] in degraded
        assert httpx.get(f"{inference}/readyz").status_code == 200
        second = service_pids(up.pid)
        assert second["inference"] != first["inference"]
        assert (second["gateway"], second["catalog"]) == (first["gateway"], first["catalog"])

        # SIGTERM to the catalog likewise: the gateway and inference go on.
        with Poller(
            {"gateway": f"{gateway}/healthz", "inference": f"{inference}/readyz"}, {}
        ) as during_catalog:
            os.kill(first["catalog"], signal.SIGTERM)
            wait_for_line(up, out, r"catalog is ready again after \d+\.\d s \(restart 1\)", RESTARTED_WITHIN_S)  # fmt: skip
        # uvicorn ends with the signal it finished on, after its graceful shutdown.
        wait_for_line(up, out, r"catalog exited with status (0|-15); restarting in 1 s \(restart 1\)", 0)  # fmt: skip
        assert during_catalog.statuses("gateway") == {200}
        assert during_catalog.statuses("inference") == {200}
        third = service_pids(up.pid)
        assert third["catalog"] != first["catalog"]
        assert (third["gateway"], third["inference"]) == (first["gateway"], second["inference"])
        assert httpx.get(f"{catalog}/readyz").status_code == 200

        # Ctrl-C still stops everything, restarted services included.
        up.send_signal(signal.SIGINT)
        assert up.wait(timeout=60) == 0
        out.join()
        assert out.lines[-1] == "stopped"
    assert wait_gone(str(data_dir), 1.0) == []
    assert wait_exited({*first.values(), *third.values()}, 1.0) == []

    # The catalog closed the gateway's connections first, so its port has sockets in
    # TIME_WAIT for a minute: `tessera up` starts again at once all the same.
    assert time_waits(ports["catalog"]) >= 1
    with running_up(data_dir, ports) as (again, _):
        again.send_signal(signal.SIGINT)
        assert again.wait(timeout=60) == 0
