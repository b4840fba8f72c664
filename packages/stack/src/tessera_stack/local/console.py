"""Status lines and service logs, written whole: several threads print at once."""

from __future__ import annotations

import sys
import threading

_lock = threading.Lock()


def say(line: str) -> None:
    """A status or log line on stdout."""
    with _lock:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


def warn(line: str) -> None:
    """A warning or error on stderr."""
    with _lock:
        sys.stderr.write(line + "\n")
        sys.stderr.flush()
