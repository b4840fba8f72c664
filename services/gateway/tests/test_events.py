"""`/v1/events`: real catalog writes -> real outbox -> real JetStream -> gateway SSE."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import httpx
from pydantic import HttpUrl
from tessera_contracts import v1

from .conftest import Json, Keys, MakeGateway, free_port, product_body


@dataclass(frozen=True)
class Event:
    id: int
    event: str
    data: Json


class EventStream:
    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self._lines = response.aiter_lines()

    async def next(self, timeout_s: float = 10.0) -> Event:
        """The next event (comments and keep-alives skipped)."""
        fields: dict[str, str] = {}
        async with asyncio.timeout(timeout_s):
            async for line in self._lines:
                if line == "":
                    if "data" in fields:
                        return Event(int(fields["id"]), fields["event"], json.loads(fields["data"]))
                    fields.clear()
                elif not line.startswith(":"):
                    name, _, value = line.partition(":")
                    fields[name] = value.removeprefix(" ")
        raise AssertionError("the stream ended")


@asynccontextmanager
async def events(
    gateway: httpx.AsyncClient, headers: dict[str, str] | None = None, **params: int
) -> AsyncIterator[EventStream]:
    async with gateway.stream("GET", "/v1/events", headers=headers, params=params) as response:
        assert response.status_code == 200, await response.aread()
        assert response.headers["content-type"].startswith("text/event-stream")
        yield EventStream(response)


async def create(gateway: httpx.AsyncClient, keys: Keys, sku: str) -> Json:
    response = await gateway.post(
        "/v1/products", json=product_body(sku), headers=Keys.bearer(keys.writer)
    )
    assert response.status_code == 201, response.text
    created: Json = response.json()
    return created


class TestEvents:
    async def test_catalog_changes_arrive_as_events(
        self, gateway: httpx.AsyncClient, keys: Keys
    ) -> None:
        async with events(gateway) as stream:
            product = await create(gateway, keys, "EV-0001")
            event = await stream.next()

        assert event.event == "catalog.v1.product.created"
        envelope = v1.CATALOG_EVENT_ADAPTER.validate_python(event.data)
        assert envelope.type == "catalog.v1.product.created"
        assert isinstance(envelope.data, v1.ProductCreated)
        assert str(envelope.data.product.id) == product["id"]
        assert event.id >= 1

    async def test_last_event_id_resumes_without_gaps(
        self, gateway: httpx.AsyncClient, keys: Keys
    ) -> None:
        async with events(gateway) as stream:
            await create(gateway, keys, "EV-0101")
            seen = await stream.next()
        # While disconnected: two more changes.
        product = await create(gateway, keys, "EV-0102")
        patched = await gateway.patch(
            f"/v1/products/{product['id']}", json={"price": 5.0}, headers=Keys.bearer(keys.writer)
        )
        assert patched.status_code == 200

        async with events(gateway, headers={"Last-Event-ID": str(seen.id)}) as stream:
            missed = [await stream.next(), await stream.next()]
        async with events(gateway, after=seen.id) as stream:
            by_query = await stream.next()

        assert [e.id for e in missed] == [seen.id + 1, seen.id + 2]
        assert [e.event for e in missed] == [
            "catalog.v1.product.created",
            "catalog.v1.product.updated",
        ]
        assert by_query == missed[0]

    async def test_a_stalled_client_does_not_hold_up_others(
        self, gateway: httpx.AsyncClient, keys: Keys
    ) -> None:
        url = httpx.URL(str(gateway.base_url))
        assert url.port is not None
        # A client that asks for the stream and then never reads from it.
        reader, writer = await asyncio.open_connection(url.host, url.port)
        writer.write(b"GET /v1/events HTTP/1.1\r\nHost: gateway\r\n\r\n")
        await writer.drain()
        try:
            async with events(gateway) as stream:
                for n in range(5):
                    await create(gateway, keys, f"EV-02{n:02d}")
                received = [await stream.next(timeout_s=5) for _ in range(5)]
        finally:
            writer.close()

        assert [e.event for e in received] == ["catalog.v1.product.created"] * 5

    async def test_needs_the_read_scope(self, gateway: httpx.AsyncClient, keys: Keys) -> None:
        response = await gateway.get("/v1/events", headers=Keys.bearer(keys.predictor))

        assert response.status_code == 403

    async def test_bad_last_event_id_is_422(self, gateway: httpx.AsyncClient) -> None:
        response = await gateway.get("/v1/events", headers={"Last-Event-ID": "yesterday"})

        assert response.status_code == 422
        assert response.headers["content-type"] == "application/problem+json"

    async def test_without_nats_it_is_503(self, make_gateway: MakeGateway) -> None:
        async with make_gateway(nats_url=f"nats://127.0.0.1:{free_port()}") as gateway:
            response = await gateway.get("/v1/events")

        assert response.status_code == 503
        assert response.json()["upstream"] == "nats"
        assert response.headers["retry-after"] == "5"

    async def test_products_still_work_without_nats(
        self, make_gateway: MakeGateway, catalog_url: str
    ) -> None:
        async with make_gateway(
            nats_url=f"nats://127.0.0.1:{free_port()}", catalog_url=HttpUrl(catalog_url)
        ) as gateway:
            response = await gateway.get("/v1/products")

        assert response.status_code == 200
