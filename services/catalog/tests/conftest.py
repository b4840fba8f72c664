"""Fixtures: the catalog app in memory over ASGI, on a real PostgreSQL and nats-server."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import asyncpg
import httpx
import nats
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext
from pydantic import PostgresDsn
from tessera_catalog.app import create_app
from tessera_catalog.db.migrate import apply_migrations
from tessera_catalog.settings import Settings

# Rows of scikit-learn's breast-cancer data (10 "mean" features).
MALIGNANT = [17.99, 10.38, 122.8, 1001.0, 0.1184, 0.2776, 0.3001, 0.1471, 0.2419, 0.07871]

Json = dict[str, Any]
MakeProduct = Callable[..., Awaitable[Json]]
ProductBody = Callable[..., Json]
Serve = Callable[[Settings], AbstractAsyncContextManager[httpx.AsyncClient]]
WaitUntil = Callable[..., Awaitable[None]]


async def _wait_until(
    predicate: Callable[[], Awaitable[bool]], timeout_s: float = 10.0, what: str = "condition"
) -> None:
    deadline = time.monotonic() + timeout_s
    while not await predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_s}s waiting for {what}")
        await asyncio.sleep(0.02)


@pytest.fixture
def wait_until() -> WaitUntil:
    """`await wait_until(async_predicate, timeout_s=10, what="...")`: poll until true, else fail."""
    return _wait_until


@pytest.fixture
async def migrated_url(database_url: str) -> str:
    await apply_migrations(database_url)
    return database_url


@pytest.fixture
def settings(migrated_url: str, nats_url: str) -> Settings:
    # Short waits so outage tests recover within a second or two.
    return Settings(
        database_url=PostgresDsn(migrated_url),
        nats_url=nats_url,
        pool_min_size=1,
        pool_max_size=8,
        outbox_poll_interval_s=0.05,
        outbox_backoff_max_s=0.3,
        nats_reconnect_wait_s=0.1,
        nats_connect_timeout_s=0.5,
        part_timeout_s=0.5,
        product_timeout_s=0.5,
        prediction_timeout_s=0.5,
    )


@pytest.fixture
def serve() -> Serve:
    """Run a catalog app with `settings` for the `async with` block; yields a client to it."""

    @asynccontextmanager
    async def running(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
        app: FastAPI = create_app(settings)
        async with (
            LifespanManager(app, startup_timeout=10, shutdown_timeout=10) as manager,
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=manager.app), base_url="http://catalog"
            ) as client,
        ):
            yield client

    return running


@pytest.fixture
async def client(serve: Serve, settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with serve(settings) as c:
        yield c


@pytest.fixture
async def db(migrated_url: str) -> AsyncIterator[asyncpg.Connection[asyncpg.Record]]:
    """A direct connection, to look behind the API."""
    connection = await asyncpg.connect(migrated_url)
    try:
        yield connection
    finally:
        await connection.close()


@pytest.fixture
async def nc(nats_url: str) -> AsyncIterator[NATS]:
    """A test's own NATS client (responders, stream readers)."""
    client = await nats.connect(nats_url)
    try:
        yield client
    finally:
        await client.drain()


@pytest.fixture
def js(nc: NATS) -> JetStreamContext:
    return nc.jetstream()


def _product_body(sku: str = "TSR-0001", **overrides: Any) -> Json:
    body: Json = {
        "sku": sku,
        "name": "Oak Desk Lamp",
        "description": "A warm reading lamp made from oak.",
        "category": "home",
        "price": 49.99,
        "currency": "USD",
        "features": list(MALIGNANT),
    }
    body.update(overrides)
    return body


@pytest.fixture
def product_body() -> ProductBody:
    """A valid v1 create body; keyword arguments replace fields."""
    return _product_body


@pytest.fixture
def make_product(client: httpx.AsyncClient) -> MakeProduct:
    """Create a product over the v1 API and return its JSON."""
    counter = iter(range(1, 1_000_000))

    async def make(**overrides: Any) -> Json:
        overrides.setdefault("sku", f"TSR-{next(counter):04d}")
        response = await client.post("/v1/products", json=_product_body(**overrides))
        assert response.status_code == 201, response.text
        created: Json = response.json()
        return created

    return make
