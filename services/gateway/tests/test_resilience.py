"""Circuit breaker states and the retry budget."""

from __future__ import annotations

from tessera_gateway.clients.resilience import BreakerState, CircuitBreaker, RetryBudget, backoff_s

from .conftest import Clock


def breaker(clock: Clock, changes: list[BreakerState] | None = None) -> CircuitBreaker:
    b = CircuitBreaker(failure_threshold=3, open_s=10.0, half_open_probes=1, clock=clock)
    if changes is not None:
        b.on_change = changes.append
    return b


def probing(clock: Clock) -> CircuitBreaker:
    """A breaker that opened (3 failures), waited out its 10 s and let its one probe through."""
    b = breaker(clock)
    for _ in range(3):
        b.failure()
    clock.now += 10.0
    assert b.allow()
    return b


class TestCircuitBreaker:
    def test_opens_after_consecutive_failures_only(self) -> None:
        b = breaker(Clock())
        for _ in range(2):
            assert b.allow()
            b.failure()
        b.success()  # resets the count
        for _ in range(2):
            b.failure()

        before = b.state
        b.failure()

        assert before is BreakerState.CLOSED
        assert b.state is BreakerState.OPEN
        assert not b.allow()

    def test_half_open_probe_closes_it(self) -> None:
        clock = Clock()
        changes: list[BreakerState] = []
        b = breaker(clock, changes)
        for _ in range(3):
            b.failure()
        clock.now += 9.0
        assert not b.allow()
        assert b.retry_after_s() == 1.0

        clock.now += 1.0
        assert b.allow()  # the probe
        assert not b.allow()  # only one at a time
        b.success()

        assert b.state is BreakerState.CLOSED
        assert b.allow()
        assert changes == [BreakerState.OPEN, BreakerState.HALF_OPEN, BreakerState.CLOSED]

    def test_failed_probe_opens_it_again(self) -> None:
        b = probing(Clock())

        b.failure()

        assert b.state is BreakerState.OPEN
        assert b.retry_after_s() == 10.0

    def test_released_probe_frees_its_slot(self) -> None:
        b = probing(Clock())

        b.release()

        assert b.state is BreakerState.HALF_OPEN
        assert b.allow()


class TestRetryBudget:
    def test_starts_with_the_minimum_then_earns_by_traffic(self) -> None:
        budget = RetryBudget(ratio=0.5, minimum=2)

        spent = [budget.try_spend() for _ in range(3)]
        budget.deposit()
        half = budget.try_spend()
        budget.deposit()
        whole = budget.try_spend()

        assert spent == [True, True, False]
        assert (half, whole) == (False, True)

    def test_savings_are_capped(self) -> None:
        budget = RetryBudget(ratio=1.0, minimum=0)
        for _ in range(10_000):
            budget.deposit()

        spent = sum(budget.try_spend() for _ in range(10_000))

        assert spent == 100


def test_backoff_is_jittered_exponential_and_capped() -> None:
    delays = [backoff_s(attempt, 0.1, 0.5) for attempt in (1, 2, 3, 10) for _ in range(200)]

    assert all(0 <= d <= 0.5 for d in delays)
    assert max(backoff_s(1, 0.1, 0.5) for _ in range(200)) <= 0.1
    assert len(set(delays)) > 100
