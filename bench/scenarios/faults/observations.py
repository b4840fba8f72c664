"""What the clients saw: every write attempt, read and SSE event, with its times."""

from __future__ import annotations

import collections
import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field

ACCEPTABLE_5XX = frozenset({502, 503, 504})
"""The 5xx a stack in trouble may answer (it refuses, or an upstream failed); never a 500."""


def is_unacceptable_5xx(status: int | None) -> bool:
    """A 5xx other than 502/503/504: an invariant fails wherever one is seen."""
    return status is not None and status >= 500 and status not in ACCEPTABLE_5XX


@dataclass
class Attempt:
    started: float
    ended: float
    status: int | None
    """None: no HTTP answer (the error says why)."""
    error: str | None = None
    timed_out: bool = False
    detail: str | None = None
    """Why it failed: `503 catalog unavailable: ...` from the problem body, or the error."""


@dataclass
class Write:
    sku: str
    key: str
    attempts: list[Attempt] = field(default_factory=list)
    product_id: str | None = None
    acknowledged_at: float | None = None


@dataclass
class Read:
    at: float
    ended: float
    status: int | None
    degraded: tuple[str, ...] = ()
    error: str | None = None
    """Why there was no HTTP answer (the httpx exception's name)."""
    detail: str | None = None
    """Why it failed, from the problem body (see `workload.why_failed`)."""


@dataclass
class SseEvent:
    at: float
    sequence: int
    product_id: str | None


@dataclass
class Observations:
    """Appended to by the workload thread, read by the fault thread (lists are thread-safe)."""

    writes: list[Write] = field(default_factory=list)
    reads: list[Read] = field(default_factory=list)
    events: list[SseEvent] = field(default_factory=list)
    sse_connects: list[tuple[float, int | None, str | None]] = field(default_factory=list)
    """(when, status or None, error) of every SSE (re)connection attempt."""
    sse_stalls: int = 0

    def attempts(self) -> Iterator[Attempt]:
        for write in list(self.writes):
            yield from list(write.attempts)

    def attempts_during(self, started: float, ended: float) -> list[Attempt]:
        """Every write attempt that overlaps [started, ended], one in flight at `started` included."""
        return [a for a in self.attempts() if a.ended >= started and a.started < ended]

    def events_by_product(self) -> dict[str, float]:
        """When the SSE reader first saw each product's event."""
        seen: dict[str, float] = {}
        for event in list(self.events):
            if event.product_id is not None:
                seen.setdefault(event.product_id, event.at)
        return seen


def answers_summary(attempts: list[Attempt]) -> str:
    """`12 x 201, 3 x 503, 2 x ConnectError`: HTTP statuses, then why others got none."""
    statuses = collections.Counter(a.status for a in attempts if a.status is not None)
    errors = collections.Counter(a.error for a in attempts if a.status is None)
    parts = [f"{n} x {s}" for s, n in sorted(statuses.items())]
    parts += [f"{n} x {e}" for e, n in sorted(errors.items(), key=lambda i: str(i[0]))]
    return ", ".join(parts) or "none"


def created_product_id(data: str) -> str | None:
    """The product id of a `product.created` event's JSON (None for any other event)."""
    with contextlib.suppress(ValueError, KeyError, TypeError):
        event = json.loads(data)["data"]
        if event.get("kind") == "product.created":
            return str(event["product"]["id"])
    return None
