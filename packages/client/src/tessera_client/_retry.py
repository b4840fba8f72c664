"""When a failed attempt is repeated, and how long the client waits first.

Only an operation whose `retry_policy` allows it is repeated: `always`, or
`with_idempotency_key` when the request carries an `Idempotency-Key`. It is
repeated after a failure before any answer (connection refused or reset, a
timeout) and after 429, 502, 503 and 504. The pause is the answer's
`Retry-After` or else capped exponential backoff with full jitter; a
`Retry-After` beyond `retry_after_max_s` ends the retries (the error is raised
at once: retrying earlier than the server asked would only be refused again).
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Final

import httpx
from tessera_contracts import Operation
from tessera_contracts.operations import IDEMPOTENCY_KEY

from tessera_client._request import Prepared

RETRY_STATUSES: Final = frozenset({429, 502, 503, 504})
_DIGITS: Final = re.compile(r"[0-9]+")


@dataclass(frozen=True, slots=True)
class RetryConfig:
    """How persistent a client is (see `TesseraClient`): `max_retries` attempts after
    the first (0 never repeats a request); backoff before attempt n up to
    `backoff_s * 2**n`, at most `backoff_max_s`; a `Retry-After` waited for up to
    `retry_after_max_s` (a longer one ends the retries)."""

    max_retries: int = 2
    backoff_s: float = 0.1
    backoff_max_s: float = 2.0
    retry_after_max_s: float = 30.0

    def __post_init__(self) -> None:
        if self.max_retries < 0 or self.backoff_s < 0 or self.backoff_max_s < 0:
            raise ValueError("retry settings must not be negative")

    def backoff(self, retry: int) -> float:
        """The pause before retry number `retry` (0 for the first) without `Retry-After`."""
        return random.uniform(0.0, min(self.backoff_max_s, self.backoff_s * 2**retry))

    def pause(self, retry: int, response: httpx.Response | None) -> float | None:
        """The pause before retry number `retry`, after `response` (None: no answer);
        None when the answer's `Retry-After` is beyond `retry_after_max_s`."""
        if response is not None and response.status_code in (429, 503):
            after = retry_after_s(response.headers.get("retry-after"))
            if after is not None:
                return after if after <= self.retry_after_max_s else None
        return self.backoff(retry)


def may_retry(operation: Operation, prepared: Prepared) -> bool:
    """Whether the operation's retry policy allows repeating this request."""
    policy = operation.retry_policy
    if policy == "always":
        return True
    return policy == "with_idempotency_key" and IDEMPOTENCY_KEY.lower() in prepared.sent_headers


def retry_after_s(value: str | None) -> float | None:
    """`Retry-After` in seconds: delay-seconds or an HTTP-date; None if absent or bad."""
    if value is None:
        return None
    value = value.strip()
    if _DIGITS.fullmatch(value):  # not `isdigit`: it takes "²", which `float` refuses
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())
