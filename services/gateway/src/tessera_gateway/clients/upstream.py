"""One upstream service: its client, deadline, retries, retry budget and circuit breaker."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, Literal

from tessera_runtime import tracing
from tessera_runtime.context import TRACEPARENT_HEADER, current_context

from tessera_gateway.clients.http import (
    CONNECT_ERRORS,
    EXCHANGE_ERRORS,
    Headers,
    RawHeaders,
    UpstreamClient,
    UpstreamResponse,
)
from tessera_gateway.clients.resilience import BreakerState, CircuitBreaker, RetryBudget, backoff_s
from tessera_gateway.errors import BadGateway, GatewayError, UpstreamTimeout, UpstreamUnavailable
from tessera_gateway.metrics import UpstreamMetrics

logger = logging.getLogger("tessera_gateway.clients.upstream")

# Upstream statuses that say "not now" rather than "this request is wrong": worth
# another attempt, and evidence against the upstream's health. A 500 is a bug in
# one operation, not an outage, so it neither retries nor trips the breaker.
_UNAVAILABLE_STATUSES: Final = frozenset({502, 503, 504})
# Bodies up to this size are read whole within the deadline and relayed in one
# ASGI message; larger or unsized ones are streamed.
BUFFER_LIMIT: Final = 256 * 1024
# When another attempt may follow a failed one: never, only for requests that are
# safe to repeat, or always (the request never reached the upstream).
_Repeat = Literal["never", "idempotent", "always"]


@dataclass(slots=True)
class Reply:
    """An upstream response ready to relay: a complete small body, or an open stream
    (which holds its upstream slot until closed)."""

    status: int
    headers: RawHeaders
    body: bytes | None
    stream: UpstreamResponse | None
    release: Callable[[], None] | None = None

    async def aclose(self) -> None:
        stream, self.stream = self.stream, None
        try:
            if stream is not None:
                await stream.aclose()
        finally:
            release, self.release = self.release, None
            if release is not None:
                release()


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_attempts: int
    backoff_s: float
    backoff_max_s: float


class Upstream:
    def __init__(
        self,
        name: str,
        client_factory: Callable[[], UpstreamClient],
        *,
        timeout_s: float,
        max_in_flight: int,
        queue_timeout_s: float,
        retry: RetryPolicy,
        budget: RetryBudget,
        breaker: CircuitBreaker,
        metrics: UpstreamMetrics,
    ) -> None:
        self.name = name
        self._client_factory = client_factory
        self._client: UpstreamClient | None = None
        self.timeout_s = timeout_s
        self.queue_timeout_s = queue_timeout_s
        # At most this many requests at the upstream at once; the rest wait here, in
        # FIFO order. Bounding the upstream's concurrency keeps its latency (and so
        # our deadlines) stable under overload, and the wait does not count against
        # the upstream's deadline: only the upstream's own time does.
        self._slots = asyncio.Semaphore(max_in_flight)
        self.retry = retry
        self.budget = budget
        self.breaker = breaker
        self.metrics = metrics
        breaker.on_change = self._on_breaker_change

    def _on_breaker_change(self, state: BreakerState) -> None:
        logger.warning("circuit of %s is now %s", self.name, state.value)
        self.metrics.breaker_open.labels(self.name).set(0 if state is BreakerState.CLOSED else 1)

    async def send(
        self, method: str, target: str, headers: Headers, body: bytes | None, *, retryable: bool
    ) -> Reply:
        """Send a request within the deadline, retrying what is safe to retry.

        Args:
            retryable: the request may be repeated (idempotent, or has an Idempotency-Key).

        Raises:
            UpstreamUnavailable: the circuit is open, too many requests are waiting,
                or the upstream is unreachable or answered 503.
            UpstreamTimeout: no answer within the deadline (all attempts included).
            BadGateway: the exchange broke, or the upstream answered another 5xx.
        """
        if self.breaker.state is BreakerState.OPEN:
            # Fail fast without queueing behind requests that will fail too.
            raise self._circuit_open()
        await self._acquire_slot()
        try:
            reply = await self._send(method, target, headers, body, retryable=retryable)
        except BaseException:
            self._slots.release()
            raise
        if reply.stream is None:
            self._slots.release()
        else:
            reply.release = self._slots.release
        return reply

    def _circuit_open(self) -> UpstreamUnavailable:
        retry_after = max(1, round(self.breaker.retry_after_s()))
        return UpstreamUnavailable(
            f"{self.name} is failing; requests to it are refused for now",
            upstream=self.name,
            headers={"Retry-After": str(retry_after)},
        )

    async def _acquire_slot(self) -> None:
        if not self._slots.locked():
            await self._slots.acquire()  # free: returns at once
            return
        try:
            async with asyncio.timeout(self.queue_timeout_s):
                await self._slots.acquire()
        except TimeoutError:
            self.metrics.failures.labels(self.name, "queue_timeout").inc()
            raise UpstreamUnavailable(
                f"too many requests are waiting for {self.name}; retry later",
                upstream=self.name,
                headers={"Retry-After": "1"},
            ) from None

    async def _send(
        self, method: str, target: str, headers: Headers, body: bytes | None, *, retryable: bool
    ) -> Reply:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout_s
        self.budget.deposit()
        attempt = 1
        while True:
            if not self.breaker.allow():
                raise self._circuit_open()
            failure, repeat_when = await self._attempt(
                method, target, headers, body, deadline, attempt
            )
            if isinstance(failure, Reply):
                return failure
            repeat = repeat_when == "always" or (repeat_when == "idempotent" and retryable)
            delay = backoff_s(attempt, self.retry.backoff_s, self.retry.backoff_max_s)
            if (
                not repeat
                or attempt >= self.retry.max_attempts
                or loop.time() + delay >= deadline
                or not self.budget.try_spend()
            ):
                raise failure
            self.metrics.retries.labels(self.name).inc()
            attempt += 1
            await asyncio.sleep(delay)

    async def _attempt(
        self,
        method: str,
        target: str,
        headers: Headers,
        body: bytes | None,
        deadline: float,
        attempt: int,
    ) -> tuple[Reply | GatewayError, _Repeat]:
        """One attempt, in a client span of its own when tracing is on; the upstream
        gets the attempt's ``traceparent``, so its server span is the attempt's child."""
        if tracing.recording_span() is None:  # tracing off, or the request is not sampled
            return await self._exchange(method, target, _traced(headers), body, deadline)
        attributes: dict[str, str | int] = {
            "http.request.method": method,
            "server.address": self.name,
            "url.path": target.partition("?")[0],
        }
        if attempt > 1:
            attributes["http.request.resend_count"] = attempt - 1
        with tracing.span(method, kind=tracing.SpanKind.CLIENT, attributes=attributes) as span:
            outcome = await self._exchange(method, target, _traced(headers), body, deadline)
            if span is not None:
                result = outcome[0]
                if isinstance(result, Reply):
                    span.set_attribute("http.response.status_code", result.status)
                    # Client spans: any 4xx or 5xx answer is a failed call.
                    if result.status >= 400:
                        span.set_status(tracing.Status(tracing.StatusCode.ERROR))
                else:
                    span.set_status(tracing.Status(tracing.StatusCode.ERROR, str(result)))
            return outcome

    async def _exchange(
        self, method: str, target: str, headers: Headers, body: bytes | None, deadline: float
    ) -> tuple[Reply | GatewayError, _Repeat]:
        """One exchange: a reply to relay, or the error it would be and when another
        attempt may follow ("always" when the request never reached the upstream)."""
        name = self.name
        client = self._client
        if client is None:
            self.breaker.release()
            return UpstreamUnavailable(
                f"{name} is not connected (shutting down)", upstream=name
            ), "never"
        try:
            async with asyncio.timeout_at(deadline):
                response = await client.request(method, target, headers, body)
                try:
                    reply = await self._reply(response)
                except BaseException:
                    await response.aclose()
                    raise
        except CONNECT_ERRORS:
            # Before the deadline branch: a connect timeout is a `TimeoutError` too,
            # but it says the upstream is unreachable, and nothing was sent.
            self._failed("connect")
            return UpstreamUnavailable(f"cannot connect to {name}", upstream=name), "always"
        except TimeoutError:
            self._failed("timeout")
            # The deadline is spent: nothing left for another attempt.
            return UpstreamTimeout(
                f"{name} did not answer within {self.timeout_s:g} s", upstream=name
            ), "never"
        except EXCHANGE_ERRORS:
            self._failed("exchange")
            return BadGateway(f"{name} broke off the exchange", upstream=name), "idempotent"
        except BaseException:
            # Cancelled (client gone, shutdown): says nothing about the upstream.
            self.breaker.release()
            raise
        status = reply.status
        if status < 500:
            self.breaker.success()
            return reply, "never"
        await reply.aclose()
        # The upstream's own 5xx body stays inside: the client gets our problem.
        if status in _UNAVAILABLE_STATUSES:
            self._failed(f"status_{status}")
            error_type: type[GatewayError] = (
                UpstreamTimeout if status == 504 else UpstreamUnavailable
            )
            retry_after = _header(reply.headers, b"retry-after")
            error = error_type(
                f"{name} answered {status}",
                upstream=name,
                headers={"Retry-After": retry_after} if retry_after else None,
            )
            return error, "idempotent"
        self.breaker.success()
        self.metrics.failures.labels(name, f"status_{status}").inc()
        return BadGateway(f"{name} failed to handle the request ({status})", upstream=name), "never"

    def _failed(self, reason: str) -> None:
        self.breaker.failure()
        self.metrics.failures.labels(self.name, reason).inc()

    @staticmethod
    async def _reply(response: UpstreamResponse) -> Reply:
        length = response.content_length
        if length is not None and length <= BUFFER_LIMIT:
            body = await response.read()
            await response.aclose()
            return Reply(response.status, response.headers, body, None)
        return Reply(response.status, response.headers, None, response)

    def open(self) -> None:
        """Create the client; in the lifespan, since clients bind to the running loop."""
        if self._client is None:
            self._client = self._client_factory()

    async def aclose(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()


def _traced(headers: Headers) -> Headers:
    """``headers`` and the ``traceparent`` of the current context (the attempt's span)."""
    context = current_context()
    if context is None:
        return headers
    return [*headers, (TRACEPARENT_HEADER, context.traceparent)]


def _header(headers: RawHeaders, name: bytes) -> str | None:
    for key, value in headers:
        if key == name:
            return value.decode("latin-1")
    return None
