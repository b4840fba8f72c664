"""Helpers of the infrastructure tests (the web tests have their own conftest)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

ProcessFinder = Callable[[str], list[str]]


def processes_mentioning(text: str) -> list[str]:
    """Command lines of live processes (not zombies) that contain `text`."""
    found: list[str] = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue
        if state != "Z" and text in cmdline:
            found.append(f"{proc.name}: {cmdline.strip()}")
    return found


@pytest.fixture
def find_processes() -> ProcessFinder:
    return processes_mentioning


def wait_until_gone(text: str, timeout_s: float = 10.0) -> list[str]:
    """Poll until no live process mentions `text`; return what is left after the timeout."""
    deadline = time.monotonic() + timeout_s
    left = processes_mentioning(text)
    while left and time.monotonic() < deadline:
        time.sleep(0.05)
        left = processes_mentioning(text)
    return left


@pytest.fixture
def wait_gone() -> Callable[[str, float], list[str]]:
    return wait_until_gone


_TIME_WAIT = "06"  # the state column of /proc/net/tcp


def sockets_in_time_wait(port: int) -> int:
    """How many TCP sockets bound to 127.0.0.1:`port` are in TIME_WAIT.

    Those are left by connections a server on that port closed first.
    """
    local = f"0100007F:{port:04X}"
    rows = [row.split() for row in Path("/proc/net/tcp").read_text().splitlines()[1:]]
    return sum(1 for row in rows if row[1] == local and row[3] == _TIME_WAIT)


@pytest.fixture
def time_waits() -> Callable[[int], int]:
    return sockets_in_time_wait


@pytest.fixture
def reachable_tmp() -> Iterator[Path]:
    """A temporary directory `nobody` can reach (pytest's own tmp_path is private: 0700).

    Embedded PostgreSQL runs as `nobody` when the tests run as root.
    """
    path = Path(tempfile.mkdtemp(prefix="tessera-stack-test-"))
    path.chmod(0o711)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


PytestRunner = Callable[[str, dict[str, str]], subprocess.CompletedProcess[str]]


@pytest.fixture
def run_inner_pytest(tmp_path: Path) -> PytestRunner:
    """Run a test file's source in a separate pytest session with our plugin and `env` added."""

    def run(source: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
        test_file = tmp_path / "test_inner.py"
        test_file.write_text(source)
        command = [
            sys.executable, "-m", "pytest", "-p", "tessera_stack.testing",
            "-p", "no:cacheprovider", "-q", "-W", "error",
            "-o", "asyncio_default_fixture_loop_scope=function",
            str(test_file),
        ]  # fmt: skip
        return subprocess.run(
            command,
            cwd=tmp_path,
            env={**os.environ, **env},
            capture_output=True,
            text=True,
            timeout=120,
        )

    return run
