"""The generic core: perform any `Operation`, with retries, over httpx.

`AsyncCore` and `SyncCore` differ only in how they wait: what a request is and
what an answer means is in `_request`, when to repeat one in `_Attempts` (and
`_retry`), so each core's loop only sends, sleeps and hands the outcome over.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any, Final, Generic, TypeVar, Unpack

import httpx
from tessera_contracts import Operation

from tessera_client._errors import TesseraConnectionError
from tessera_client._request import (
    Arguments,
    Prepared,
    Reply,
    declared_answer,
    interpret,
    prepare,
)
from tessera_client._retry import RETRY_STATUSES, RetryConfig, may_retry

T = TypeVar("T", httpx.AsyncBaseTransport, httpx.BaseTransport)

USER_AGENT: Final = "tessera-client/0.1"


@dataclass(frozen=True, slots=True)
class CoreConfig(Generic[T]):
    """Where and how a core connects (the arguments of `TesseraClient`)."""

    base_url: str
    api_key: str | None
    timeout: float | httpx.Timeout
    retry: RetryConfig
    transport: T | None

    def client_arguments(self) -> dict[str, Any]:
        """The arguments of `httpx.Client` (and of the async one)."""
        headers = {"User-Agent": USER_AGENT}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        return {
            "base_url": self.base_url,
            "headers": headers,
            "timeout": self.timeout,
            "transport": self.transport,
        }


class _Attempts:
    """The attempts at one request: whether to repeat it, and after which pause."""

    def __init__(self, prepared: Prepared, retry: RetryConfig) -> None:
        self._prepared = prepared
        self._retry = retry
        self._retryable = may_retry(prepared.operation, prepared)
        self._attempt = 0

    def settle(self, outcome: httpx.Response | httpx.TransportError) -> httpx.Response | float:
        """The answer to return, or the pause before the next attempt.

        Raises:
            httpx.LocalProtocolError: the request itself is malformed (repeating it cannot help).
            TesseraConnectionError: no answer, and no attempt left.
        """
        last = not self._retryable or self._attempt >= self._retry.max_retries
        response: httpx.Response | None = None
        if isinstance(outcome, httpx.Response):
            if last or not self._may_repeat(outcome):
                return outcome
            response = outcome
        elif isinstance(outcome, httpx.LocalProtocolError):
            raise outcome
        elif last:
            raise TesseraConnectionError(
                self._prepared.operation, self._attempt + 1, outcome
            ) from outcome
        pause = self._retry.pause(self._attempt, response)
        if pause is None:
            assert response is not None  # only an answer's `Retry-After` ends retries
            return response
        self._attempt += 1
        return pause

    def _may_repeat(self, response: httpx.Response) -> bool:
        """Whether the answer is a transient failure (a declared answer is not one)."""
        return (
            response.status_code in RETRY_STATUSES
            and declared_answer(self._prepared, response) is None
        )


class AsyncCore:
    """Performs operations with an `httpx.AsyncClient` (see `TesseraClient`)."""

    def __init__(self, config: CoreConfig[httpx.AsyncBaseTransport]) -> None:
        self.retry = config.retry
        self.http = httpx.AsyncClient(**config.client_arguments())

    async def send(self, operation: Operation, **arguments: Unpack[Arguments]) -> Reply:
        prepared = prepare(operation, **arguments)
        return interpret(prepared, await self.exchange(prepared))

    async def exchange(self, prepared: Prepared) -> httpx.Response:
        """Send the request, repeating it as far as its operation allows; the last answer."""
        attempts = _Attempts(prepared, self.retry)
        while True:
            outcome: httpx.Response | httpx.TransportError
            try:
                outcome = await self.http.request(**prepared.httpx_arguments())
            except httpx.TransportError as error:
                outcome = error
            step = attempts.settle(outcome)
            if isinstance(step, httpx.Response):
                return step
            await asyncio.sleep(step)

    async def aclose(self) -> None:
        await self.http.aclose()


class SyncCore:
    """Performs operations with an `httpx.Client` (see `TesseraSyncClient`)."""

    def __init__(self, config: CoreConfig[httpx.BaseTransport]) -> None:
        self.retry = config.retry
        self.http = httpx.Client(**config.client_arguments())

    def send(self, operation: Operation, **arguments: Unpack[Arguments]) -> Reply:
        prepared = prepare(operation, **arguments)
        return interpret(prepared, self.exchange(prepared))

    def exchange(self, prepared: Prepared) -> httpx.Response:
        """Send the request, repeating it as far as its operation allows; the last answer."""
        attempts = _Attempts(prepared, self.retry)
        while True:
            outcome: httpx.Response | httpx.TransportError
            try:
                outcome = self.http.request(**prepared.httpx_arguments())
            except httpx.TransportError as error:
                outcome = error
            step = attempts.settle(outcome)
            if isinstance(step, httpx.Response):
                return step
            time.sleep(step)

    def close(self) -> None:
        self.http.close()
