"""What the suite does: the faults, in the order it injects them, and how long each lasts."""

from __future__ import annotations

import signal
from dataclasses import dataclass


@dataclass(frozen=True)
class Timing:
    """One run's durations: `--quick` shortens outages and pauses, not the checks."""

    steady_s: float
    """Load before the first fault."""
    down_s: float
    """How long a killed server stays down."""
    settle_s: float
    """Load after a recovery, before the next fault."""


FULL = Timing(steady_s=8.0, down_s=5.0, settle_s=3.0)
QUICK = Timing(steady_s=2.0, down_s=2.0, settle_s=1.0)


@dataclass
class Fault:
    name: str
    how: str
    service: str | None = None
    """The service the fault hits (it must be restarted), or None for a server fault."""
    sig: signal.Signals | None = None


NATS_KILL = Fault("NATS", "kill -9 nats-server; start it again on the same port and store")
POSTGRES_KILL = Fault(
    "PostgreSQL", "kill -9 the postmaster; start it again on the same port and data"
)
CATALOG_KILL = Fault("catalog", "kill -9", "catalog", signal.SIGKILL)
FAULTS = (
    NATS_KILL,
    POSTGRES_KILL,
    Fault("inference", "kill -9", "inference", signal.SIGKILL),
    CATALOG_KILL,
    Fault("gateway", "SIGTERM under load", "gateway", signal.SIGTERM),
    Fault("catalog", "SIGTERM under load", "catalog", signal.SIGTERM),
    Fault("inference", "SIGTERM under load", "inference", signal.SIGTERM),
)
