"""Circuit breaker and retry budget, one of each per upstream.

Both are plain state machines driven by the proxy; the event loop is single
threaded, so they need no locks.
"""

from __future__ import annotations

import enum
import random
import time
from collections.abc import Callable


class BreakerState(enum.Enum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitBreaker:
    """Opens after `failure_threshold` consecutive failures, fails fast for `open_s`,
    then lets `half_open_probes` requests through: a success closes it, a failure
    opens it again.
    """

    def __init__(
        self,
        *,
        failure_threshold: int,
        open_s: float,
        half_open_probes: int,
        clock: Callable[[], float] = time.monotonic,
        on_change: Callable[[BreakerState], None] | None = None,
    ) -> None:
        self._threshold = failure_threshold
        self._open_s = open_s
        self._probes = half_open_probes
        self._clock = clock
        self.on_change = on_change
        self._state = BreakerState.CLOSED
        self._failures = 0
        self._opened_at = 0.0
        self._probes_in_flight = 0

    @property
    def state(self) -> BreakerState:
        if self._state is BreakerState.OPEN and self._clock() - self._opened_at >= self._open_s:
            return BreakerState.HALF_OPEN
        return self._state

    def retry_after_s(self) -> float:
        """Seconds until an open circuit lets a probe through."""
        return max(0.0, self._open_s - (self._clock() - self._opened_at))

    def allow(self) -> bool:
        """Whether a request may go to the upstream now; a True must be followed by
        exactly one `success()`, `failure()` or `release()`."""
        state = self.state
        if state is BreakerState.CLOSED:
            return True
        if state is BreakerState.OPEN:
            return False
        if self._state is BreakerState.OPEN:
            self._set(BreakerState.HALF_OPEN)
        if self._probes_in_flight >= self._probes:
            return False
        self._probes_in_flight += 1
        return True

    def success(self) -> None:
        self._failures = 0
        if self._state is BreakerState.HALF_OPEN:
            self._probes_in_flight = max(0, self._probes_in_flight - 1)
            self._set(BreakerState.CLOSED)

    def failure(self) -> None:
        if self._state is BreakerState.HALF_OPEN:
            self._probes_in_flight = max(0, self._probes_in_flight - 1)
            self._open()
            return
        self._failures += 1
        if self._state is BreakerState.CLOSED and self._failures >= self._threshold:
            self._open()

    def release(self) -> None:
        """The request ended without telling anything about the upstream (e.g. the
        client went away): free its probe slot without changing the state."""
        if self._state is BreakerState.HALF_OPEN:
            self._probes_in_flight = max(0, self._probes_in_flight - 1)

    def _open(self) -> None:
        self._opened_at = self._clock()
        self._failures = 0
        self._probes_in_flight = 0
        self._set(BreakerState.OPEN)

    def _set(self, state: BreakerState) -> None:
        if state is not self._state:
            self._state = state
            if self.on_change is not None:
                self.on_change(state)


class RetryBudget:
    """Retries are earned by traffic: each request deposits `ratio` tokens, each
    retry spends one. So when an upstream fails, retries add at most `ratio` to its
    load instead of multiplying it by the number of attempts.
    """

    def __init__(self, *, ratio: float, minimum: int) -> None:
        self._ratio = ratio
        self._minimum = float(minimum)
        # The cap keeps a long healthy spell from banking a retry storm.
        self._cap = max(self._minimum, 100.0 * ratio, 1.0)
        self._tokens = self._minimum

    def deposit(self) -> None:
        self._tokens = min(self._cap, self._tokens + self._ratio)

    def try_spend(self) -> bool:
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False


def backoff_s(attempt: int, base_s: float, max_s: float) -> float:
    """Exponential backoff with full jitter before retry number `attempt` (1-based)."""
    return random.uniform(0.0, min(max_s, base_s * (2 ** (attempt - 1))))
