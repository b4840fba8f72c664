"""The pass-through hot path: authorize, rate limit, forward, relay the bytes back.

`api/router.py` calls it straight from the ASGI request path, not as a FastAPI
endpoint: the gateway does not parse or validate what it forwards. Requests
are validated by the upstream, whose 4xx problem bodies reach the client as
they are, and responses come from our own services, so their bytes are relayed
without re-validation. That keeps the gateway's own CPU per request small,
which is what its throughput is made of (docs/gateway.md, performance).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Final

from starlette.types import Receive, Scope, Send
from tessera_contracts.operations import Retry
from tessera_runtime import request_id
from tessera_runtime.context import REQUEST_ID_HEADER

from tessera_gateway.clients.http import EXCHANGE_ERRORS, RawHeaders
from tessera_gateway.clients.upstream import Reply, Upstream
from tessera_gateway.domain.access import Access, Gatekeeper
from tessera_gateway.errors import ContentTooLarge

logger = logging.getLogger("tessera_gateway.api.proxy")

# Request headers that are the gateway's business, never the upstream's: hop-by-hop
# headers (RFC 9110 7.6.1), the client's credentials, and the correlation headers
# (replaced by this hop's own values from the request context).
_DROPPED_REQUEST_HEADERS: Final = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-authorization",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
        b"host",
        b"content-length",
        b"expect",
        b"authorization",
        b"x-api-key",
        b"cookie",
        b"x-request-id",
        b"traceparent",
    }
)
# Response headers set by this hop (date, server by uvicorn; the request id by the
# request middleware) or meaningful only on the upstream connection.
_DROPPED_RESPONSE_HEADERS: Final = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-authenticate",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
        b"date",
        b"server",
        b"x-request-id",
        b"set-cookie",
    }
)
_BODY_METHODS: Final = frozenset({"POST", "PUT", "PATCH"})


class ClientGone(Exception):
    """The client disconnected before its request was forwarded: nothing to answer."""


@dataclass(frozen=True, slots=True)
class Proxy:
    """Forwards one operation's requests to its upstream.

    Two phases, so a caller knows when a problem response is still possible:
    `exchange` (admission, body, upstream reply: raises `GatewayError`) and
    `relay` (the response is on its way: nothing raised here can be answered).
    """

    upstream: Upstream
    access: Access
    gatekeeper: Gatekeeper
    max_body_bytes: int
    retry: Retry = "never"
    """When a failed attempt may be repeated: the operation's `retry_policy`."""

    async def exchange(self, scope: Scope, receive: Receive) -> tuple[Reply, RawHeaders]:
        """Admit the request and get the upstream's reply; also return the headers to add.

        Raises:
            GatewayError: refused (401, 403, 413, 429) or the upstream failed (502-504).
            ClientGone: the client disconnected while sending its body.
        """
        limit_headers = self.gatekeeper.admit(scope, self.access)
        method: str = scope["method"]
        if method == "HEAD":
            # Sent on as the GET it stands for: our upstreams declare GET only, and
            # the client gets the GET's status and headers (`relay(body=False)`).
            method = "GET"
        body = await self._read_body(scope, receive) if method in _BODY_METHODS else None
        reply = await self.upstream.send(
            method,
            _target(scope),
            _upstream_headers(scope),
            body,
            retryable=_retryable(self.retry, scope),
        )
        return reply, limit_headers

    async def _read_body(self, scope: Scope, receive: Receive) -> bytes:
        limit = self.max_body_bytes
        for name, value in scope["headers"]:
            if name == b"content-length" and value.isdigit() and int(value) > limit:
                raise ContentTooLarge(f"the request body exceeds {limit} bytes")
        # Counted while it arrives: a chunked body (no Content-Length) or one longer
        # than it claimed is cut off at the limit, never buffered whole.
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise ClientGone
            chunk: bytes = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise ContentTooLarge(f"the request body exceeds {limit} bytes")
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    async def relay(
        self, reply: Reply, extra: RawHeaders, send: Send, *, body: bool = True
    ) -> None:
        """Send the reply to the client (its headers only unless `body`: for HEAD),
        then release it."""
        try:
            await self._relay(reply, extra, send, body)
        finally:
            await reply.aclose()

    async def _relay(self, reply: Reply, extra: RawHeaders, send: Send, body: bool) -> None:
        headers = [
            (name, value) for name, value in reply.headers if name not in _DROPPED_RESPONSE_HEADERS
        ]
        headers.extend(extra)
        await send({"type": "http.response.start", "status": reply.status, "headers": headers})
        if not body:
            # Content-Length stays the GET's; an unread stream is closed, not drained.
            await send({"type": "http.response.body", "body": b""})
            return
        if reply.body is not None:
            await send({"type": "http.response.body", "body": reply.body})
            return
        assert reply.stream is not None
        try:
            async for chunk in reply.stream.chunks():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        except EXCHANGE_ERRORS:
            # Too late for a problem response. Returning without the final message
            # makes the server close the connection, so the client sees a truncated
            # body instead of a complete-looking one.
            logger.warning("%s broke off a streamed response", self.upstream.name)
            return
        await send({"type": "http.response.body", "body": b""})


def _target(scope: Scope) -> str:
    """The request target for the upstream: the raw path (as the client encoded it,
    without the gateway's own root path) and query."""
    raw_path: bytes = scope["raw_path"] or scope["path"].encode()
    root = scope.get("root_path", "").encode()
    if root and raw_path.startswith(root):
        raw_path = raw_path[len(root) :]
    target = raw_path.decode("latin-1")
    query: bytes = scope["query_string"]
    return f"{target}?{query.decode('latin-1')}" if query else target


def _upstream_headers(scope: Scope) -> list[tuple[str, str]]:
    headers = [
        (name.decode("latin-1"), value.decode("latin-1"))
        for name, value in scope["headers"]
        if name not in _DROPPED_REQUEST_HEADERS
    ]
    # The traceparent is the attempt's own (added by `Upstream`, per attempt).
    headers.append((REQUEST_ID_HEADER, request_id() or ""))
    return headers


def _retryable(retry: Retry, scope: Scope) -> bool:
    if retry == "with_idempotency_key":
        # The owner stores Idempotency-Key results: a repeated request replays them.
        return any(name == b"idempotency-key" for name, _ in scope["headers"])
    return retry == "always"
