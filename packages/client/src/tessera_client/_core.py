"""The generic core: perform any `Operation`, with retries, over httpx.

`AsyncCore` and `SyncCore` differ only in how they wait; what a request is and
what an answer means is in `_request`, and when to repeat one in `_retry`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import Any, Final, TypeVar

import httpx
from pydantic import BaseModel
from tessera_contracts import Operation

from tessera_client._errors import TesseraConnectionError
from tessera_client._request import (
    Body,
    Params,
    Prepared,
    Reply,
    declared_answer,
    interpret,
    prepare,
)
from tessera_client._retry import RETRY_STATUSES, RetryConfig, may_retry

M = TypeVar("M", bound=BaseModel)

USER_AGENT: Final = "tessera-client/0.1"


def _auth_headers(api_key: str | None) -> dict[str, str]:
    headers = {"User-Agent": USER_AGENT}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    return headers


def _may_repeat(prepared: Prepared, response: httpx.Response) -> bool:
    """Whether the answer is a transient failure (a declared answer is not one)."""
    return response.status_code in RETRY_STATUSES and declared_answer(prepared, response) is None


def _typed(model: type[M], reply: Reply) -> M:
    if not isinstance(reply.value, model):
        raise TypeError(f"expected a {model.__name__} body, got {type(reply.value).__name__}")
    return reply.value


class AsyncCore:
    """Performs operations with an `httpx.AsyncClient` (see `TesseraClient`)."""

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None,
        timeout: float | httpx.Timeout,
        retry: RetryConfig,
        transport: httpx.AsyncBaseTransport | None,
    ) -> None:
        self.retry = retry
        self.http = httpx.AsyncClient(
            base_url=base_url, headers=_auth_headers(api_key), timeout=timeout, transport=transport
        )

    async def send(
        self,
        operation: Operation,
        *,
        path: Params = None,
        query: Params = None,
        headers: Params = None,
        body: Body = None,
        extra_headers: Mapping[str, str] | None = None,
    ) -> Reply:
        prepared = prepare(
            operation,
            path=path,
            query=query,
            headers=headers,
            body=body,
            extra_headers=extra_headers,
        )
        return interpret(prepared, await self.exchange(prepared))

    async def call_as(self, model: type[M], operation: Operation, **arguments: Any) -> M:
        return _typed(model, await self.send(operation, **arguments))

    async def exchange(self, prepared: Prepared) -> httpx.Response:
        """Send the request, repeating it as far as its operation allows; the last answer."""
        retryable = may_retry(prepared.operation, prepared)
        attempt = 0
        while True:
            response: httpx.Response | None = None
            try:
                response = await self.http.request(
                    prepared.method,
                    prepared.url,
                    params=prepared.params,
                    headers=prepared.headers,
                    content=prepared.content,
                )
            except httpx.LocalProtocolError:
                raise  # the request itself is malformed: repeating it cannot help
            except httpx.TransportError as error:
                if not retryable or attempt >= self.retry.max_retries:
                    raise TesseraConnectionError(prepared.operation, attempt + 1, error) from error
            else:
                if (
                    not retryable
                    or attempt >= self.retry.max_retries
                    or not _may_repeat(prepared, response)
                ):
                    return response
            pause = self.retry.pause(attempt, response)
            if pause is None:
                assert response is not None  # only an answer's `Retry-After` ends retries
                return response
            await asyncio.sleep(pause)
            attempt += 1

    async def aclose(self) -> None:
        await self.http.aclose()


class SyncCore:
    """Performs operations with an `httpx.Client` (see `TesseraSyncClient`)."""

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None,
        timeout: float | httpx.Timeout,
        retry: RetryConfig,
        transport: httpx.BaseTransport | None,
    ) -> None:
        self.retry = retry
        self.http = httpx.Client(
            base_url=base_url, headers=_auth_headers(api_key), timeout=timeout, transport=transport
        )

    def send(
        self,
        operation: Operation,
        *,
        path: Params = None,
        query: Params = None,
        headers: Params = None,
        body: Body = None,
        extra_headers: Mapping[str, str] | None = None,
    ) -> Reply:
        prepared = prepare(
            operation,
            path=path,
            query=query,
            headers=headers,
            body=body,
            extra_headers=extra_headers,
        )
        return interpret(prepared, self.exchange(prepared))

    def call_as(self, model: type[M], operation: Operation, **arguments: Any) -> M:
        return _typed(model, self.send(operation, **arguments))

    def exchange(self, prepared: Prepared) -> httpx.Response:
        """Send the request, repeating it as far as its operation allows; the last answer."""
        retryable = may_retry(prepared.operation, prepared)
        attempt = 0
        while True:
            response: httpx.Response | None = None
            try:
                response = self.http.request(
                    prepared.method,
                    prepared.url,
                    params=prepared.params,
                    headers=prepared.headers,
                    content=prepared.content,
                )
            except httpx.LocalProtocolError:
                raise  # the request itself is malformed: repeating it cannot help
            except httpx.TransportError as error:
                if not retryable or attempt >= self.retry.max_retries:
                    raise TesseraConnectionError(prepared.operation, attempt + 1, error) from error
            else:
                if (
                    not retryable
                    or attempt >= self.retry.max_retries
                    or not _may_repeat(prepared, response)
                ):
                    return response
            pause = self.retry.pause(attempt, response)
            if pause is None:
                assert response is not None  # only an answer's `Retry-After` ends retries
                return response
            time.sleep(pause)
            attempt += 1

    def close(self) -> None:
        self.http.close()
