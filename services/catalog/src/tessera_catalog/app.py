"""The catalog service's app factory; run it with `python -m tessera_catalog` (port 8001)."""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TypedDict

import asyncpg
from asyncpg.pool import PoolConnectionProxy
from fastapi import FastAPI, Request
from fastapi.responses import Response
from prometheus_client import CollectorRegistry
from tessera_runtime import (
    ReadinessCheck,
    configure_error_tracking,
    configure_logging,
    configure_tracing,
    create_service_app,
    problem_response,
)
from tessera_runtime.messaging import NatsConnection

from tessera_catalog import __version__
from tessera_catalog.api import ROUTERS
from tessera_catalog.db.migrate import is_applied, load_migrations
from tessera_catalog.db.records import Pool, acquire, ping
from tessera_catalog.domain.enriched import Enricher
from tessera_catalog.domain.inventory import Inventories
from tessera_catalog.domain.products import Products
from tessera_catalog.domain.reviews import Reviews
from tessera_catalog.errors import DatabaseUnavailable, InvalidValue
from tessera_catalog.messaging.inference import InferenceClient
from tessera_catalog.messaging.relay import OutboxRelay
from tessera_catalog.messaging.stream import CatalogStream
from tessera_catalog.metrics import CatalogMetrics, PoolCollector
from tessera_catalog.settings import Settings

logger = logging.getLogger("tessera_catalog")

DESCRIPTION = """\
Products, reviews and inventory on PostgreSQL; internal (the gateway publishes it).

* **v1**: offset pages with `total`, prices as floats.
* **v2**: keyset cursors, prices as exact `{amount, currency}`, predictions with probabilities.
* `limit` above 100 is served as 100. Creates accept `Idempotency-Key`; `PATCH` and
  `DELETE` accept `If-Match` with the ETag from a `GET` (412 when it no longer matches).
* Every change is published as a CloudEvent on JetStream stream `CATALOG`.
"""

_POOL_CLOSE_TIMEOUT_S = 10.0


class State(TypedDict):
    settings: Settings
    pool: Pool
    nats: NatsConnection
    products: Products
    reviews: Reviews
    inventories: Inventories
    enricher: Enricher


async def _keep_session(connection: asyncpg.Connection[asyncpg.Record]) -> None:
    """Pool reset: nothing to do beyond asyncpg's own rollback of an open transaction.

    The default reset sends `RESET ALL; UNLISTEN *; ...` on every release, one
    extra round trip that each request waits for. Pool connections never carry
    session state here (no SET, LISTEN, cursors or session advisory locks: the
    relay listens on its own connection and takes transaction-scoped locks).
    """


@asynccontextmanager
async def _acquire(request: Request) -> AsyncIterator[PoolConnectionProxy[asyncpg.Record]]:
    settings: Settings = request.state.settings
    try:
        async with acquire(request.state.pool, settings.pool_acquire_timeout_s) as conn:
            yield conn
    except DatabaseUnavailable as exc:
        # /readyz names what failed (refused, starting up, ...), not the 503's advice.
        raise (exc.__cause__ or exc) from None


async def _postgres_ready(request: Request) -> None:
    async with _acquire(request) as conn:
        await ping(conn)


@functools.cache
def _newest_migration() -> str:
    # Read from the package once: the checks run every second, on the event loop.
    return load_migrations()[-1].name


async def _schema_ready(request: Request) -> None:
    # Until the migrations have run, this version's queries would fail: not ready.
    newest = _newest_migration()
    async with _acquire(request) as conn:
        applied = await is_applied(conn, newest)
    if not applied:
        raise RuntimeError(f"migration {newest} is not applied; run `tessera migrate`")


async def _nats_ready(request: Request) -> None:
    nats: NatsConnection = request.state.nats
    if not nats.connected:
        raise ConnectionError(f"not connected to {nats.url}")


async def _invalid_value(request: Request, exc: Exception) -> Response:
    # A value the contracts allow but PostgreSQL refuses: the last line of
    # defence, as known limits are checked earlier with field locations.
    error = InvalidValue(f"a value was refused by the database: {exc}")
    return problem_response(error.to_problem(instance=request.url.path))


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    configure_logging("catalog", settings.log_level, flush_interval_s=settings.log_flush_interval_s)
    configure_error_tracking("catalog", __version__, settings.sentry_dsn)
    configure_tracing("catalog", __version__)
    current_pool: list[Pool] = []
    # One registry per app, created here so the service's metrics exist before it runs.
    registry = CollectorRegistry()
    metrics = CatalogMetrics(registry)
    registry.register(PoolCollector(lambda: current_pool[0] if current_pool else None))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[State]:
        pool = await asyncpg.create_pool(
            str(settings.database_url),
            min_size=settings.pool_min_size,
            max_size=settings.pool_max_size,
            reset=_keep_session,
            server_settings={
                "application_name": "tessera-catalog",
                "statement_timeout": str(int(settings.statement_timeout_s * 1000)),
            },
        )
        nats = NatsConnection(
            settings.nats_url, name="tessera-catalog", timing=settings.nats_timing
        )
        metrics.nats_connected.set_function(lambda: float(nats.connected))
        stream = CatalogStream(nats.jetstream, settings)
        relay = OutboxRelay(pool, nats, stream, settings, metrics)
        # On every (re)connect: the stream first (a restarted NATS may have lost
        # it), then the relay, which publishes into it.
        nats.on_connected(stream.ensure_quietly)
        nats.on_connected(relay.nats_connected)
        inference = InferenceClient(nats, settings.prediction_timeout_s)
        current_pool.append(pool)
        # Both run in the background: HTTP serves while NATS is still (or again) down.
        nats.start()
        relay.start()
        try:
            yield {
                "settings": settings,
                "pool": pool,
                "nats": nats,
                "products": Products(pool, settings),
                "reviews": Reviews(pool, settings),
                "inventories": Inventories(pool, settings),
                "enricher": Enricher(pool, inference, settings, metrics),
            }
        finally:
            # Requests have finished (uvicorn drains before lifespan shutdown).
            # The relay publishes the events they committed first, while NATS
            # is open, for at most outbox_shutdown_grace_s.
            await relay.stop()
            await nats.close()
            current_pool.clear()
            try:
                async with asyncio.timeout(_POOL_CLOSE_TIMEOUT_S):
                    await pool.close()
            except TimeoutError:
                pool.terminate()

    checks = [ReadinessCheck("postgres", _postgres_ready), ReadinessCheck("schema", _schema_ready)]
    if settings.nats_required_for_readiness:
        checks.append(ReadinessCheck("nats", _nats_ready))
    app = create_service_app(
        title="catalog",
        version=__version__,
        lifespan=lifespan,
        routers=ROUTERS,
        registry=registry,
        readiness_checks=checks,
        description=DESCRIPTION,
    )
    # A database outage needs no handler here: db.records.acquire and
    # db.records.transaction translate it where it happens (503 with Retry-After).
    for refused in (asyncpg.DataError, asyncpg.CheckViolationError):
        app.add_exception_handler(refused, _invalid_value)
    return app
