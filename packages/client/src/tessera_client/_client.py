"""`TesseraClient` (async) and `TesseraSyncClient`: the gateway's API, typed."""

from __future__ import annotations

from typing import Any, Generic, TypeVar, Unpack

import httpx
from tessera_contracts import Operation

from tessera_client._closing import AsyncClosing, SyncClosing
from tessera_client._core import AsyncCore, CoreConfig, SyncCore
from tessera_client._request import Arguments, Reply
from tessera_client._retry import RetryConfig
from tessera_client._versions import AsyncV1, AsyncV2, SyncV1, SyncV2

T = TypeVar("T", httpx.AsyncBaseTransport, httpx.BaseTransport)


class _Client(Generic[T]):
    """The constructor both clients share; `_start` opens the core of each."""

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
        transport: T | None = None,
    ) -> None:
        retry = RetryConfig(
            max_retries=max_retries,
            backoff_s=retry_backoff_s,
            backoff_max_s=retry_backoff_max_s,
            retry_after_max_s=retry_after_max_s,
        )
        self._start(CoreConfig(base_url, api_key, timeout, retry, transport))

    def _start(self, config: CoreConfig[T]) -> None:
        raise NotImplementedError


class TesseraClient(_Client[httpx.AsyncBaseTransport], AsyncClosing):
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

    v1: AsyncV1
    """The v1 operations, page iterators and live events."""
    v2: AsyncV2
    """The v2 operations (catalog and Open Inference Protocol) and page iterator."""

    def _start(self, config: CoreConfig[httpx.AsyncBaseTransport]) -> None:
        self._core = AsyncCore(config)
        self.v1 = AsyncV1(self._core)
        self.v2 = AsyncV2(self._core)

    async def send(self, operation: Operation, **arguments: Unpack[Arguments]) -> Reply:
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
        return await self._core.send(operation, **arguments)

    async def call(self, operation: Operation, **arguments: Unpack[Arguments]) -> Any:
        """`send(...)`, returning only the parsed body (None for 204)."""
        return (await self.send(operation, **arguments)).value

    async def aclose(self) -> None:
        await self._core.aclose()


class TesseraSyncClient(_Client[httpx.BaseTransport], SyncClosing):
    """The Tessera API over HTTP, blocking: `with TesseraSyncClient(url, api_key=k) as c:`.

    Takes the arguments of `TesseraClient` (with a sync `httpx.BaseTransport`).
    """

    def _start(self, config: CoreConfig[httpx.BaseTransport]) -> None:
        self._core = SyncCore(config)
        self.v1 = SyncV1(self._core)
        self.v2 = SyncV2(self._core)

    def send(self, operation: Operation, **arguments: Unpack[Arguments]) -> Reply:
        """Perform any operation; see `TesseraClient.send`."""
        return self._core.send(operation, **arguments)

    def call(self, operation: Operation, **arguments: Unpack[Arguments]) -> Any:
        """`send(...)`, returning only the parsed body (None for 204)."""
        return self.send(operation, **arguments).value

    def close(self) -> None:
        self._core.close()
