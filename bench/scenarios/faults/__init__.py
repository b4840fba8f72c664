"""Faults under load: `tessera up` keeps every acknowledged write and event through crashes.

    uv run python -m bench.run faults [--quick]

Results go to docs/reliability.md (`--write`). The stack runs as a user runs it:
`tessera up` as a subprocess (temp --data-dir,
free ports), with PostgreSQL and NATS started by this scenario and handed to it
as DATABASE_URL and NATS_URL, so they can be killed and started again on the
same port with the same data (`tessera up` restarts services, not servers).

While a steady writer POSTs products through the gateway with the local API
key (an Idempotency-Key on each, retried with the same key after a 429, a 5xx
or a connection error, as a careful client does), a reader GETs recent
products' `/enriched` view, and an SSE reader follows `/v1/events`
(reconnecting with `Last-Event-ID`), this happens in turn:

- kill -9 NATS, leave it down, start it again (same port and store);
- kill -9 PostgreSQL (the postmaster), leave it down, start it again (crash recovery);
- kill -9 inference, then kill -9 catalog: `tessera up` must restart them;
- SIGTERM gateway, catalog and inference, one after the other, under load.

Checked and recorded (the run fails when any invariant fails):

- every write answered 201 is in the database, with the id it was answered with;
- every product has exactly one `product.created` event on stream CATALOG;
- every event of the stream since the start reaches the SSE reader exactly once;
- no 500 and no other 5xx than 502/503/504, neither at the clients nor in any
  service's access log; no request without an answer within the client timeout;
- requests in flight when a service got SIGTERM (a burst is started just before
  it) all got an answer other than 502/504;
- every service is ready again without a manual restart; how long each took.

The parts: `stack` starts the servers and `tessera up` (`processes` finds what
to kill in /proc); `workload` runs the clients and records what they saw in
`observations`; `plan` lists the faults, `injection` injects one and times the
recovery; `invariants` checks the database and the stream; `report` writes the
section, with what `service_logs` read from `tessera up`'s output.
"""

from __future__ import annotations

import contextlib
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from bench.harness import REPO_ROOT, ScenarioFailed
from bench.scenarios.faults.injection import FaultInjector, FaultResult
from bench.scenarios.faults.invariants import Check, check_invariants
from bench.scenarios.faults.observations import Observations
from bench.scenarios.faults.plan import (
    CATALOG_KILL,
    FAULTS,
    FULL,
    NATS_KILL,
    POSTGRES_KILL,
    QUICK,
    Fault,
    Timing,
)
from bench.scenarios.faults.report import format_seconds, render_report
from bench.scenarios.faults.stack import Stack
from bench.scenarios.faults.workload import Workload

__all__ = [
    "CATALOG_KILL",
    "DOCUMENT",
    "FAULTS",
    "FULL",
    "KEPT_LOG",
    "NATS_KILL",
    "POSTGRES_KILL",
    "QUICK",
    "Check",
    "Fault",
    "Timing",
    "run",
    "run_faults",
]

DOCUMENT = REPO_ROOT / "docs" / "reliability.md"
"""Where `--write` records this scenario's figures."""

KEPT_LOG = Path(tempfile.gettempdir()) / "tessera-faults-up.log"
"""The last run's `tessera up` output (its services' logs included), kept for a look."""

DRAIN_TIMEOUT_S = 30.0
"""How long the SSE reader gets, once the writers stop, to catch up with the stream."""


def run(quick: bool) -> str:
    """The scenario of `bench.run`: every fault in turn; raises ScenarioFailed with the report."""
    timing = QUICK if quick else FULL
    section, checks = run_faults(timing, FAULTS, quick=quick)
    failed = [c.what for c in checks if not c.passed]
    if failed:
        raise ScenarioFailed(
            f"{len(failed)} invariant(s) failed: {'; '.join(failed)} (log: {KEPT_LOG})", section
        )
    return section


def run_faults(
    timing: Timing, faults: Sequence[Fault], *, quick: bool = True
) -> tuple[str, list[Check]]:
    """Start the stack, inject `faults` in turn under load; the report and its checks."""
    root = Path(tempfile.mkdtemp(prefix="tessera-faults-"))
    stack = Stack(root)
    workload: Workload | None = None
    results: list[FaultResult] = []
    try:
        stack.start()
        first = stack.stream_last_sequence()
        workload = Workload(stack.url("gateway"), stack.api_key(), first)
        workload.start()
        injector = FaultInjector(stack, workload, timing)
        time.sleep(timing.steady_s)
        for fault in faults:
            print(f"faults: {fault.name}: {fault.how}", file=sys.stderr, flush=True)
            result = injector.inject(fault)
            results.append(result)
            print(
                f"faults:   recovered={result.recovered} "
                f"ready={'-' if fault.service is None else format_seconds(result.ready_s)} "
                f"201s={format_seconds(result.writes_s)} sse={format_seconds(result.events_s)}",
                file=sys.stderr,
                flush=True,
            )
            time.sleep(timing.settle_s)
        workload.stop_writing()
        wait_for_sse_to_catch_up(stack, workload.seen)
        workload.stop()
        checks = check_invariants(stack, workload.seen, first, results)
        section = render_report(quick, timing, workload.seen, results, checks, stack.log_file)
    finally:
        if workload is not None:
            workload.stop()
        stack.stop()
        with contextlib.suppress(OSError):
            shutil.copyfile(stack.log_file, KEPT_LOG)
        shutil.rmtree(root, ignore_errors=True)
    return section, checks


def wait_for_sse_to_catch_up(stack: Stack, seen: Observations) -> None:
    """Wait until the SSE reader has every acknowledged write's event and the stream's last."""
    deadline = time.monotonic() + DRAIN_TIMEOUT_S
    while time.monotonic() < deadline:
        events = seen.events_by_product()
        if all(w.product_id in events for w in seen.writes if w.product_id is not None):
            last = stack.stream_last_sequence()
            if any(event.sequence >= last for event in list(seen.events)):
                return
        time.sleep(0.2)
