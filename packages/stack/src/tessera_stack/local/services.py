"""The three services of a local run, each a uvicorn subprocess with prefixed logs."""

from __future__ import annotations

import collections
import contextlib
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
from tessera_runtime.tracing import TRACE_DIR_VARIABLE

from tessera_stack.local.console import say
from tessera_stack.process import spawn, stop_processes

if TYPE_CHECKING:
    from tessera_gateway.domain.local_key import LocalApiKey

SERVICE_NAMES = ("gateway", "catalog", "inference")
BATCH_DELAY_VARIABLE = "OTEL_BSP_SCHEDULE_DELAY"
LOCAL_BATCH_DELAY_MS = "500"
_NAME_WIDTH = max(len(name) for name in SERVICE_NAMES)
# uvicorn stops waiting for open connections (SSE streams) after this...
GRACEFUL_SHUTDOWN_S = 5
# ...and we SIGKILL a service that is still running after this.
STOP_TIMEOUT_S = 10.0


class ServiceFailed(RuntimeError):
    """A service exited or did not become ready; the message carries its last log lines."""


@dataclass(frozen=True, slots=True)
class LocalStack:
    """Where everything of a local run is: what services are configured from."""

    data_dir: Path
    host: str
    ports: Mapping[str, int]
    """Port of each service, by name."""
    database_url: str
    nats_url: str
    trace_dir: Path | None = None
    """Where the services keep their spans; None when they export them over OTLP."""

    def url(self, name: str) -> str:
        """Base URL that reaches service `name` from this machine."""
        return f"http://{client_host(self.host)}:{self.ports[name]}"


def client_host(host: str) -> str:
    """The address to connect to for a server bound to `host`."""
    if host in ("0.0.0.0", ""):
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host


def trace_dir(data_dir: Path) -> Path:
    """Where a local run with data directory `data_dir` keeps its services' spans."""
    return data_dir / "traces"


def local_api_key(stack: LocalStack) -> LocalApiKey:
    """The local run's API key (every scope), made once and kept in the data dir."""
    # Imported here: the gateway owns its key format; only a local run needs this.
    from tessera_gateway.domain.local_key import ensure_local_api_key

    return ensure_local_api_key(stack.data_dir)


def service_environment(stack: LocalStack) -> dict[str, dict[str, str]]:
    """Environment variables of each service, by name (added to our own environment).

    Extend this to configure services further for local runs.
    """
    environments = {
        "gateway": {
            "GATEWAY_CATALOG_URL": stack.url("catalog"),
            "GATEWAY_INFERENCE_URL": stack.url("inference"),
            "GATEWAY_NATS_URL": stack.nats_url,
            "GATEWAY_API_KEYS": local_api_key(stack).env_value,
        },
        "catalog": {
            "CATALOG_DATABASE_URL": stack.database_url,
            "CATALOG_NATS_URL": stack.nats_url,
        },
        "inference": {
            "INFERENCE_NATS_URL": stack.nats_url,
        },
    }
    if stack.trace_dir is not None:
        for environment in environments.values():
            environment[TRACE_DIR_VARIABLE] = str(stack.trace_dir)
            # Spans on disk within half a second (the SDK's default is 5 s), so
            # `tessera trace --last` right after a request shows all of it.
            if BATCH_DELAY_VARIABLE not in os.environ:
                environment[BATCH_DELAY_VARIABLE] = LOCAL_BATCH_DELAY_MS
    return environments


def uvicorn_command(name: str, host: str, port: int) -> list[str]:
    """The command that serves service `name` as in production (`python -m tessera_<name>`).

    That runs uvicorn with the service's header limits and timeouts and without
    uvicorn's access log (the services log one JSON access line each); flags win
    over the service's environment variables.
    """
    return [
        sys.executable, "-m", f"tessera_{name}",
        "--host", host, "--port", str(port),
        "--graceful-shutdown-s", str(GRACEFUL_SHUTDOWN_S),
    ]  # fmt: skip


def port_in_use(host: str, port: int) -> bool:
    """Whether a service could not listen on `host:port` because something else does.

    The probe binds as uvicorn does, with SO_REUSEADDR: without it, the sockets a
    stopped server left in TIME_WAIT (for a minute after it served load) would make
    the port look busy although the next server binds it without trouble.
    """
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


class ServiceProcess:
    """One service: started in its own process group, its output prefixed with its name."""

    def __init__(
        self, name: str, command: Sequence[str], env: Mapping[str, str], base_url: str
    ) -> None:
        self.name = name
        self.base_url = base_url
        self._command = list(command)
        self._env = dict(env)
        self._recent: collections.deque[str] = collections.deque(maxlen=40)
        self._process: subprocess.Popen[bytes] | None = None
        self._pump: threading.Thread | None = None

    @property
    def process(self) -> subprocess.Popen[bytes]:
        assert self._process is not None, "not started"
        return self._process

    @property
    def started(self) -> bool:
        return self._process is not None

    def start(self) -> None:
        # Unbuffered, or a crash loses the lines that would explain it.
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **self._env}
        self._process = spawn(
            self._command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        self._pump = threading.Thread(target=self._forward, name=f"{self.name}-log", daemon=True)
        self._pump.start()

    def restart(self) -> None:
        """Start it again once it has exited, after its last log lines are out."""
        previous = self.process
        assert previous.poll() is not None, f"{self.name} is still running"
        stop_processes([previous])  # only forgets it: it has exited
        self.join_logs()
        self.start()

    def last_lines(self, count: int = 20) -> str:
        return "\n".join(list(self._recent)[-count:])

    def failure(self, reason: str) -> ServiceFailed:
        return ServiceFailed(f"{self.name} {reason}; its last log lines:\n{self.last_lines()}")

    def join_logs(self) -> None:
        """Wait (briefly) until the exited service's last lines are printed."""
        if self._pump is not None:
            self._pump.join(timeout=2.0)

    def _forward(self) -> None:
        assert self._process is not None
        assert self._process.stdout is not None
        prefix = f"{self.name:<{_NAME_WIDTH}} | "
        with self._process.stdout as output:
            for raw in output:
                line = raw.decode(errors="replace").rstrip()
                self._recent.append(line)
                say(prefix + line)


def stop_services(services: Sequence[ServiceProcess]) -> None:
    """SIGTERM all at once, wait, SIGKILL what is left, and flush their last log lines."""
    stop_processes([s.process for s in services if s.started], timeout_s=STOP_TIMEOUT_S)
    for service in services:
        service.join_logs()


def wait_ready(services: Sequence[ServiceProcess], timeout_s: float) -> None:
    """Return once every service's /readyz answers 200.

    Raises:
        ServiceFailed: one exited first, or one was not ready in time.
    """
    waiting = list(services)
    last_answer: dict[str, str] = {s.name: "no answer" for s in services}
    deadline = time.monotonic() + timeout_s
    with httpx.Client(timeout=2.0) as client:
        while waiting:
            for service in list(waiting):
                code = service.process.poll()
                if code is not None:
                    service.join_logs()
                    raise service.failure(f"exited with status {code} before it was ready")
                with contextlib.suppress(httpx.HTTPError):
                    response = client.get(f"{service.base_url}/readyz")
                    if response.status_code == 200:
                        waiting.remove(service)
                    else:
                        last_answer[service.name] = f"{response.status_code} {response.text[:300]}"
            if waiting and time.monotonic() > deadline:
                service = waiting[0]
                raise service.failure(
                    f"was not ready within {timeout_s:g} s "
                    f"(last /readyz answer: {last_answer[service.name]})"
                )
            if waiting:
                time.sleep(0.2)
