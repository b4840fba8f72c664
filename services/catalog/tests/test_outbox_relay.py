"""The outbox relay through outages: backoff and recovery, NOTIFY, true metrics, shutdown flush.

NATS outages stop and restart the embedded nats-server. PostgreSQL outages stop
and restart a proxy between the catalog and the real server (`pg_proxy`): the
catalog sees refused connects and dropped sessions, as when PostgreSQL restarts,
while the test keeps its own direct connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import nats
import nats.js.errors
import pytest
from nats.js import JetStreamContext
from tessera_catalog.messaging.backoff import Backoff
from tessera_catalog.messaging.relay import LISTENER_APPLICATION_NAME
from tessera_catalog.settings import Settings
from tessera_contracts import v1
from tessera_stack.testing import NatsServer, WaitUntil

from .conftest import Db, Serve
from .outbox import Outbox, wait_nats_connected
from .pg_proxy import PostgresProxy, through
from .pg_proxy import postgres_proxy_fixture as postgres_proxy_fixture

# Longer than any bound asserted below: a relay that sat out its backoff fails them.
LONG_BACKOFF = {"outbox_backoff_initial_s": 20.0, "outbox_backoff_max_s": 20.0}


def sample(metrics: str, name: str) -> float:
    """The value of sample `name` (with its labels) in a /metrics page; 0 when absent."""
    for line in metrics.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    return 0.0


def failures(metrics: str) -> float:
    return sum(
        float(line.split()[-1])
        for line in metrics.splitlines()
        if line.startswith("catalog_outbox_publish_failures_total{")
    )


async def create(client: httpx.AsyncClient, sku: str, timeout_s: float = 10.0) -> None:
    """POST a product, retrying the 503s of a catalog whose pool is reconnecting."""
    deadline = time.monotonic() + timeout_s
    body = {"sku": sku, "name": "Lamp", "category": "home", "price": 1}
    while (response := await client.post("/v1/products", json=body)).status_code == 503:
        assert time.monotonic() < deadline, response.text
        await asyncio.sleep(0.05)
    assert response.status_code == 201, response.text


async def metrics_page(client: httpx.AsyncClient) -> str:
    return (await client.get("/metrics")).text


@contextlib.asynccontextmanager
async def timed(bound_s: float, what: str) -> AsyncIterator[None]:
    """Fail unless the block ends within `bound_s` (a behavioural bound, not a speed test)."""
    started = time.monotonic()
    yield
    elapsed = time.monotonic() - started
    assert elapsed < bound_s, f"{what} took {elapsed:.1f}s (bound {bound_s}s)"


Catalog = Callable[..., contextlib.AbstractAsyncContextManager[httpx.AsyncClient]]


@pytest.fixture
def catalog(serve: Serve, settings: Settings, wait_until: WaitUntil) -> Catalog:
    """`catalog(**changes)`: serve it with these settings changed; yields its client once
    the catalog is connected to NATS (what every relay test starts from)."""

    @contextlib.asynccontextmanager
    async def running(**changes: Any) -> AsyncIterator[httpx.AsyncClient]:
        async with serve(settings.model_copy(update=changes)) as client:
            await wait_nats_connected(client, wait_until)
            yield client

    return running


class TestBackoff:
    def test_pauses_double_up_to_the_cap_with_jitter_and_start_over_after_reset(self) -> None:
        backoff = Backoff(0.1, 1.0)

        pauses = [backoff.next_pause() for _ in range(8)]
        steps = [0.1, 0.2, 0.4, 0.8, 1.0, 1.0, 1.0, 1.0]
        assert all(step / 2 <= pause <= step for pause, step in zip(pauses, steps, strict=True))
        assert backoff.failures == 8
        assert len({round(p, 9) for p in pauses[4:]}) > 1  # jittered, not a fixed cap

        backoff.reset()
        assert backoff.failures == 0
        assert 0.05 <= backoff.next_pause() <= 0.1


@pytest.mark.embedded_nats
class TestNatsOutage:
    async def test_metrics_tell_the_outage_and_events_follow_nats_back_at_once(
        self, catalog: Catalog, nats_server: NatsServer, outbox: Outbox, wait_until: WaitUntil
    ) -> None:
        async with catalog(**LONG_BACKOFF, outbox_pending_refresh_s=0.1) as client:
            await create(client, "BEFORE-1")
            await outbox.wait_published("first event published")

            nats_server.stop()
            for i in range(5):
                await create(client, f"DURING-{i}")

            async def outage_shown() -> bool:
                page = await metrics_page(client)
                return sample(page, "catalog_outbox_pending") == 5 and failures(page) > 0

            # The relay is now in a 10-20 s backoff; the gauge is recounted anyway.
            await wait_until(outage_shown, timeout_s=5, what="backlog and failures in /metrics")

            async with timed(5.0, "publishing the backlog after NATS came back"):
                nats_server.start()
                await outbox.wait_published("backlog published")

            async def backlog_gone() -> bool:
                return sample(await metrics_page(client), "catalog_outbox_pending") == 0

            await wait_until(backlog_gone, timeout_s=5, what="catalog_outbox_pending back to 0")

        await outbox.assert_published_once_in_order(6)

    async def test_a_missing_stream_is_counted_as_a_failure(
        self, catalog: Catalog, nats_url: str, outbox: Outbox, wait_until: WaitUntil
    ) -> None:
        async with catalog() as client:
            reader = await nats.connect(nats_url)
            try:
                js = reader.jetstream()
                await wait_until(lambda: _stream_exists(js), what="stream created")
                # As when NATS restarts with an empty store: publishes get no responder.
                await js.delete_stream(v1.CATALOG_STREAM)
                await create(client, "NOSTREAM-1")
                await outbox.wait_published("published after recreation")
            finally:
                await reader.close()
            page = await metrics_page(client)

        assert sample(page, 'catalog_outbox_publish_failures_total{reason="no_stream"}') >= 1
        await outbox.assert_published_once_in_order(1)


class TestListen:
    async def test_a_commit_wakes_the_relay_and_it_listens_again_after_losing_the_connection(
        self, catalog: Catalog, outbox: Outbox, db: Db, wait_until: WaitUntil
    ) -> None:
        # A poll far longer than the bounds below: only NOTIFY can explain a prompt publish.
        async with catalog(outbox_poll_interval_s=60.0) as client:
            await wait_until(lambda: _listening(db), what="relay LISTENing")
            async with timed(5.0, "publishing after a commit"):
                await create(client, "NOTIFY-1")
                await outbox.wait_published("published on NOTIFY")

            killed = await db.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE application_name = $1 AND datname = current_database()",
                LISTENER_APPLICATION_NAME,
            )
            assert killed == 1
            await wait_until(lambda: _listening(db), what="relay LISTENing again")
            async with timed(5.0, "publishing after a commit, on the new connection"):
                await create(client, "NOTIFY-2")
                await outbox.wait_published("published on NOTIFY again")

        await outbox.assert_published_once_in_order(2)

    async def test_a_stop_during_connect_leaves_no_listen_connection_behind(
        self, serve: Serve, settings: Settings, db: Db, wait_until: WaitUntil
    ) -> None:
        # Start and stop at once, many times: some stops land while the LISTEN
        # connection is being opened.
        for _ in range(20):
            async with serve(settings):
                pass

        async def none_left() -> bool:
            return not await db.fetchval(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE application_name = $1 AND datname = current_database()",
                LISTENER_APPLICATION_NAME,
            )

        await wait_until(none_left, timeout_s=5, what="every LISTEN connection closed")


class TestPostgresOutage:
    async def test_the_relay_resumes_when_postgres_is_back_not_after_its_backoff(
        self,
        catalog: Catalog,
        migrated_url: str,
        postgres_proxy: PostgresProxy,
        outbox: Outbox,
        wait_until: WaitUntil,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        async with catalog(
            **LONG_BACKOFF,
            database_url=through(postgres_proxy, migrated_url),
            outbox_listen_retry_max_s=0.2,
        ) as client:
            await create(client, "BEFORE-1")
            await outbox.wait_published("first event published")

            with caplog.at_level(logging.WARNING, logger="tessera_catalog.relay"):
                await postgres_proxy.stop()

                async def relay_failed() -> bool:
                    return "cannot reach PostgreSQL" in caplog.text

                # The relay polls every 50 ms: its next round fails, and it backs off.
                await wait_until(relay_failed, timeout_s=5, what="the relay to hit the outage")

            async with timed(5.0, "publishing a write made after PostgreSQL came back"):
                await postgres_proxy.start()
                await create(client, "AFTER-1")
                await outbox.wait_published("published after the outage")

        await outbox.assert_published_once_in_order(2)


@pytest.mark.embedded_nats
class TestShutdownFlush:
    async def test_events_pending_at_shutdown_are_published_before_it_ends(
        self, catalog: Catalog, nats_server: NatsServer, outbox: Outbox
    ) -> None:
        # NATS is away while the events are written and comes back just as the
        # catalog shuts down; the catalog's client reconnects within its 1 s wait.
        async with catalog(
            **LONG_BACKOFF, nats_reconnect_wait_s=1.0, outbox_shutdown_grace_s=8.0
        ) as client:
            nats_server.stop()
            for i in range(3):
                await create(client, f"LATE-{i}")
            assert await outbox.pending() == 3
            nats_server.start()

        assert await outbox.pending() == 0
        await outbox.assert_published_once_in_order(3)

    async def test_the_flush_ends_at_the_grace_and_leaves_the_rest_in_the_outbox(
        self, catalog: Catalog, nats_server: NatsServer, outbox: Outbox
    ) -> None:
        async with catalog(outbox_shutdown_grace_s=0.5) as client:
            nats_server.stop()
            await create(client, "STUCK-1")
            shutdown_started = time.monotonic()

        # Bounded by the grace (plus closing NATS and the pool), not by NATS coming back.
        assert time.monotonic() - shutdown_started < 5.0
        assert await outbox.pending() == 1  # not lost: the next relay publishes it


async def _listening(db: Db) -> bool:
    return bool(
        await db.fetchval(
            "SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE application_name = $1 "
            "AND datname = current_database() AND query LIKE 'LISTEN %')",
            LISTENER_APPLICATION_NAME,
        )
    )


async def _stream_exists(js: JetStreamContext) -> bool:
    try:
        await js.stream_info(v1.CATALOG_STREAM)
    except nats.js.errors.NotFoundError:
        return False
    return True
