"""Keeping the services of `tessera up` running: a service that exits is started again.

As Kubernetes does with `restartPolicy: Always`: only the service that exited is
restarted, whatever its exit status, after a delay that doubles while it keeps
exiting soon after it starts (1 s, 2 s, 4 s, ... up to 30 s by default) and is
reset once it has stayed ready for a while. The others keep serving meanwhile.

It never gives up: a service that crash-loops is retried at the longest delay
until Ctrl-C, and every exit is printed with its status and how many came in a
row, so the loop is in plain sight (with the service's own log lines above it).
Only the first start-up fails fast (`wait_ready`): a service that cannot become
ready then is a broken install or configuration, not a fault to ride out.
"""

from __future__ import annotations

import contextlib
import enum
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NoReturn

import httpx

from tessera_stack.local.console import say
from tessera_stack.local.services import ServiceProcess

# Short: the services are probed one after another, and a restarted one that hangs
# must not delay noticing that another has exited.
_READY_PROBE_TIMEOUT_S = 1.0


@dataclass(frozen=True, slots=True)
class RestartPolicy:
    """When a service that exited is started again."""

    first_delay_s: float = 1.0
    """Wait before restarting a service that exited after it had stayed up."""
    max_delay_s: float = 30.0
    """The delay doubles with each exit in a row up to this, then stays there."""
    reset_after_s: float = 60.0
    """Ready this long without exiting: its next exit waits `first_delay_s` again."""
    ready_timeout_s: float = 60.0
    """A restarted service not ready after this is reported (and left running)."""

    def delay_s(self, exits_in_a_row: int) -> float:
        """The wait before the restart that follows the `exits_in_a_row`-th exit (1-based)."""
        return min(self.first_delay_s * 2.0 ** (exits_in_a_row - 1), self.max_delay_s)


class _State(enum.Enum):
    READY = "ready"
    WAITING = "waiting to restart"
    STARTING = "starting"


class _Supervised:
    """One service and its restart bookkeeping."""

    def __init__(self, service: ServiceProcess, now: float) -> None:
        self.service = service
        self.state = _State.READY
        self.since = now
        """When it entered its state: ready since, exited at, or started at."""
        self.down_since = now
        self.restarts = 0
        self.exits_in_a_row = 0
        self.restart_at = now
        self.reported_slow = False
        self.last_answer = "no answer"
        """What /readyz last said since the restart: kept when a later probe gets none."""


class Supervisor:
    """Watches services that are ready and restarts each one that exits, on its own.

    Call `poll` repeatedly (or `run`, which does until interrupted); it never raises
    for a service's exit.
    """

    def __init__(
        self,
        services: Sequence[ServiceProcess],
        policy: RestartPolicy,
        *,
        probe: httpx.Client,
    ) -> None:
        now = time.monotonic()
        self._services = [_Supervised(service, now) for service in services]
        self._policy = policy
        self._probe = probe

    def poll(self) -> None:
        """Look at each service once: note exits, start those whose delay is over, probe."""
        for supervised in self._services:
            now = time.monotonic()
            if supervised.state is _State.WAITING:
                if now >= supervised.restart_at:
                    supervised.service.restart()
                    supervised.state, supervised.since = _State.STARTING, now
                continue
            code = supervised.service.process.poll()
            if code is not None:
                self._exited(supervised, code, now)
            elif supervised.state is _State.STARTING:
                self._probe_restarted(supervised, now)
            elif now - supervised.since >= self._policy.reset_after_s:
                supervised.exits_in_a_row = 0

    def run(self, interval_s: float = 0.2) -> NoReturn:
        """Poll until interrupted (Ctrl-C and SIGTERM raise KeyboardInterrupt)."""
        while True:
            self.poll()
            time.sleep(interval_s)

    def _exited(self, supervised: _Supervised, code: int, now: float) -> None:
        name = supervised.service.name
        supervised.service.join_logs()  # its last lines before ours
        if supervised.state is _State.READY:
            supervised.down_since = now
        supervised.exits_in_a_row += 1
        supervised.restarts += 1
        delay = self._policy.delay_s(supervised.exits_in_a_row)
        how = "" if supervised.state is _State.READY else " before it was ready"
        in_a_row = (
            f", {supervised.exits_in_a_row} exits in a row" if supervised.exits_in_a_row > 1 else ""
        )
        say(
            f"{name} exited with status {code}{how}; "
            f"restarting in {delay:g} s (restart {supervised.restarts}{in_a_row})"
        )
        supervised.state, supervised.since = _State.WAITING, now
        supervised.restart_at = now + delay
        supervised.reported_slow = False
        supervised.last_answer = "no answer"

    def _probe_restarted(self, supervised: _Supervised, now: float) -> None:
        service = supervised.service
        with contextlib.suppress(httpx.HTTPError):
            response = self._probe.get(f"{service.base_url}/readyz")
            if response.status_code == 200:
                say(
                    f"{service.name} is ready again after {now - supervised.down_since:.1f} s "
                    f"(restart {supervised.restarts})"
                )
                supervised.state, supervised.since = _State.READY, now
                return
            # On one line: a status line must not break up between services' logs.
            supervised.last_answer = (
                f"{response.status_code} {' '.join(response.text.split())[:300]}"
            )
        if not supervised.reported_slow and now - supervised.since > self._policy.ready_timeout_s:
            supervised.reported_slow = True
            say(
                f"{service.name} is not ready {self._policy.ready_timeout_s:g} s after restart "
                f"{supervised.restarts} (last /readyz answer: {supervised.last_answer}); "
                "still waiting"
            )


def supervise(services: Sequence[ServiceProcess], policy: RestartPolicy) -> NoReturn:
    """Keep `services` running until interrupted (see `Supervisor`)."""
    with httpx.Client(timeout=_READY_PROBE_TIMEOUT_S) as probe:
        Supervisor(services, policy, probe=probe).run()
