"""`tessera up` end to end: a subprocess with embedded servers and the three real services."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import asyncpg
import httpx
from tessera_stack.process import free_port

READY_LINE = "Press Ctrl-C to stop."


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


def _env() -> dict[str, str]:
    # Force the embedded servers, whatever the developer's shell points at.
    return {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "NATS_URL")}


async def test_up_runs_everything_and_ctrl_c_leaves_nothing_behind(
    reachable_tmp: Path,
    find_processes: Callable[[str], list[str]],
    wait_gone: Callable[[str, float], list[str]],
) -> None:
    data_dir = reachable_tmp / "data"
    ports: dict[str, int] = {}
    while len(set(ports.values())) < 3:
        ports = {name: free_port() for name in ("gateway", "catalog", "inference")}
    up = subprocess.Popen(
        _up_command(data_dir, ports),
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert up.stdout is not None
    assert up.stderr is not None
    out, err = Output(up.stdout), Output(up.stderr)
    try:
        deadline = time.monotonic() + 120
        while READY_LINE not in out.lines and up.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert READY_LINE in out.lines, f"not up:\n{out.text}\n{err.text}"

        # Status lines name where each server is and where its data lives.
        assert re.search(r"^postgres: embedded at postgresql://tessera@127\.0\.0\.1:\d+/postgres \(data .*data/postgres\)$", out.text, re.M)  # fmt: skip
        assert re.search(r"^nats: embedded at nats://127\.0\.0\.1:\d+ \(store .*data/nats\)$", out.text, re.M)  # fmt: skip
        assert "migrations: applied " in out.text
        assert re.search(r"^demo data: loaded \d+ rows$", out.text, re.M)
        # The URL list starts with the gateway's docs.
        urls = out.lines[out.lines.index("tessera is up:") + 1 :]
        assert urls[0].split()[:3] == ["API", "docs", f"http://127.0.0.1:{ports['gateway']}/docs"]
        assert re.search(r"^catalog   \| ", out.text, re.M)  # service logs, prefixed

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
        while '"route": "/v1/products"' not in out.text and time.monotonic() < deadline:
            time.sleep(0.1)
        assert '"logger": "tessera.access"' in out.text
        assert "uvicorn.access" not in out.text

        # The demo data is in the database the catalog was given.
        match = re.search(r"postgres: embedded at (postgresql://\S+)/postgres", out.text)
        assert match is not None
        connection = await asyncpg.connect(f"{match.group(1)}/tessera")
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
        assert find_processes(f"--port {ports['catalog']}")
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
        up.stdout.close()
        up.stderr.close()

    assert wait_gone(str(data_dir), 1.0) == []
    for port in ports.values():
        assert wait_gone(f"--port {port}", 1.0) == []
