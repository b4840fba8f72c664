"""Fixtures: the gateway in front of the real catalog and inference apps.

Every app runs under uvicorn in the test's event loop, on real sockets, so the
gateway's production path (aiohttp to its upstreams, the fast lane, SSE) is
what the tests exercise. PostgreSQL and NATS are real (tessera_stack.testing).
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import uvicorn
from pydantic import HttpUrl, PostgresDsn
from starlette.types import ASGIApp, Receive, Scope, Send
from tessera_catalog.app import create_app as create_catalog
from tessera_catalog.db.migrate import apply_migrations
from tessera_catalog.settings import Settings as CatalogSettings
from tessera_contracts.operations import CATALOG_READ, CATALOG_WRITE, INFERENCE_PREDICT
from tessera_gateway.app import create_app as create_gateway
from tessera_gateway.domain.auth import generate_key
from tessera_gateway.settings import Settings
from tessera_inference.app import create_app as create_inference
from tessera_inference.settings import Settings as InferenceSettings
from tessera_runtime.server import ServerSettings, server_config


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@asynccontextmanager
async def serve(
    app: ASGIApp, port: int = 0, settings: ServerSettings | None = None
) -> AsyncIterator[str]:
    """Run `app` under uvicorn (lifespan included) for the block; yield its base URL.

    It is configured as `python -m tessera_<name>` configures it (the services'
    protocol with its header limits and timeouts), from `settings` (a service's
    Settings; default: the ServerSettings defaults), on 127.0.0.1:`port`.
    """
    limits = (settings or ServerSettings()).model_copy(update={"host": "127.0.0.1", "port": port})
    server = uvicorn.Server(server_config(app, limits))
    task = asyncio.create_task(server.serve())
    deadline = time.monotonic() + 15
    while not server.started:
        if task.done():
            task.result()  # raises what stopped it
            raise RuntimeError("uvicorn stopped before it started")
        if time.monotonic() > deadline:
            raise TimeoutError("uvicorn did not start")
        await asyncio.sleep(0.01)
    bound = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{bound}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 15)


@dataclass(frozen=True)
class Keys:
    """API keys of several scopes, and the setting that configures them."""

    reader: str
    writer: str
    predictor: str
    setting: str

    @staticmethod
    def bearer(key: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {key}"}


@pytest.fixture(scope="session")
def keys() -> Keys:
    reader, reader_entry = generate_key("reader", [CATALOG_READ])
    writer, writer_entry = generate_key("writer", [CATALOG_READ, CATALOG_WRITE])
    predictor, predictor_entry = generate_key("predictor", [INFERENCE_PREDICT])
    setting = ",".join(e.to_setting() for e in (reader_entry, writer_entry, predictor_entry))
    return Keys(reader, writer, predictor, setting)


@pytest.fixture
async def catalog_settings(database_url: str, nats_url: str) -> CatalogSettings:
    await apply_migrations(database_url)
    return CatalogSettings(
        database_url=PostgresDsn(database_url),
        nats_url=nats_url,
        pool_min_size=1,
        pool_max_size=8,
        outbox_poll_interval_s=0.05,
        nats_reconnect_wait_s=0.1,
        nats_connect_timeout_s=0.5,
    )


@pytest.fixture
async def catalog_url(catalog_settings: CatalogSettings) -> AsyncIterator[str]:
    async with serve(create_catalog(catalog_settings)) as url:
        yield url


@pytest.fixture
async def inference_url(nats_url: str) -> AsyncIterator[str]:
    async with serve(create_inference(InferenceSettings(nats_url=nats_url))) as url:
        yield url


MakeGateway = Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]]


@pytest.fixture
def gateway_settings(keys: Keys, nats_url: str) -> Callable[..., Settings]:
    """Settings for a gateway; keyword arguments override fields."""

    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "api_keys": keys.setting,
            "nats_url": nats_url,
            "catalog_url": HttpUrl("http://127.0.0.1:9"),
            "inference_url": HttpUrl("http://127.0.0.1:9"),
            "events_ping_s": 0.5,
            "retry_backoff_s": 0.01,
        }
        values.update(overrides)
        return Settings(**values)

    return make


@pytest.fixture
def make_gateway(gateway_settings: Callable[..., Settings]) -> MakeGateway:
    """`async with make_gateway(**settings) as client:` a served gateway and a client to
    it; `clock=` sets the rate limiters' clock."""

    @asynccontextmanager
    async def running(
        clock: Callable[[], float] = time.monotonic, **overrides: Any
    ) -> AsyncIterator[httpx.AsyncClient]:
        app = create_gateway(gateway_settings(**overrides), clock=clock)
        async with serve(app) as url, httpx.AsyncClient(base_url=url, timeout=10) as client:
            yield client

    return running


@pytest.fixture
async def gateway(
    make_gateway: MakeGateway, catalog_url: str, inference_url: str
) -> AsyncIterator[httpx.AsyncClient]:
    """A gateway in front of the real catalog and inference apps."""
    async with make_gateway(
        catalog_url=HttpUrl(catalog_url), inference_url=HttpUrl(inference_url)
    ) as client:
        yield client


@dataclass
class Tap:
    """A "network" in front of a real upstream: it can delay requests, answer some
    with a canned status instead of forwarding them, and records what it saw.

    Not a stand-in for our services: every request it forwards is answered by the
    real app behind it.
    """

    upstream: str
    delay_s: float = 0.0
    fail_next: list[int] = field(default_factory=list)
    """Statuses to answer (one per request, in order) before forwarding again."""
    fail_body: bytes = b""
    seen: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)
    """(method, path, headers) of every request, forwarded or not."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        headers = {k.decode(): v.decode() for k, v in scope["headers"]}
        self.seen.append((scope["method"], scope["path"], headers))
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if self.fail_next:
            status = self.fail_next.pop(0)
            await send({"type": "http.response.start", "status": status, "headers": []})
            await send({"type": "http.response.body", "body": self.fail_body})
            return
        query = scope["query_string"].decode()
        url = self.upstream + scope["path"] + (f"?{query}" if query else "")
        forwarded = {k: v for k, v in headers.items() if k not in ("host", "content-length")}
        async with httpx.AsyncClient() as client:
            response = await client.request(scope["method"], url, headers=forwarded, content=body)
        await send(
            {
                "type": "http.response.start",
                "status": response.status_code,
                "headers": [
                    (k.encode(), v.encode())
                    for k, v in response.headers.items()
                    if k not in ("content-length", "transfer-encoding", "content-encoding")
                ],
            }
        )
        await send({"type": "http.response.body", "body": response.content})


class Clock:
    """A clock that moves only when a test moves it (`clock.now += 0.5`)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@asynccontextmanager
async def in_front_of(
    tap: Tap, make_gateway: MakeGateway, **settings: Any
) -> AsyncIterator[httpx.AsyncClient]:
    """A gateway (with these `settings`) whose catalog is `tap`, served on a port of its own."""
    async with (
        serve(tap) as tapped,
        make_gateway(catalog_url=HttpUrl(tapped), **settings) as gateway,
    ):
        yield gateway
