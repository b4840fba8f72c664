"""Token-bucket rate limiting per key or client address, with a bounded table.

The table is an LRU of at most `max_buckets` buckets. A bucket idle for longer
than `burst / rate` seconds is full again, so dropping it loses nothing; only a
table churning faster than that (a flood of distinct addresses) resets buckets
early, and then memory stays bounded instead of growing with the flood.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Policy:
    rate_per_s: float
    burst: int
    window_s: int = field(init=False)
    """Seconds an empty bucket takes to fill: the quota window advertised to clients."""
    # The constant headers, encoded once rather than on every response.
    limit_header: tuple[bytes, bytes] = field(init=False)
    policy_header: tuple[bytes, bytes] = field(init=False)

    def __post_init__(self) -> None:
        window = max(1, math.ceil(self.burst / self.rate_per_s))
        object.__setattr__(self, "window_s", window)
        object.__setattr__(self, "limit_header", (b"ratelimit-limit", b"%d" % self.burst))
        object.__setattr__(
            self, "policy_header", (b"ratelimit-policy", b"%d;w=%d" % (self.burst, window))
        )


# Not frozen: one is made per request, and a frozen dataclass's __init__ costs
# several times a plain one's.
@dataclass(slots=True)
class Decision:
    allowed: bool
    policy: Policy
    remaining: int
    reset_s: int
    """Seconds until the bucket is full again."""
    retry_after_s: int
    """Seconds until one request is allowed (0 when allowed now)."""

    def headers(self) -> list[tuple[bytes, bytes]]:
        """RateLimit headers (draft-ietf-httpapi-ratelimit-headers), plus Retry-After on 429."""
        policy = self.policy
        headers = [
            policy.limit_header,
            (b"ratelimit-remaining", b"%d" % self.remaining),
            (b"ratelimit-reset", b"%d" % self.reset_s),
            policy.policy_header,
        ]
        if not self.allowed:
            headers.append((b"retry-after", b"%d" % self.retry_after_s))
        return headers


class _Bucket:
    __slots__ = ("tokens", "updated")

    def __init__(self, tokens: float, updated: float) -> None:
        self.tokens = tokens
        self.updated = updated


class RateLimiter:
    def __init__(self, max_buckets: int, clock: Callable[[], float] = time.monotonic) -> None:
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()
        self._max_buckets = max_buckets
        self._clock = clock

    def __len__(self) -> int:
        return len(self._buckets)

    def take(self, key: str, policy: Policy) -> Decision:
        """Spend one token of `key`'s bucket if there is one."""
        now = self._clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = _Bucket(float(policy.burst), now)
            self._buckets[key] = bucket
            if len(self._buckets) > self._max_buckets:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key)
            bucket.tokens = _refilled(bucket, policy, now)
            bucket.updated = now
        allowed = bucket.tokens >= 1.0
        if allowed:
            bucket.tokens -= 1.0
        return _decision(allowed, policy, bucket.tokens)

    def retry_after_s(self, key: str, policy: Policy) -> int:
        """Seconds until `key`'s bucket has a token (0: it has one now), without
        spending it or adding a bucket: for limits on failures, where a token is
        spent only once a request failed. An address that never failed has no
        bucket, so the common case is one dict lookup."""
        bucket = self._buckets.get(key)
        if bucket is None:
            return 0
        return _retry_after_s(policy, _refilled(bucket, policy, self._clock()))


def _refilled(bucket: _Bucket, policy: Policy, now: float) -> float:
    return min(float(policy.burst), bucket.tokens + (now - bucket.updated) * policy.rate_per_s)


def _decision(allowed: bool, policy: Policy, tokens: float) -> Decision:
    return Decision(
        allowed=allowed,
        policy=policy,
        remaining=int(tokens),
        reset_s=math.ceil((policy.burst - tokens) / policy.rate_per_s),
        retry_after_s=0 if allowed else _retry_after_s(policy, tokens),
    )


def _retry_after_s(policy: Policy, tokens: float) -> int:
    if tokens >= 1.0:
        return 0
    return max(1, math.ceil((1.0 - tokens) / policy.rate_per_s))
