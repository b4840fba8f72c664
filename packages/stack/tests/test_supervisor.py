"""The supervisor of `tessera up`, on real processes: small HTTP servers that we kill."""

from __future__ import annotations

import functools
import os
import re
import signal
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from tessera_stack.local.services import ServiceProcess, stop_services, wait_ready
from tessera_stack.local.supervisor import RestartPolicy, Supervisor
from tessera_stack.process import free_port

# Bounds for things that take a fraction of a second: far above, so never flaky.
WITHIN_S = 30.0


class Services:
    """Services made of `python -m http.server`: ready while `<dir>/readyz` exists."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.started: list[ServiceProcess] = []

    def start(self, name: str, *, broken_on_restart: bool = False) -> ServiceProcess:
        directory = self.root / name
        directory.mkdir()
        (directory / "readyz").write_text("ok")
        port = free_port()
        server = (
            f"exec {sys.executable} -m http.server {port} --bind 127.0.0.1 --directory {directory}"
        )
        if broken_on_restart:
            # Starts once; every later start fails, as a broken install would.
            marker = directory / "started-once"
            server = f"test -e {marker} && {{ echo 'cannot start: broken'; exit 3; }}; touch {marker}; {server}"  # fmt: skip
        service = ServiceProcess(name, ["sh", "-c", server], {}, f"http://127.0.0.1:{port}")
        service.start()
        self.started.append(service)
        return service


@pytest.fixture
def services(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Iterator[Services]:
    # Asks for capsys so that the lines the services print while stopping are captured too.
    made = Services(tmp_path)
    try:
        yield made
    finally:
        stop_services(made.started)


@pytest.fixture
def probe() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=1.0) as client:
        yield client


def _poll_until(supervisor: Supervisor, done: Callable[[], bool]) -> None:
    deadline = time.monotonic() + WITHIN_S
    while not done():
        assert time.monotonic() < deadline, "the supervisor did not get there"
        supervisor.poll()
        time.sleep(0.02)


class Printed:
    """What the code under test printed so far (read from capsys as it goes)."""

    def __init__(self, capsys: pytest.CaptureFixture[str]) -> None:
        self._capsys = capsys
        self._lines: list[str] = []

    @property
    def lines(self) -> list[str]:
        self._lines.extend(self._capsys.readouterr().out.splitlines())
        return self._lines

    def any(self, pattern: str) -> bool:
        """Whether a line printed so far matches the regular expression `pattern` whole."""
        return any(re.fullmatch(pattern, line) for line in self.lines)

    def starting(self, prefix: str) -> list[str]:
        return [line for line in self.lines if line.startswith(prefix)]


@pytest.fixture
def printed(capsys: pytest.CaptureFixture[str]) -> Printed:
    return Printed(capsys)


def _supervised(
    started: list[ServiceProcess], policy: RestartPolicy, probe: httpx.Client
) -> Supervisor:
    """A supervisor of `started`, once they are all ready."""
    wait_ready(started, WITHIN_S)
    return Supervisor(started, policy, probe=probe)


def _ready_again(restart: int) -> str:
    return rf"inference is ready again after \d+\.\d s \(restart {restart}\)"


class TestSupervisor:
    def test_only_the_service_that_died_is_restarted_and_the_output_says_so(
        self, services: Services, probe: httpx.Client, printed: Printed
    ) -> None:
        inference, catalog = services.start("inference"), services.start("catalog")
        first_pid, catalog_pid = inference.process.pid, catalog.process.pid
        supervisor = _supervised([inference, catalog], RestartPolicy(first_delay_s=0.2), probe)
        catalog_answers: list[int] = []

        def ready_again() -> bool:
            catalog_answers.append(probe.get(f"{catalog.base_url}/readyz").status_code)
            return printed.any(_ready_again(1))

        os.kill(first_pid, signal.SIGKILL)
        _poll_until(supervisor, ready_again)

        assert printed.starting("inference exited") == [
            "inference exited with status -9; restarting in 0.2 s (restart 1)"
        ]
        assert inference.process.pid != first_pid
        assert probe.get(f"{inference.base_url}/readyz").status_code == 200
        # The other one was not touched and answered all along.
        assert catalog.process.pid == catalog_pid
        assert set(catalog_answers) == {200}
        assert printed.starting("catalog exited") == []

    def test_the_delay_doubles_up_to_the_cap_and_resets_once_it_stayed_ready(
        self, services: Services, probe: httpx.Client, printed: Printed
    ) -> None:
        service = services.start("inference")
        policy = RestartPolicy(first_delay_s=0.05, max_delay_s=0.2, reset_after_s=1.0)
        supervisor = _supervised([service], policy, probe)

        for restart in range(1, 5):
            # Killed as soon as it is ready again: well within reset_after_s.
            os.kill(service.process.pid, signal.SIGKILL)
            _poll_until(supervisor, functools.partial(printed.any, _ready_again(restart)))
        # Ready for longer than reset_after_s: its next exit counts as a first one.
        ready_at = time.monotonic()
        _poll_until(supervisor, lambda: time.monotonic() - ready_at > 1.2)
        os.kill(service.process.pid, signal.SIGKILL)
        _poll_until(supervisor, lambda: printed.any(_ready_again(5)))

        assert printed.starting("inference exited") == [
            "inference exited with status -9; restarting in 0.05 s (restart 1)",
            "inference exited with status -9; restarting in 0.1 s (restart 2, 2 exits in a row)",
            "inference exited with status -9; restarting in 0.2 s (restart 3, 3 exits in a row)",
            "inference exited with status -9; restarting in 0.2 s (restart 4, 4 exits in a row)",
            "inference exited with status -9; restarting in 0.05 s (restart 5)",
        ]

    def test_a_crash_loop_is_retried_at_the_capped_delay_and_shown_each_time(
        self, services: Services, probe: httpx.Client, printed: Printed
    ) -> None:
        broken = services.start("inference", broken_on_restart=True)
        healthy = services.start("catalog")
        policy = RestartPolicy(first_delay_s=0.05, max_delay_s=0.1)
        supervisor = _supervised([broken, healthy], policy, probe)

        os.kill(broken.process.pid, signal.SIGTERM)
        _poll_until(supervisor, lambda: printed.any(r"inference exited .*\(restart 4, .*"))

        assert printed.starting("inference exited") == [
            "inference exited with status -15; restarting in 0.05 s (restart 1)",
            "inference exited with status 3 before it was ready; restarting in 0.1 s (restart 2, 2 exits in a row)",
            "inference exited with status 3 before it was ready; restarting in 0.1 s (restart 3, 3 exits in a row)",
            "inference exited with status 3 before it was ready; restarting in 0.1 s (restart 4, 4 exits in a row)",
        ]  # fmt: skip
        # Its own reason comes before each of those lines, with its name in front.
        assert printed.lines.count("inference | cannot start: broken") == 3
        assert probe.get(f"{healthy.base_url}/readyz").status_code == 200
        assert printed.starting("catalog exited") == []

    def test_a_restart_that_does_not_get_ready_is_reported_once_and_left_running(
        self, services: Services, probe: httpx.Client, printed: Printed
    ) -> None:
        service = services.start("inference")
        policy = RestartPolicy(first_delay_s=0.05, ready_timeout_s=0.3)
        supervisor = _supervised([service], policy, probe)

        (services.root / "inference" / "readyz").unlink()  # /readyz answers 404 from now on
        os.kill(service.process.pid, signal.SIGKILL)
        # Its last answer: 404, or none yet on a machine slow to start the server.
        reported = (
            r"inference is not ready 0\.3 s after restart 1 "
            r"\(last /readyz answer: (404 .*|no answer)\); still waiting"
        )
        _poll_until(supervisor, lambda: printed.any(reported))
        later = time.monotonic() + 0.5
        _poll_until(supervisor, lambda: time.monotonic() > later)

        assert len(printed.starting("inference is not ready")) == 1
        # Not ready is not dead: readiness alone never restarts a service.
        assert service.process.poll() is None
        assert len(printed.starting("inference exited")) == 1
