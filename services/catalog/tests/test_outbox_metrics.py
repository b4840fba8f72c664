"""`catalog_outbox_pending` and `catalog_outbox_lag_seconds`: the database's backlog, whatever
the relay is doing, in every replica; and the catalog's per-operation metrics."""

from __future__ import annotations

import math
from uuid import uuid4

import httpx
import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.openmetrics.parser import text_string_to_metric_families
from tessera_catalog.metrics import CatalogMetrics
from tessera_catalog.settings import Settings
from tessera_stack.testing import NatsServer, WaitUntil

from .conftest import Db, Serve
from .outbox import Outbox, wait_nats_connected
from .test_outbox_relay import LONG_BACKOFF, Catalog, create, metrics_page, sample
from .test_outbox_relay import catalog as catalog  # the fixture

OPENMETRICS = "application/openmetrics-text; version=1.0.0"
QUICK_COUNT = {"outbox_pending_refresh_s": 0.05}
AN_HOUR_S = 3600.0


async def backlog(client: httpx.AsyncClient) -> tuple[float, float]:
    """(catalog_outbox_pending, catalog_outbox_lag_seconds) of one scrape."""
    page = await metrics_page(client)
    return sample(page, "catalog_outbox_pending"), sample(page, "catalog_outbox_lag_seconds")


async def insert_old_event(db: Db, age_s: float) -> None:
    """An event another writer committed `age_s` ago and nobody published."""
    await db.execute(
        "INSERT INTO outbox (event_id, subject, payload, created_at)"
        " VALUES ($1, 'catalog.v1.product.created', '{}', now() - make_interval(secs => $2))",
        str(uuid4()),
        age_s,
    )


def test_the_backlog_is_unknown_until_counted() -> None:
    # Not 0: a catalog that has not counted yet does not know there is no backlog.
    registry = CollectorRegistry()
    CatalogMetrics(registry)

    pending = registry.get_sample_value("catalog_outbox_pending")
    lag = registry.get_sample_value("catalog_outbox_lag_seconds")
    assert pending is not None
    assert lag is not None
    assert math.isnan(pending)
    assert math.isnan(lag)


@pytest.mark.embedded_nats
class TestBacklogWhileNatsIsDown:
    async def test_pending_and_lag_are_the_rows_pending_in_the_database(
        self,
        catalog: Catalog,
        nats_server: NatsServer,
        outbox: Outbox,
        db: Db,
        wait_until: WaitUntil,
    ) -> None:
        async with catalog(**LONG_BACKOFF, **QUICK_COUNT) as client:
            await create(client, "BEFORE")
            await outbox.wait_published("first event published")
            await wait_until(lambda: _is(client, (0.0, 0.0)), what="no backlog before the outage")

            nats_server.stop()
            await insert_old_event(db, AN_HOUR_S)
            for i in range(2):
                await create(client, f"DURING-{i}")

            async def counted() -> bool:
                pending, lag = await backlog(client)
                return pending == await outbox.pending() == 3 and lag >= AN_HOUR_S

            await wait_until(counted, what="the three pending rows and their age in /metrics")
            _, lag = await backlog(client)
            assert lag < AN_HOUR_S + 60  # the row's age, not time since some other start

            nats_server.start()
            await outbox.wait_published("backlog published after NATS came back")
            await wait_until(lambda: _is(client, (0.0, 0.0)), what="pending and lag back to 0")

    async def test_lag_grows_while_the_relay_cannot_publish(
        self, catalog: Catalog, nats_server: NatsServer, outbox: Outbox, wait_until: WaitUntil
    ) -> None:
        async with catalog(**LONG_BACKOFF, **QUICK_COUNT) as client:
            nats_server.stop()
            await create(client, "STUCK")

            async def first_count() -> bool:
                return (await backlog(client))[0] == 1

            await wait_until(first_count, what="the pending event counted")
            _, first_lag = await backlog(client)

            async def grown() -> bool:
                return (await backlog(client))[1] > first_lag + 0.2

            await wait_until(grown, what="the lag growing while NATS is down")
            assert await outbox.pending() == 1

    async def test_every_replica_reports_the_shared_backlog(
        self,
        serve: Serve,
        settings: Settings,
        nats_server: NatsServer,
        outbox: Outbox,
        wait_until: WaitUntil,
    ) -> None:
        replica = settings.model_copy(update=LONG_BACKOFF | QUICK_COUNT)
        async with serve(replica) as first, serve(replica) as second:
            await wait_nats_connected(first, wait_until)
            await wait_nats_connected(second, wait_until)
            nats_server.stop()
            # Written through one replica; the other one may be the one relaying.
            for i in range(3):
                await create(first, f"REPLICA-{i}")

            async def both_count_three() -> bool:
                counts = [(await backlog(client))[0] for client in (first, second)]
                return counts == [3.0, 3.0] and await outbox.pending() == 3

            await wait_until(both_count_three, what="both replicas reporting the 3 rows")

            nats_server.start()
            await outbox.wait_published("backlog published after NATS came back")

            async def both_drained() -> bool:
                return [await backlog(c) for c in (first, second)] == [(0.0, 0.0)] * 2

            await wait_until(both_drained, what="both replicas reporting no backlog")


async def _is(client: httpx.AsyncClient, expected: tuple[float, float]) -> bool:
    return await backlog(client) == expected


class TestCatalogOperations:
    async def test_operations_are_counted_under_the_catalog_service(self, catalog: Catalog) -> None:
        async with catalog() as client:
            for i in range(2):
                await create(client, f"OP-{i}")
            await client.get(f"/v1/products/{uuid4()}")  # 404: a request, not an error
            page = await metrics_page(client)
            openmetrics = await client.get("/metrics", headers={"Accept": OPENMETRICS})

        assert (
            sample(
                page,
                'tessera_operation_requests_total{operation="v1_create_product",'
                'service="catalog",status="201"}',
            )
            == 2
        )
        assert (
            sample(
                page,
                'tessera_operation_requests_total{operation="v1_get_product",'
                'service="catalog",status="404"}',
            )
            == 1
        )
        assert "tessera_operation_errors_total{" not in page
        # Every family of the catalog's registry is valid OpenMetrics too (the parser checks).
        families = text_string_to_metric_families(openmetrics.text)  # type: ignore[no-untyped-call]
        assert "catalog_outbox_lag_seconds" in {family.name for family in families}
