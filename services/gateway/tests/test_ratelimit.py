"""The token bucket and its bounded table."""

from __future__ import annotations

from tessera_gateway.domain.ratelimit import Policy, RateLimiter

from .conftest import Clock


class TestTokenBucket:
    def test_burst_then_refill_at_the_rate(self) -> None:
        clock = Clock()
        limiter = RateLimiter(10, clock=clock)
        policy = Policy(rate_per_s=2.0, burst=3)

        burst = [limiter.take("k", policy).allowed for _ in range(4)]
        clock.now += 0.5  # one token back
        after_refill = [limiter.take("k", policy).allowed for _ in range(2)]

        assert burst == [True, True, True, False]
        assert after_refill == [True, False]

    def test_refusal_says_when_to_retry(self) -> None:
        limiter = RateLimiter(10, clock=Clock())
        policy = Policy(rate_per_s=0.25, burst=1)
        limiter.take("k", policy)

        refused = limiter.take("k", policy)

        assert not refused.allowed
        assert refused.retry_after_s == 4
        assert refused.remaining == 0
        headers = dict(refused.headers())
        assert headers[b"retry-after"] == b"4"
        assert headers[b"ratelimit-limit"] == b"1"
        assert headers[b"ratelimit-policy"] == b"1;w=4"

    def test_allowed_headers_count_down(self) -> None:
        limiter = RateLimiter(10, clock=Clock())
        policy = Policy(rate_per_s=10.0, burst=5)

        decision = limiter.take("k", policy)

        headers = dict(decision.headers())
        assert headers[b"ratelimit-remaining"] == b"4"
        assert headers[b"ratelimit-reset"] == b"1"
        assert b"retry-after" not in headers

    def test_retry_after_tells_without_spending(self) -> None:
        clock = Clock()
        limiter = RateLimiter(10, clock=clock)
        policy = Policy(rate_per_s=1.0, burst=2)

        peeked = [limiter.retry_after_s("k", policy) for _ in range(3)]
        assert len(limiter) == 0  # asking adds no bucket
        taken = [limiter.take("k", policy).allowed for _ in range(2)]
        after_one = limiter.retry_after_s("k", policy)
        clock.now += 0.5
        half_refilled = limiter.retry_after_s("k", policy)
        clock.now += 0.5
        refilled = limiter.retry_after_s("k", policy)

        assert peeked == [0, 0, 0]
        assert taken == [True, True]
        assert after_one == 1
        assert half_refilled == 1  # 0.5 s to go, rounded up to a whole second
        assert refilled == 0

    def test_buckets_are_per_key(self) -> None:
        limiter = RateLimiter(10, clock=Clock())
        policy = Policy(rate_per_s=1.0, burst=1)

        assert limiter.take("a", policy).allowed
        assert limiter.take("b", policy).allowed
        assert not limiter.take("a", policy).allowed


class TestBoundedTable:
    def test_table_never_exceeds_its_size_and_drops_the_least_recent(self) -> None:
        clock = Clock()
        limiter = RateLimiter(3, clock=clock)
        policy = Policy(rate_per_s=0.001, burst=1)
        limiter.take("busy", policy)  # empties "busy"

        for n in range(1000):
            limiter.take(f"addr-{n}", policy)
            limiter.take("busy", policy)  # recently used: kept

        assert len(limiter) == 3
        assert not limiter.take("busy", policy).allowed
