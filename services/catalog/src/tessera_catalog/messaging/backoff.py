"""Capped exponential backoff with jitter, for loops that retry a dependency."""

from __future__ import annotations

import random
import time


class Backoff:
    """Pauses that double after each failure up to a cap, drawn with "equal jitter".

    Each pause is drawn uniformly between half and all of the current step, so
    replicas that failed together do not retry together, while the pauses still
    grow (a "full jitter" draw can come out near zero every time).
    """

    def __init__(self, initial_s: float, max_s: float) -> None:
        self.initial_s = initial_s
        self.max_s = max(max_s, initial_s)
        self.failures = 0
        """Failures since the last `reset()`."""
        self._step = initial_s
        self._first_failure = 0.0

    def next_pause(self) -> float:
        """Seconds to wait after one more failure."""
        if not self.failures:
            self._first_failure = time.monotonic()
        step = self._step
        self._step = min(step * 2, self.max_s)
        self.failures += 1
        return random.uniform(step / 2, step)

    def failing_for(self) -> float:
        """Seconds since the first failure of the current run of them (0 when none)."""
        return time.monotonic() - self._first_failure if self.failures else 0.0

    def reset(self) -> None:
        """The dependency works again: the next failure starts from `initial_s`."""
        self._step = self.initial_s
        self.failures = 0
