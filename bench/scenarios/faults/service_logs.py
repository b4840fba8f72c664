"""What `tessera up`'s output says: the services' own 5xx and unhandled errors, its restarts."""

from __future__ import annotations

import contextlib
import json
from datetime import datetime
from pathlib import Path

from bench.scenarios.faults.observations import is_unacceptable_5xx


def service_5xx(log_file: Path) -> list[tuple[float, str]]:
    """(Unix time, what) of each answer with a 5xx other than 502/503/504 in the services' logs.

    The gateway turns an upstream 500 into a 502, so the client alone would not see
    the catalog's 500: each service's JSON access lines (in `tessera up`'s output,
    behind `<name> | `) tell. Unhandled errors are listed by exception too.
    """
    found: list[tuple[float, str]] = []
    for line in log_file.read_text(errors="replace").splitlines():
        name, bar, text = line.partition(" | ")
        if not bar or not text.startswith("{"):
            continue
        with contextlib.suppress(ValueError, TypeError):
            record = json.loads(text)
            at = datetime.fromisoformat(record["time"]).timestamp()
            status = record.get("status")
            if record.get("logger") == "tessera.access" and isinstance(status, int):
                if is_unacceptable_5xx(status):
                    route = f"{record.get('method')} {record.get('route')}"
                    found.append((at, f"{name.strip()} {route} {status}"))
            elif record.get("level") == "ERROR" and "unhandled" in str(record.get("message")):
                found.append((at, f"{name.strip()}: {record.get('message')}"))
    return found


def supervisor_lines(log_file: Path) -> list[str]:
    """What `tessera up` itself said about each exit and restart (not the services' logs)."""
    return [
        line.strip()
        for line in log_file.read_text(errors="replace").splitlines()
        if " exited with status " in line or " is ready again after " in line
    ]
