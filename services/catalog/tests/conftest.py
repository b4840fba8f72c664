"""Fixtures: the catalog app in memory over ASGI, on a real PostgreSQL and nats-server."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, TypeAlias

import asyncpg
import httpx
import nats
import pytest
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext
from pydantic import PostgresDsn
from tessera_catalog.app import create_app
from tessera_catalog.db.migrate import apply_migrations
from tessera_catalog.settings import Settings
from tessera_stack.testing import Json, WaitUntil, asgi_client, product_body

from .outbox import Outbox

MakeProduct = Callable[..., Awaitable[Json]]
ProductBody = Callable[..., Json]
Serve = Callable[[Settings], AbstractAsyncContextManager[httpx.AsyncClient]]
Db: TypeAlias = "asyncpg.Connection[asyncpg.Record]"


@pytest.fixture
async def migrated_url(database_url: str) -> str:
    await apply_migrations(database_url)
    return database_url


@pytest.fixture
def settings(migrated_url: str, nats_url: str) -> Settings:
    # Short waits so outage tests recover within a second or two. The enriched view's
    # budgets are generous: no test that uses these settings means to hit them, and a
    # busy CI machine can take longer than a tight budget to open a pool connection.
    # Tests of the budgets themselves tighten them (test_enriched.TestEnrichedDegraded).
    return Settings(
        database_url=PostgresDsn(migrated_url),
        nats_url=nats_url,
        pool_min_size=1,
        pool_max_size=8,
        outbox_poll_interval_s=0.05,
        outbox_backoff_max_s=0.3,
        nats_reconnect_wait_s=0.1,
        nats_connect_timeout_s=0.5,
        part_timeout_s=3.0,
        product_timeout_s=3.0,
        prediction_timeout_s=3.0,
    )


@pytest.fixture
def serve() -> Serve:
    """Run a catalog app with `settings` for the `async with` block; yields a client to it."""

    def running(settings: Settings) -> AbstractAsyncContextManager[httpx.AsyncClient]:
        return asgi_client(create_app(settings), "http://catalog", lifespan_timeout_s=10)

    return running


@pytest.fixture
async def client(serve: Serve, settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with serve(settings) as c:
        yield c


@asynccontextmanager
async def db_connection(dsn: str) -> AsyncIterator[Db]:
    """A direct connection to `dsn` for the block."""
    connection = await asyncpg.connect(dsn)
    try:
        yield connection
    finally:
        await connection.close()


@pytest.fixture
async def db(migrated_url: str) -> AsyncIterator[Db]:
    """A direct connection, to look behind the API."""
    async with db_connection(migrated_url) as connection:
        yield connection


@pytest.fixture
def outbox(db: Db, nats_url: str, wait_until: WaitUntil) -> Outbox:
    """The outbox (through `db`) and stream CATALOG (on the test's NATS server)."""
    return Outbox(db, nats_url, wait_until)


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


@pytest.fixture(name="product_body")
def product_body_fixture() -> ProductBody:
    """A valid v1 create body; keyword arguments replace fields."""
    return product_body


@pytest.fixture
def make_product(client: httpx.AsyncClient) -> MakeProduct:
    """Create a product over the v1 API and return its JSON."""
    counter = iter(range(1, 1_000_000))

    async def make(**overrides: Any) -> Json:
        overrides.setdefault("sku", f"TSR-{next(counter):04d}")
        response = await client.post("/v1/products", json=product_body(**overrides))
        assert response.status_code == 201, response.text
        created: Json = response.json()
        return created

    return make
