"""Child processes that die with us: servers and services started by tessera-stack.

Three layers make sure nothing we start outlives us:

- `stop_process` / the context managers of the servers stop them in order;
- an `atexit` hook stops whatever is still running when Python exits normally
  (including after an unhandled KeyboardInterrupt);
- each child gets a parent-death signal (`setpriv --pdeathsig`), so the kernel
  signals it even when we are killed with SIGKILL and no Python code runs.

Children run in their own session (process group), so a Ctrl-C typed in the
terminal reaches only us and we stop them in order (services before the
databases they use) instead of everything dying at once.

The parent-death signal is tied to the *thread* that started the child, so
start servers from a long-lived thread (the main thread in the CLI and in pytest).
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import importlib.metadata
import os
import pwd
import shutil
import signal
import socket
import stat
import subprocess
import threading
import time
from collections.abc import Coroutine, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, ClassVar, Self, TypeVar

T = TypeVar("T")

UNPRIVILEGED_USER = "nobody"


class ServerError(RuntimeError):
    """An embedded server could not be started or stopped."""


@dataclass(frozen=True, slots=True)
class RunAs:
    """An unprivileged account to run a child as (PostgreSQL refuses to run as root)."""

    name: str
    uid: int
    gid: int


def unprivileged_account() -> RunAs | None:
    """The account PostgreSQL must run as: `nobody` when we are root, else None (ourselves)."""
    if os.geteuid() != 0:
        return None
    try:
        entry = pwd.getpwnam(UNPRIVILEGED_USER)
    except KeyError as e:
        raise ServerError(
            f"running as root, but there is no {UNPRIVILEGED_USER!r} account to run PostgreSQL as"
        ) from e
    return RunAs(entry.pw_name, entry.pw_uid, entry.pw_gid)


def _can_search(mode: os.stat_result, account: RunAs) -> bool:
    if mode.st_uid == account.uid:
        return bool(mode.st_mode & stat.S_IXUSR)
    if mode.st_gid == account.gid:
        return bool(mode.st_mode & stat.S_IXGRP)
    return bool(mode.st_mode & stat.S_IXOTH)


def grant_traversal(path: Path, account: RunAs) -> list[Path]:
    """Let `account` reach `path` by adding only the search bit (o+x) where it is missing.

    o+x lets the account walk through a directory to a name it already knows; it
    does not let it list the directory or read anything in it. Only the
    directories on the way to `path` that block the account are changed, and
    they are returned so the caller can say so.
    """
    changed: list[Path] = []
    for directory in reversed([path, *path.parents]):
        if not directory.is_dir():
            continue
        info = directory.stat()
        if not _can_search(info, account):
            directory.chmod(stat.S_IMODE(info.st_mode) | stat.S_IXOTH)
            changed.append(directory)
    return changed


class Server:
    """A server that `with` starts and stops: the embedded ones and the external ones."""

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


class ExternalServer(Server):
    """A server someone else runs: start and stop do nothing."""

    def start(self) -> None:
        """Nothing to do: it is already running."""

    def stop(self) -> None:
        """Nothing to do: it is not ours to stop."""


class EmbeddedServer(Server):
    """A server binary this package runs: its port, its log, whether it runs, stop, and `with`.

    Subclasses launch it (`_launch()` sets `_process` and, once known, `_port`).
    """

    description: ClassVar[str] = "server"
    """How errors name it ("the embedded nats-server")."""
    stop_timeout_s: ClassVar[float] = 10.0

    def __init__(self, port: int | None, log_file: Path) -> None:
        self._port = port
        self.log_file = log_file
        """Where the server writes its output."""
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def port(self) -> int:
        if self._port is None:
            raise ServerError(f"{self.description} has no port before its first start")
        return self._port

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> None:
        """Start it unless it is running; return once it serves."""
        if not self.running:
            self._launch()

    def _launch(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        if self._process is not None:
            stop_process(self._process, timeout_s=self.stop_timeout_s)
            self._process = None


def installed_executable(distribution: str, name: str, *, hint: str) -> Path:
    """Executable `name` as the wheel `distribution` installed it, else the one on PATH.

    The wheel's own comes first: a different version elsewhere on PATH is not the
    one the lock file pins.

    Raises:
        FileNotFoundError: there is neither; the message names the wheel, then `hint`.
    """
    with contextlib.suppress(importlib.metadata.PackageNotFoundError):
        for file in importlib.metadata.distribution(distribution).files or []:
            if file.name == name:
                path = Path(str(file.locate())).resolve()
                if path.exists():
                    return path
    found = shutil.which(name)
    if found is None:
        raise FileNotFoundError(f"{name} not found: it comes with the {distribution} wheel; {hint}")
    return Path(found)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago (callers retry if it is taken meanwhile)."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


# Children started by `spawn` and not yet stopped, with their graceful stop signal.
_running: dict[int, tuple[subprocess.Popen[bytes], signal.Signals]] = {}
_running_lock = threading.Lock()


def spawn(
    command: Sequence[str],
    *,
    stop_signal: signal.Signals = signal.SIGTERM,
    run_as: RunAs | None = None,
    env: Mapping[str, str] | None = None,
    stdout: IO[bytes] | int | None = None,
    stderr: IO[bytes] | int | None = None,
    cwd: Path | None = None,
) -> subprocess.Popen[bytes]:
    """Start `command` in its own process group; it gets `stop_signal` if we die.

    Args:
        command: program and arguments.
        stop_signal: the signal that stops it gracefully; also its parent-death signal.
        run_as: drop to this account before exec (we must be root then).
        env: its whole environment (default: ours).
        stdout: where its stdout goes (as for `subprocess.Popen`).
        stderr: where its stderr goes.
        cwd: its working directory.

    Returns:
        The running process, registered for the atexit clean-up until it is stopped.
    """
    argv = list(command)
    setpriv = shutil.which("setpriv")
    if setpriv is not None:
        # setpriv applies the death signal after any uid change (a uid change
        # would clear it), then execs: the child keeps our Popen's pid.
        prefix = [setpriv, f"--pdeathsig={stop_signal.name.removeprefix('SIG')}"]
        if run_as is not None:
            prefix += [f"--reuid={run_as.uid}", f"--regid={run_as.gid}", "--clear-groups"]
        argv = [*prefix, "--", *argv]
    # Without setpriv (not Debian/Ubuntu/Fedora), Popen drops privileges itself and
    # only the atexit hook and our signal handlers stop the child.
    privileges: dict[str, Any] = {}
    if run_as is not None and setpriv is None:
        privileges = {"user": run_as.uid, "group": run_as.gid, "extra_groups": []}
    process = subprocess.Popen(
        argv,
        env=dict(env) if env is not None else None,
        stdin=subprocess.DEVNULL,
        stdout=stdout,
        stderr=stderr,
        cwd=cwd,
        start_new_session=True,
        **privileges,
    )
    with _running_lock:
        _running[process.pid] = (process, stop_signal)
    if setpriv is not None:
        _wait_for_exec(process.pid, os.path.realpath(setpriv))
    return process


def _wait_for_exec(pid: int, wrapper: str, timeout_s: float = 2.0) -> None:
    # Popen returns once setpriv runs, before it has set the death signal: if we
    # died in between, the child would live on. It is set once setpriv has exec'd
    # the real program, which takes about a millisecond.
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if os.readlink(f"/proc/{pid}/exe") != wrapper:
                return
        except OSError:
            return  # exited already, or no /proc to look at
        time.sleep(0.0005)


def stop_process(process: subprocess.Popen[bytes], *, timeout_s: float = 10.0) -> int:
    """Stop one child (see `stop_processes`) and return its exit status."""
    stop_processes([process], timeout_s=timeout_s)
    return process.returncode


def stop_processes(
    processes: Sequence[subprocess.Popen[bytes]], *, timeout_s: float = 10.0
) -> None:
    """Send each its graceful stop signal, wait up to `timeout_s`, then SIGKILL the rest.

    All are signalled before any is waited for, so they shut down in parallel.
    Each is signalled once: a second SIGTERM makes uvicorn skip its graceful shutdown.
    """
    for process in processes:
        with _running_lock:
            _, stop_signal = _running.pop(process.pid, (process, signal.SIGTERM))
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(stop_signal)
    deadline = time.monotonic() + timeout_s
    for process in processes:
        try:
            process.wait(timeout=max(deadline - time.monotonic(), 0.0))
        except subprocess.TimeoutExpired:
            # The group holds its children too (PostgreSQL backends, uvicorn workers).
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def running_children() -> list[subprocess.Popen[bytes]]:
    """Children started by `spawn` that were not stopped yet, oldest first."""
    with _running_lock:
        return [process for process, _ in _running.values()]


@atexit.register
def _stop_all() -> None:
    # Newest first: services started after the servers they depend on.
    stop_processes(list(reversed(running_children())), timeout_s=5.0)


def run_sync(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run `coroutine` to completion from synchronous code, even inside a running loop.

    It runs in a short-lived thread with its own loop, so it neither needs nor
    disturbs the caller's event loop (pytest-asyncio's, when called from a fixture).
    """
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="tessera-sync") as pool:
        return pool.submit(asyncio.run, coroutine).result()


def tail(path: Path, lines: int = 20) -> str:
    """The last `lines` lines of a log file ("" when it does not exist)."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return ""
    return "\n".join(text.splitlines()[-lines:])
