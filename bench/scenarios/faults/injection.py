"""Injecting one fault and timing the stack's recovery from it, from what the clients saw."""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass, field

from tessera_stack.process import ServerError

from bench.harness import BenchError
from bench.scenarios.faults.plan import Fault, Timing
from bench.scenarios.faults.processes import wait_gone
from bench.scenarios.faults.stack import Stack
from bench.scenarios.faults.workload import Workload

RECOVERY_TIMEOUT_S = 45.0
"""A fault the stack has not recovered from after this counts as not recovered."""


@dataclass
class FaultResult:
    fault: Fault
    started: float
    """When the fault was injected."""
    cleared: float
    """When the server was started again (server faults); `started` otherwise."""
    ended: float = 0.0
    ready_s: float | None = None
    """The service answered /readyz from a new process, after the fault (service faults)."""
    writes_s: float | None = None
    """A write sent after `cleared` was answered 201, after `cleared`."""
    events_s: float | None = None
    """The SSE reader had every acknowledged write's event, one of them written after `cleared`."""
    prediction_s: float | None = None
    """The enriched view had its prediction again, after the fault (inference faults)."""
    in_flight: int = 0
    in_flight_answered: int = 0
    in_flight_dropped: list[str] = field(default_factory=list)
    """Why each request in flight at the signal that was not answered failed."""
    degraded_reads: int = 0
    wall_started: float = 0.0
    """`started` as a Unix time."""
    failure_details: list[str] = field(default_factory=list)
    """The distinct reasons (status and problem title) of the failed write attempts."""

    @property
    def recovered(self) -> bool:
        needed: list[float | None] = [self.writes_s, self.events_s]
        if self.fault.service is not None:
            needed.append(self.ready_s)
        if self.fault.service == "inference":
            needed.append(self.prediction_s)
        return all(value is not None for value in needed)


class FaultInjector:
    """Injects faults into `stack` while `workload` runs, one at a time."""

    def __init__(self, stack: Stack, workload: Workload, timing: Timing) -> None:
        self.stack = stack
        self.workload = workload
        self.seen = workload.seen
        self.timing = timing

    def inject(self, fault: Fault) -> FaultResult:
        """Inject `fault`, wait until the stack has recovered (or RECOVERY_TIMEOUT_S)."""
        old_pid: int | None = None
        if fault.service is None:
            is_nats = fault.name == "NATS"
            pid = self.stack.nats_pid() if is_nats else self.stack.postgres_pid()
            started = time.monotonic()
            os.kill(pid, signal.SIGKILL)
            wait_gone(pid)
            time.sleep(self.timing.down_s)
            if is_nats:
                self.stack.nats.start()
            else:
                self._start_postgres()
            cleared = time.monotonic()
        else:
            assert fault.sig is not None
            old_pid = self.stack.service_pid(fault.service)
            if old_pid is None:
                raise BenchError(f"no {fault.service} process found in /proc")
            if fault.sig == signal.SIGTERM:
                self.workload.burst(fault.service)
            started = cleared = time.monotonic()
            os.kill(old_pid, fault.sig)
        # The services' log lines carry wall-clock times: this maps them to the fault.
        result = FaultResult(fault, started=started, cleared=cleared)
        result.wall_started = time.time() - (time.monotonic() - started)
        self._await_recovery(result, old_pid)
        return result

    def _start_postgres(self) -> None:
        # Backends of the killed postmaster may still hold its shared memory for a moment.
        for attempt in range(10):
            try:
                self.stack.postgres.start()
                return
            except ServerError:
                if attempt == 9:
                    raise
                time.sleep(0.5)

    def _await_recovery(self, result: FaultResult, old_pid: int | None = None) -> None:
        """Poll until every sign of recovery has been seen, or RECOVERY_TIMEOUT_S.

        Writes and events count once the fault is over: the server restarted, or
        the service ready again from a new process (a request a draining service
        still served says nothing about its successor). Times are reported from
        `reference`: the server's restart, or the signal.
        """
        fault = result.fault
        deadline = result.cleared + RECOVERY_TIMEOUT_S
        reference = result.cleared if fault.service is None else result.started
        over: float | None = result.cleared if fault.service is None else None
        before: list[str] = []
        while not result.recovered and time.monotonic() < deadline:
            time.sleep(0.1)
            now = time.monotonic()
            if fault.service is not None and result.ready_s is None:
                pid = self.stack.service_pid(fault.service)
                if pid is not None and pid != old_pid and self.stack.ready(fault.service):
                    result.ready_s = now - result.started
                    over = now
            if over is None:
                continue
            if not before:
                before = [
                    w.product_id
                    for w in list(self.seen.writes)
                    if w.product_id is not None
                    and w.acknowledged_at is not None
                    and w.acknowledged_at < over
                ]
            if result.writes_s is None:
                result.writes_s = self._first_201_after(over, reference)
            if result.writes_s is not None and result.events_s is None:
                result.events_s = self._caught_up(over, before, reference)
            if fault.service == "inference" and result.prediction_s is None:
                result.prediction_s = self._prediction_back(result)
        result.ended = time.monotonic()
        result.in_flight, result.in_flight_answered, result.in_flight_dropped = self._in_flight(
            result.started
        )
        result.degraded_reads = sum(
            1
            for r in list(self.seen.reads)
            if result.started <= r.at <= result.ended and "prediction" in r.degraded
        )
        window = self.seen.attempts_during(result.started, result.ended)
        result.failure_details = sorted({a.detail for a in window if a.detail})

    def _first_201_after(self, since: float, reference: float) -> float | None:
        ended = [
            a.ended
            for w in list(self.seen.writes)
            for a in list(w.attempts)
            if a.started >= since and a.status == 201
        ]
        return min(ended) - reference if ended else None

    def _caught_up(self, since: float, before: list[str], reference: float) -> float | None:
        """When the SSE reader had the events of `before` and of a write acknowledged after `since`."""
        seen = self.seen.events_by_product()
        if any(product not in seen for product in before):
            return None
        after = [
            seen[w.product_id]
            for w in list(self.seen.writes)
            if w.product_id in seen and w.acknowledged_at is not None and w.acknowledged_at >= since
        ]
        if not after:
            return None
        arrivals = [seen[p] for p in before] + [min(after)]
        return max(arrivals) - reference

    def _prediction_back(self, result: FaultResult) -> float | None:
        if result.ready_s is None:
            return None
        ready_at = result.started + result.ready_s
        for read in list(self.seen.reads):
            if read.at >= ready_at and read.status == 200 and "prediction" not in read.degraded:
                return read.at - result.started
        return None

    def _in_flight(self, at: float) -> tuple[int, int, list[str]]:
        """Requests (writes and reads) in flight at `at`, and how many were answered.

        Answered: an HTTP answer other than 502/504. A dropped connection, or a
        502/504 (the gateway saw its upstream cut the request off or stall), means
        the stopping service abandoned a request; a 503 is the gateway's honest
        refusal of one the stopping service never took (it no longer accepts).
        """
        spans = [(a.started, a.ended, a.status, a.detail or a.error) for a in self.seen.attempts()]
        spans += [(r.at, r.ended, r.status, r.detail or r.error) for r in list(self.seen.reads)]
        in_flight = [(status, why) for started, ended, status, why in spans if started < at < ended]
        dropped = [str(why) for status, why in in_flight if status is None or status in (502, 504)]
        return len(in_flight), len(in_flight) - len(dropped), dropped
