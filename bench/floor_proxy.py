"""The Python floor of a proxy: a raw ASGI app that forwards bytes, nothing else.

Run under uvicorn (uvloop, httptools) like the gateway, it forwards each request
to `FLOOR_UPSTREAM` through one aiohttp keep-alive pool and relays the answer:
no routing, auth, rate limits, metrics, logs or error rendering. What the gateway
costs above it is what its features cost; nothing in Python can forward for less.

    uvicorn bench.floor_proxy:create_app --factory
"""

from __future__ import annotations

import os
from typing import Any, Final

import aiohttp
from starlette.types import Receive, Scope, Send

# Hop-by-hop headers (RFC 9110 7.6.1) and those the server sets for this hop.
_DROPPED: Final = frozenset(
    {"connection", "keep-alive", "transfer-encoding", "host", "content-length", "date", "server"}
)


class FloorProxy:
    def __init__(self, upstream: str, max_connections: int = 100) -> None:
        self.upstream = upstream.rstrip("/")
        self.max_connections = max_connections
        self.session: aiohttp.ClientSession | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        body = b""
        more = True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        query = scope["query_string"].decode("latin-1")
        url = self.upstream + scope["raw_path"].decode("latin-1") + (f"?{query}" if query else "")
        headers = [
            (name.decode("latin-1"), value.decode("latin-1"))
            for name, value in scope["headers"]
            if name.decode("latin-1") not in _DROPPED
        ]
        assert self.session is not None
        async with self.session.request(
            scope["method"], url, headers=headers, data=body or None
        ) as response:
            content = await response.read()
            relayed: list[Any] = [
                (name.lower().encode("latin-1"), value.encode("latin-1"))
                for name, value in response.headers.items()
                if name.lower() not in _DROPPED
            ]
            await send(
                {"type": "http.response.start", "status": response.status, "headers": relayed}
            )
            await send({"type": "http.response.body", "body": content})

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                connector = aiohttp.TCPConnector(limit=self.max_connections)
                self.session = aiohttp.ClientSession(connector=connector, auto_decompress=False)
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self.session is not None:
                    await self.session.close()
                await send({"type": "lifespan.shutdown.complete"})
                return


def create_app() -> FloorProxy:
    return FloorProxy(os.environ["FLOOR_UPSTREAM"])
