"""`TesseraClient` (async) and `TesseraSyncClient`: the gateway's API, typed."""

from __future__ import annotations

from collections.abc import Mapping
from types import TracebackType
from typing import Any, Self, TypeVar

import httpx
from pydantic import BaseModel
from tessera_contracts import Operation

from tessera_client._core import AsyncCore, SyncCore
from tessera_client._request import Body, Params, Reply
from tessera_client._retry import RetryConfig
from tessera_client._versions import AsyncV1, AsyncV2, SyncV1, SyncV2

M = TypeVar("M", bound=BaseModel)


class TesseraClient:
    """The Tessera API over HTTP, async: `async with TesseraClient(url, api_key=k) as c:`.

    Args:
        base_url: The gateway, e.g. `http://127.0.0.1:8000`.
        api_key: Sent as `Authorization: Bearer <key>`; None for anonymous reads.
        timeout: Per attempt (an `httpx.Timeout` sets each phase).
        max_retries: Attempts after the first, for operations safe to repeat.
        retry_backoff_s: Base of the exponential backoff between attempts.
        retry_backoff_max_s: Longest backoff pause.
        retry_after_max_s: Longest `Retry-After` waited for (a longer one raises the
            error at once), and longest SSE `retry:` pause.
        transport: An httpx transport (tests, proxies, HTTP/2).
    """

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        timeout: float | httpx.Timeout = 10.0,
        max_retries: int = 2,
        retry_backoff_s: float = 0.1,
        retry_backoff_max_s: float = 2.0,
        retry_after_max_s: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._core = AsyncCore(
            base_url,
            api_key=api_key,
            timeout=timeout,
            retry=RetryConfig(
                max_retries=max_retries,
                backoff_s=retry_backoff_s,
                backoff_max_s=retry_backoff_max_s,
                retry_after_max_s=retry_after_max_s,
            ),
            transport=transport,
        )
        self.v1 = AsyncV1(self._core)
        """The v1 operations, page iterators and live events."""
        self.v2 = AsyncV2(self._core)
        """The v2 operations (catalog and Open Inference Protocol) and page iterator."""

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
        """Perform any operation (one declared ad hoc included); the reply with its headers.

        Args:
            operation: What to perform.
            path: Path parameters by name (or a path model instance).
            query: Query parameters by name; None values are left out.
            headers: The operation's headers by field name or alias.
            body: A body model (only its set fields are sent) or JSON sent as is.
            extra_headers: Further request headers (`X-Request-ID` wins over the context's).

        Raises:
            TesseraError: an error answer.
            NotModified: 304 to a conditional GET.
            TesseraConnectionError: no answer, after the retries the operation allows.
            TypeError: a parameter the operation does not declare.
            pydantic.ValidationError: a parameter its model refuses.
        """
        return await self._core.send(
            operation,
            path=path,
            query=query,
            headers=headers,
            body=body,
            extra_headers=extra_headers,
        )

    async def call(
        self,
        operation: Operation,
        *,
        path: Params = None,
        query: Params = None,
        headers: Params = None,
        body: Body = None,
        extra_headers: Mapping[str, str] | None = None,
    ) -> Any:
        """`send(...)`, returning only the parsed body (None for 204)."""
        reply = await self.send(
            operation,
            path=path,
            query=query,
            headers=headers,
            body=body,
            extra_headers=extra_headers,
        )
        return reply.value

    async def aclose(self) -> None:
        await self._core.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


class TesseraSyncClient:
    """The Tessera API over HTTP, blocking: `with TesseraSyncClient(url, api_key=k) as c:`.

    Takes the arguments of `TesseraClient` (with a sync `httpx.BaseTransport`).
    """

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        timeout: float | httpx.Timeout = 10.0,
        max_retries: int = 2,
        retry_backoff_s: float = 0.1,
        retry_backoff_max_s: float = 2.0,
        retry_after_max_s: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._core = SyncCore(
            base_url,
            api_key=api_key,
            timeout=timeout,
            retry=RetryConfig(
                max_retries=max_retries,
                backoff_s=retry_backoff_s,
                backoff_max_s=retry_backoff_max_s,
                retry_after_max_s=retry_after_max_s,
            ),
            transport=transport,
        )
        self.v1 = SyncV1(self._core)
        """The v1 operations, page iterators and live events."""
        self.v2 = SyncV2(self._core)
        """The v2 operations (catalog and Open Inference Protocol) and page iterator."""

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
        """Perform any operation; see `TesseraClient.send`."""
        return self._core.send(
            operation,
            path=path,
            query=query,
            headers=headers,
            body=body,
            extra_headers=extra_headers,
        )

    def call(
        self,
        operation: Operation,
        *,
        path: Params = None,
        query: Params = None,
        headers: Params = None,
        body: Body = None,
        extra_headers: Mapping[str, str] | None = None,
    ) -> Any:
        """`send(...)`, returning only the parsed body (None for 204)."""
        reply = self.send(
            operation,
            path=path,
            query=query,
            headers=headers,
            body=body,
            extra_headers=extra_headers,
        )
        return reply.value

    def close(self) -> None:
        self._core.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
