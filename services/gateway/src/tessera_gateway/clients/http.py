"""HTTP clients of the pass-through path: one interface, aiohttp (default) or httpx.

Why two: httpx is the house client between services, but its client layer
adds CPU per request on top of the transport (URL parsing, cookie handling,
header models), which on this path is more than everything else the gateway
does per request; aiohttp's C-accelerated client costs much less. BENCHMARKS.md
has the same-run numbers of both (`GATEWAY_UPSTREAM_CLIENT`). Both forward bytes as they are: no decompression,
no cookies, no redirects, no re-encoding of the request target.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Protocol

import aiohttp
import httpx
from yarl import URL

Headers = Sequence[tuple[str, str]]
RawHeaders = list[tuple[bytes, bytes]]

# Errors meaning the request never reached the upstream: safe to retry for any method.
# aiohttp's connect timeout is also a `TimeoutError`, so callers must test these
# before treating a `TimeoutError` as their own deadline.
CONNECT_ERRORS: tuple[type[BaseException], ...] = (
    aiohttp.ClientConnectorError,
    aiohttp.ConnectionTimeoutError,
    httpx.ConnectError,
    httpx.ConnectTimeout,
    ConnectionRefusedError,
)
# Errors of an exchange that may have reached the upstream (reset, bad response).
EXCHANGE_ERRORS: tuple[type[BaseException], ...] = (
    aiohttp.ClientError,
    httpx.TransportError,
    OSError,
)


class UpstreamResponse(Protocol):
    status: int
    headers: RawHeaders
    """As received; names in lower case."""
    content_length: int | None

    async def read(self) -> bytes: ...

    def chunks(self) -> AsyncIterator[bytes]: ...

    async def aclose(self) -> None: ...


class UpstreamClient(Protocol):
    async def request(
        self, method: str, target: str, headers: Headers, body: bytes | None
    ) -> UpstreamResponse:
        """Send one request; `target` is the raw path with its query, as received."""
        ...

    async def aclose(self) -> None: ...


def _content_length(headers: RawHeaders) -> int | None:
    for name, value in headers:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


class _AiohttpResponse:
    __slots__ = ("_response", "content_length", "headers", "status")

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self._response = response
        self.status = response.status
        self.headers = [(name.lower(), value) for name, value in response.raw_headers]
        self.content_length = _content_length(self.headers)

    async def read(self) -> bytes:
        return await self._response.read()

    async def chunks(self) -> AsyncIterator[bytes]:
        async for chunk in self._response.content.iter_any():
            yield chunk

    async def aclose(self) -> None:
        self._response.release()


class AiohttpClient:
    def __init__(
        self, base_url: str, *, max_connections: int, connect_timeout_s: float, keepalive_s: float
    ) -> None:
        self._base = base_url.rstrip("/")
        connector = aiohttp.TCPConnector(
            limit=max_connections, limit_per_host=0, keepalive_timeout=keepalive_s
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            auto_decompress=False,
            cookie_jar=aiohttp.DummyCookieJar(),
            # The deadline of each request is the proxy's (asyncio.timeout); only the
            # connect phase has its own, shorter limit.
            timeout=aiohttp.ClientTimeout(total=None, connect=connect_timeout_s),
            skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding", "Content-Type"),
        )

    async def request(
        self, method: str, target: str, headers: Headers, body: bytes | None
    ) -> UpstreamResponse:
        response = await self._session.request(
            method,
            # encoded=True: forward the target byte for byte, as the client sent it.
            URL(self._base + target, encoded=True),
            headers=headers,
            data=body,
            allow_redirects=False,
        )
        return _AiohttpResponse(response)

    async def aclose(self) -> None:
        await self._session.close()


class _HttpxResponse:
    __slots__ = ("_response", "content_length", "headers", "status")

    def __init__(self, response: httpx.Response) -> None:
        self._response = response
        self.status = response.status_code
        self.headers = [(name.lower(), value) for name, value in response.headers.raw]
        self.content_length = _content_length(self.headers)

    async def read(self) -> bytes:
        return b"".join([chunk async for chunk in self._response.aiter_raw()])

    async def chunks(self) -> AsyncIterator[bytes]:
        async for chunk in self._response.aiter_raw():
            yield chunk

    async def aclose(self) -> None:
        await self._response.aclose()


class HttpxClient:
    def __init__(
        self,
        base_url: str,
        *,
        max_connections: int,
        connect_timeout_s: float,
        keepalive_s: float,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._client = httpx.AsyncClient(
            base_url=base_url,
            transport=transport,
            # A small pool: httpcore scans every pooled connection per request
            # (encode/httpx#3215), so a large one costs CPU instead of saving it.
            limits=httpx.Limits(
                max_connections=max_connections,
                max_keepalive_connections=max_connections,
                keepalive_expiry=keepalive_s,
            ),
            timeout=httpx.Timeout(None, connect=connect_timeout_s),
            follow_redirects=False,
        )

    async def request(
        self, method: str, target: str, headers: Headers, body: bytes | None
    ) -> UpstreamResponse:
        request = self._client.build_request(method, target, headers=list(headers), content=body)
        response = await self._client.send(request, stream=True)
        return _HttpxResponse(response)

    async def aclose(self) -> None:
        await self._client.aclose()
