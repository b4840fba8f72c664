"""Service plumbing as the catalog uses it: readiness, metrics, the API surface."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import httpx
import pytest
from tessera_catalog.settings import Settings
from tessera_stack.postgres import create_database, drop_database

from .conftest import MakeProduct, Serve


def gauge(metrics: str, name: str) -> float:
    for line in metrics.splitlines():
        if line.startswith(f"{name} "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not in /metrics")


class TestReadiness:
    async def test_ready_with_database_and_schema(self, client: httpx.AsyncClient) -> None:
        response = await client.get("/readyz")

        assert response.status_code == 200
        assert response.json()["checks"] == {"postgres": "ok", "schema": "ok"}

    async def test_unmigrated_database_is_not_ready(
        self, serve: Serve, settings: Settings, postgres_dsn: str
    ) -> None:
        # A second, empty database: as before the migrations have run.
        name = f"unmigrated_{uuid.uuid4().hex[:12]}"
        empty = await create_database(postgres_dsn, name)
        try:
            async with serve(settings.model_copy(update={"database_url": empty})) as client:
                response = await client.get("/readyz")
        finally:
            await drop_database(postgres_dsn, name)

        assert response.status_code == 503
        assert response.json()["checks"]["postgres"] == "ok"
        assert response.json()["checks"]["schema"] != "ok"


class TestMetrics:
    async def test_pool_gauges_track_connections_in_use(
        self, client: httpx.AsyncClient, make_product: MakeProduct, migrated_url: str
    ) -> None:
        product = await make_product(features=None)
        quiet = (await client.get("/metrics")).text
        # Only the outbox relay may hold a connection now and then.
        assert gauge(quiet, "catalog_db_pool_in_use") <= 1
        assert gauge(quiet, "catalog_db_pool_max") == 8

        blocker = await asyncpg.connect(migrated_url)
        try:
            async with blocker.transaction():
                await blocker.execute("LOCK TABLE reviews, inventory IN ACCESS EXCLUSIVE MODE")
                # Two enriched requests each hold a reviews and an inventory connection, waiting.
                requests = [
                    asyncio.create_task(client.get(f"/v1/products/{product['id']}/enriched"))
                    for _ in range(2)
                ]
                await asyncio.sleep(0.2)
                busy = (await client.get("/metrics")).text
            await asyncio.gather(*requests)
        finally:
            await blocker.close()

        assert gauge(busy, "catalog_db_pool_in_use") >= 4
        assert gauge(busy, "catalog_db_pool_in_use") == gauge(busy, "catalog_db_pool_size") - gauge(
            busy, "catalog_db_pool_idle"
        )

    async def test_outbox_backlog_and_degraded_parts_are_exported(
        self, client: httpx.AsyncClient, make_product: MakeProduct
    ) -> None:
        product = await make_product()
        await client.get(f"/v1/products/{product['id']}/enriched")  # no inference: degraded

        metrics = (await client.get("/metrics")).text

        assert "catalog_outbox_pending " in metrics
        assert 'catalog_enriched_degraded_total{part="prediction"} 1.0' in metrics
        assert 'http_requests_total{method="POST",route="/v1/products",status="201"} 1.0' in metrics


class TestApiSurface:
    async def test_openapi_lists_every_route(self, client: httpx.AsyncClient) -> None:
        paths = (await client.get("/openapi.json")).json()["paths"]

        assert set(paths) >= {
            "/v1/products",
            "/v1/products/{product_id}",
            "/v1/products/{product_id}/reviews",
            "/v1/products/{product_id}/inventory",
            "/v1/products/{product_id}/enriched",
            "/v2/products",
            "/v2/products/{product_id}",
            "/v2/products/{product_id}/enriched",
        }
        assert set(paths["/v1/products/{product_id}/inventory"]) == {"get", "put"}
        assert set(paths["/v2/products/{product_id}"]) == {"get", "patch", "delete"}
        assert "412" in paths["/v1/products/{product_id}"]["patch"]["responses"]

    @pytest.mark.parametrize(
        ("method", "path"),
        [("PUT", "/v1/products"), ("POST", "/v2/products/00000000-0000-0000-0000-000000000000")],
    )
    async def test_wrong_method_is_405_problem(
        self, client: httpx.AsyncClient, method: str, path: str
    ) -> None:
        response = await client.request(method, path)

        assert response.status_code == 405
        assert response.headers["content-type"] == "application/problem+json"

    async def test_non_json_body_is_422_not_500(self, client: httpx.AsyncClient) -> None:
        response = await client.post(
            "/v1/products", content=b"sku=A", headers={"content-type": "text/plain"}
        )

        assert response.status_code == 422


class TestDatabaseTrouble:
    async def test_no_free_connection_is_503_with_retry_after(
        self, serve: Serve, settings: Settings, make_product: MakeProduct, migrated_url: str
    ) -> None:
        product = await make_product()
        tight = settings.model_copy(
            update={"pool_min_size": 1, "pool_max_size": 1, "pool_acquire_timeout_s": 0.2}
        )
        blocker = await asyncpg.connect(migrated_url)
        try:
            async with serve(tight) as client:
                async with blocker.transaction():
                    await blocker.execute("LOCK TABLE reviews IN ACCESS EXCLUSIVE MODE")
                    # This request holds the pool's only connection, waiting for the lock.
                    stuck = asyncio.create_task(client.get(f"/v1/products/{product['id']}/reviews"))
                    await asyncio.sleep(0.2)
                    response = await client.get(f"/v1/products/{product['id']}")
                assert (await stuck).status_code == 200
        finally:
            await blocker.close()

        assert response.status_code == 503
        assert response.json()["title"] == "DatabaseUnavailable"
        assert response.headers["retry-after"] == "1"

    async def test_statement_timeout_is_503_not_500(
        self, serve: Serve, settings: Settings, make_product: MakeProduct, migrated_url: str
    ) -> None:
        await make_product()
        impatient = settings.model_copy(update={"statement_timeout_s": 0.2})
        blocker = await asyncpg.connect(migrated_url)
        try:
            async with serve(impatient) as client, blocker.transaction():
                await blocker.execute("LOCK TABLE products IN ACCESS EXCLUSIVE MODE")
                response = await client.get("/v1/products")
        finally:
            await blocker.close()

        assert response.status_code == 503
        assert response.json()["title"] == "DatabaseUnavailable"
