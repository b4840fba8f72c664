"""The stack under test: PostgreSQL and NATS of our own, `tessera up` on top.

The servers are started here, not by `tessera up`, so that a fault can kill them
and start them again on the same port with the same data (`tessera up` restarts
services, not servers).
"""

from __future__ import annotations

import contextlib
import itertools
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import nats
from tessera_contracts import v1
from tessera_stack.nats import EmbeddedNats
from tessera_stack.postgres import EmbeddedPostgres, create_database
from tessera_stack.process import run_sync, spawn, stop_process, tail

from bench.harness import BenchError, free_port, wait_until_answering
from bench.scenarios.faults.processes import pids_matching

SERVICES = ("gateway", "catalog", "inference")


class Stack:
    """PostgreSQL, NATS and `tessera up`, with the handles the faults need."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.postgres = EmbeddedPostgres(root / "postgres")
        self.nats = EmbeddedNats(root / "nats")
        self.ports = {name: free_port() for name in SERVICES}
        self.data_dir = root / "up"
        self.log_file = root / "tessera-up.log"
        self.database_url = ""
        self._up: subprocess.Popen[bytes] | None = None

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.ports[name]}"

    def start(self) -> None:
        self.postgres.start()
        self.database_url = run_sync(create_database(self.postgres.dsn, "tessera"))
        self.nats.start()
        executable = Path(sys.executable).with_name("tessera")
        command = (
            [str(executable)]
            if executable.exists()
            else [sys.executable, "-m", "tessera_stack.cli"]
        )
        command += ["up", "--data-dir", str(self.data_dir)]
        for name, port in self.ports.items():
            command += [f"--{name}-port", str(port)]
        env = {
            **os.environ,
            "DATABASE_URL": self.database_url,
            "NATS_URL": self.nats.url,
            # What the manifests' preStop sleep does before a pod's SIGTERM: go on
            # serving (readiness already 503) while clients move away.
            **{f"{name.upper()}_SHUTDOWN_DELAY_S": "1" for name in self.ports},
        }
        with self.log_file.open("wb") as log:
            # SIGINT is Ctrl-C: what a user does to stop it.
            self._up = spawn(command, stop_signal=signal.SIGINT, env=env, stdout=log, stderr=log)
        self.wait_all_ready(timeout_s=90.0)

    def stop(self) -> None:
        if self._up is not None:
            stop_process(self._up, timeout_s=30.0)
        self.nats.stop()
        self.postgres.stop()

    @property
    def up_running(self) -> bool:
        return self._up is not None and self._up.poll() is None

    def api_key(self) -> str:
        return (self.data_dir / "api-key").read_text().strip()

    def ready(self, name: str) -> bool:
        with contextlib.suppress(httpx.HTTPError):
            return httpx.get(f"{self.url(name)}/readyz", timeout=1.0).status_code == 200
        return False

    def wait_all_ready(self, timeout_s: float) -> None:
        """Wait until every service answers /readyz; fail fast if `tessera up` exits."""
        assert self._up is not None
        deadline = time.monotonic() + timeout_s
        try:
            for name in SERVICES:
                # In tenths: the time left shows in the error message.
                remaining_s = round(max(deadline - time.monotonic(), 0.0), 1)
                wait_until_answering(f"{self.url(name)}/readyz", self._up, timeout_s=remaining_s)
        except BenchError as error:
            raise BenchError(
                f"the stack was not ready within {timeout_s:g} s ({error}); "
                f"tessera up said:\n{tail(self.log_file, 40)}"
            ) from error

    def service_pid(self, name: str) -> int | None:
        """The process serving `name` on its port (`python -m tessera_<name>` or uvicorn)."""
        module, port = f"tessera_{name}", str(self.ports[name])

        def matches(args: list[str]) -> bool:
            serves = any(a == module or a.startswith(f"{module}.app:") for a in args)
            return serves and any(
                flag == "--port" and value == port for flag, value in itertools.pairwise(args)
            )

        pids = pids_matching(matches)
        return pids[0] if pids else None

    def nats_pid(self) -> int:
        store = str(self.nats.store_dir)
        pids = pids_matching(lambda args: "nats-server" in args[0] and store in args)
        if not pids:
            raise BenchError("the nats-server process was not found in /proc")
        return pids[0]

    def postgres_pid(self) -> int:
        # The postmaster's pid is the first line of its lock file.
        return int((self.postgres.data_dir / "postmaster.pid").read_text().split()[0])

    def stream_last_sequence(self) -> int:
        async def last() -> int:
            client = await nats.connect(self.nats.url, connect_timeout=2)
            try:
                info = await client.jetstream().stream_info(v1.CATALOG_STREAM)
                return int(info.state.last_seq)
            finally:
                await client.close()

        return run_sync(last())
