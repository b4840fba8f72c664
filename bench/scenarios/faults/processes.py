"""Processes found and waited on through /proc: those the scenario holds no handle of.

`tessera up` starts the services, and the embedded servers keep their own pids.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from bench.harness import BenchError


def pids_matching(predicate: Callable[[list[str]], bool]) -> list[int]:
    """Processes whose command line satisfies `predicate` (found through /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            raw = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        args = [part.decode(errors="replace") for part in raw.split(b"\0") if part]
        if args and predicate(args):
            found.append(int(entry.name))
    return found


def is_alive(pid: int) -> bool:
    """Whether `pid` runs; a zombie (exited, not yet reaped by its parent) does not."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def wait_gone(pid: int, timeout_s: float = 10.0) -> None:
    """Return once `pid` has exited; raise BenchError after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while is_alive(pid):
        if time.monotonic() > deadline:
            raise BenchError(f"process {pid} did not exit within {timeout_s} s")
        time.sleep(0.02)
