"""Events: every write puts a CloudEvent in the outbox; the relay gets each onto JetStream once."""

from __future__ import annotations

import httpx
import pytest
from nats.js import JetStreamContext
from nats.js.api import StreamConfig
from tessera_catalog.settings import Settings
from tessera_contracts import v1
from tessera_contracts.events import MSG_ID_HEADER
from tessera_stack.testing import NatsServer, WaitUntil, product_body

from .conftest import Db, MakeProduct, Serve
from .outbox import Outbox, stream_events, wait_nats_connected


async def every_change(client: httpx.AsyncClient, make_product: MakeProduct) -> list[str]:
    """One write of each kind; returns the event types they must produce, in order."""
    product = await make_product()
    url = f"/v1/products/{product['id']}"
    assert (await client.patch(url, json={"name": "Renamed"})).status_code == 200
    assert (
        await client.post(f"{url}/reviews", json={"rating": 5, "title": "Nice", "author": "Kemi"})
    ).status_code == 201
    assert (await client.put(f"{url}/inventory", json={"quantity": 2})).status_code == 200
    assert (await client.delete(url)).status_code == 204
    return [
        "catalog.v1.product.created",
        "catalog.v1.product.updated",
        "catalog.v1.review.created",
        "catalog.v1.inventory.updated",
        "catalog.v1.product.deleted",
    ]


@pytest.fixture
async def nats_up(client: httpx.AsyncClient, wait_until: WaitUntil) -> None:
    await wait_nats_connected(client, wait_until)


class TestOutboxAndRelay:
    @pytest.mark.usefixtures("nats_up")
    async def test_every_write_publishes_one_cloudevent_in_order(
        self,
        client: httpx.AsyncClient,
        make_product: MakeProduct,
        db: Db,
        js: JetStreamContext,
        outbox: Outbox,
    ) -> None:
        expected = await every_change(client, make_product)

        await outbox.wait_published("outbox drained")
        events = await stream_events(js)

        assert [event.type for _, _, event in events] == expected
        rows = await db.fetch("SELECT event_id, subject, stream_seq FROM outbox ORDER BY id")
        assert [(r["event_id"], r["stream_seq"]) for r in rows] == [
            (e.id, seq) for seq, _, e in events
        ]
        for seq, headers, event in events:
            assert headers[MSG_ID_HEADER] == event.id
            assert event.source == v1.CATALOG_SOURCE
            assert event.type == f"catalog.v1.{event.data.kind}"
            msg = await js.get_msg(v1.CATALOG_STREAM, seq)
            assert msg.subject == event.type
        created, updated, review, stock, deleted = (event.data for _, _, event in events)
        assert isinstance(created, v1.ProductCreated)
        assert created.product.version == 1
        assert isinstance(updated, v1.ProductUpdated)
        assert updated.product.name == "Renamed"
        assert updated.product.version == 2
        assert isinstance(review, v1.ReviewCreated)
        assert review.review.rating == 5
        assert isinstance(stock, v1.InventoryUpdated)
        assert stock.inventory.quantity == 2
        assert isinstance(deleted, v1.ProductDeleted)
        assert deleted.sku == created.product.sku

    @pytest.mark.usefixtures("nats_up")
    async def test_events_carry_the_request_id_of_the_write(
        self, client: httpx.AsyncClient, outbox: Outbox, js: JetStreamContext
    ) -> None:
        await client.post(
            "/v1/products",
            json={"sku": "TRACE-1", "name": "Traced", "category": "home", "price": 1},
            headers={"X-Request-ID": "write-7"},
        )

        await outbox.wait_published("outbox drained")
        [(_, headers, _)] = await stream_events(js)
        assert headers["X-Request-ID"] == "write-7"

    async def test_a_failed_write_leaves_no_event(
        self, client: httpx.AsyncClient, make_product: MakeProduct, db: Db
    ) -> None:
        product = await make_product(sku="ONLY-1")
        before = await db.fetchval("SELECT count(*) FROM outbox")

        await client.post(
            "/v1/products", json={"sku": "ONLY-1", "name": "Twin", "category": "x", "price": 1}
        )
        await client.patch(
            f"/v1/products/{product['id']}", json={"name": "X"}, headers={"If-Match": '"9"'}
        )
        await client.put(
            f"/v1/products/{product['id']}/inventory", json={"quantity": 1, "reserved": 2}
        )

        assert await db.fetchval("SELECT count(*) FROM outbox") == before

    @pytest.mark.usefixtures("nats_up")
    async def test_a_resent_event_is_dropped_by_jetstream(
        self, make_product: MakeProduct, db: Db, outbox: Outbox
    ) -> None:
        await make_product()
        await make_product()

        await outbox.wait_published("outbox drained")
        # As if the relay had crashed after JetStream's ack but before stamping the rows.
        await db.execute("UPDATE outbox SET published_at = NULL, stream_seq = NULL")
        await outbox.wait_published("outbox drained again")

        assert len(await outbox.events()) == 2
        assert [
            r["stream_seq"] for r in await db.fetch("SELECT stream_seq FROM outbox ORDER BY id")
        ] == [1, 2]

    async def test_existing_stream_without_our_subjects_gets_them(
        self, serve: Serve, settings: Settings, js: JetStreamContext, wait_until: WaitUntil
    ) -> None:
        await js.add_stream(StreamConfig(name=v1.CATALOG_STREAM, subjects=["legacy.>"]))

        async with serve(settings):

            async def updated() -> bool:
                info = await js.stream_info(v1.CATALOG_STREAM)
                return v1.CATALOG_SUBJECTS in (info.config.subjects or [])

            await wait_until(updated, what="stream subjects updated")

        info = await js.stream_info(v1.CATALOG_STREAM)
        assert set(info.config.subjects or []) == {"legacy.>", v1.CATALOG_SUBJECTS}


@pytest.mark.embedded_nats
class TestNatsOutage:
    async def test_nothing_is_lost_when_nats_is_down_during_writes(
        self,
        client: httpx.AsyncClient,
        make_product: MakeProduct,
        nats_server: NatsServer,
        outbox: Outbox,
        wait_until: WaitUntil,
        nats_up: None,
    ) -> None:
        nats_server.stop()
        expected: list[str] = []
        for _ in range(3):
            expected += await every_change(client, make_product)

        # Written, not published: the events wait in the outbox, and /metrics shows the backlog.
        assert await outbox.pending() == len(expected)

        async def backlog_shown() -> bool:
            # Recounted every outbox_pending_refresh_s, whatever the relay is doing.
            return (
                f"catalog_outbox_pending {float(len(expected))}"
                in (await client.get("/metrics")).text
            )

        await wait_until(backlog_shown, what="backlog in /metrics")
        assert "catalog_nats_connected 0.0" in (await client.get("/metrics")).text
        assert (await client.get("/readyz")).status_code == 200

        nats_server.start()

        await outbox.wait_published("outbox drained after NATS came back", timeout_s=20)
        events = await outbox.events()
        ids = [event.id for _, _, event in events]
        assert len(ids) == len(set(ids)) == len(expected)
        assert [event.type for _, _, event in events] == expected
        assert ids == await outbox.event_ids()

    async def test_starts_and_serves_while_nats_is_down(
        self, serve: Serve, settings: Settings, nats_server: NatsServer, outbox: Outbox
    ) -> None:
        nats_server.stop()

        async with serve(settings) as client:
            ready = await client.get("/readyz")
            created = await client.post("/v1/products", json=product_body(sku="EARLY-1"))
            enriched = await client.get(f"/v1/products/{created.json()['id']}/enriched")
            assert ready.status_code == 200
            assert created.status_code == 201
            assert enriched.json()["degraded"] == ["prediction"]

            nats_server.start()

            await outbox.wait_published("the event published once NATS started", timeout_s=20)

        events = await outbox.events()
        assert [event.type for _, _, event in events] == ["catalog.v1.product.created"]

    async def test_readiness_can_require_nats(
        self, serve: Serve, settings: Settings, nats_server: NatsServer
    ) -> None:
        nats_server.stop()

        async with serve(
            settings.model_copy(update={"nats_required_for_readiness": True})
        ) as client:
            response = await client.get("/readyz")

        assert response.status_code == 503
        assert response.json()["checks"]["nats"] != "ok"
        assert response.json()["checks"]["postgres"] == "ok"

    async def test_stream_lost_with_the_nats_store_is_recreated(
        self,
        client: httpx.AsyncClient,
        make_product: MakeProduct,
        outbox: Outbox,
        js: JetStreamContext,
        nats_up: None,
    ) -> None:
        await js.delete_stream(v1.CATALOG_STREAM)

        await make_product()

        await outbox.wait_published("event published to a recreated stream", timeout_s=20)
        assert [event.type for _, _, event in await stream_events(js)] == [
            "catalog.v1.product.created"
        ]
