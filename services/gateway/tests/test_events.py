"""`/v1/events`: real catalog writes -> real outbox -> real JetStream -> gateway SSE."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import urlsplit

import httpx
import nats
import pytest
from jsonschema import Draft202012Validator  # type: ignore[import-untyped]
from nats.js.api import StorageType, StreamConfig
from pydantic import HttpUrl
from tessera_contracts import v1
from tessera_gateway.app import create_app
from tessera_gateway.settings import Settings
from tessera_stack.testing import Json, NatsServer, product_body

from .conftest import Keys, MakeGateway, free_port, serve

UINT64_MAX = 2**64 - 1


@dataclass(frozen=True)
class Event:
    id: int
    event: str
    data: Json


class EventStream:
    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self._lines = response.aiter_lines()

    async def block(self, timeout_s: float = 10.0) -> dict[str, str]:
        """The fields of the next block that has any (comment-only blocks skipped)."""
        fields: dict[str, str] = {}
        async with asyncio.timeout(timeout_s):
            async for line in self._lines:
                if line == "":
                    if fields:
                        return fields
                elif not line.startswith(":"):
                    name, _, value = line.partition(":")
                    fields[name] = value.removeprefix(" ")
        raise AssertionError("the stream ended")

    async def next(self, timeout_s: float = 10.0) -> Event:
        """The next event (comments, keep-alives and bare `id` or `retry` blocks skipped)."""
        async with asyncio.timeout(timeout_s):
            while True:
                fields = await self.block(timeout_s)
                if "data" in fields:
                    return Event(int(fields["id"]), fields["event"], json.loads(fields["data"]))


@asynccontextmanager
async def events(
    gateway: httpx.AsyncClient, headers: dict[str, str] | None = None, **params: int
) -> AsyncIterator[EventStream]:
    async with gateway.stream("GET", "/v1/events", headers=headers, params=params) as response:
        assert response.status_code == 200, await response.aread()
        assert response.headers["content-type"].startswith("text/event-stream")
        yield EventStream(response)


async def add_catalog_stream(nats_url: str) -> None:
    """Stream CATALOG, as the catalog creates it (for tests without a catalog)."""
    client = await nats.connect(nats_url)
    try:
        await client.jetstream().add_stream(
            StreamConfig(
                name=v1.CATALOG_STREAM, subjects=[v1.CATALOG_SUBJECTS], storage=StorageType.FILE
            )
        )
    finally:
        await client.close()


async def publish(nats_url: str, n: int) -> int:
    """Publish one event on stream CATALOG; return its stream sequence."""
    client = await nats.connect(nats_url)
    try:
        ack = await client.jetstream().publish(
            v1.PRODUCT_CREATED.name, json.dumps({"n": n}).encode()
        )
        return ack.seq
    finally:
        await client.close()


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

    async def test_events_are_what_the_served_document_describes(
        self, gateway: httpx.AsyncClient, keys: Keys
    ) -> None:
        document = (await gateway.get("/openapi.json")).json()
        async with events(gateway) as stream:
            await create(gateway, keys, "EV-0002")
            fields = await stream.block()
            while "data" not in fields:  # a bare `id` or `retry` block is no event
                fields = await stream.block()

        content = document["paths"]["/v1/events"]["get"]["responses"]["200"]["content"]
        assert list(content) == ["text/event-stream"]
        item = content["text/event-stream"]["itemSchema"]
        assert item["properties"]["event"]["enum"] == [s.name for s in v1.CATALOG_EVENT_SUBJECTS]
        # Each event's fields, then its `data` (the CloudEvent JSON), against the
        # document's schemas: refs resolve in the document's own components.
        components = {"components": document["components"]}
        Draft202012Validator(item | components).validate(fields)
        cloud_event = item["properties"]["data"]["contentSchema"]
        assert cloud_event["$ref"].startswith("#/components/schemas/CloudEvent")
        Draft202012Validator(cloud_event | components).validate(json.loads(fields["data"]))

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

    async def test_head_answers_the_headers_without_a_stream(
        self, make_gateway: MakeGateway, nats_url: str, keys: Keys
    ) -> None:
        await add_catalog_stream(nats_url)
        async with make_gateway() as gateway, asyncio.timeout(5):
            head = await gateway.head("/v1/events")
            forbidden = await gateway.head("/v1/events", headers=Keys.bearer(keys.predictor))

        assert head.status_code == 200
        assert head.headers["content-type"].startswith("text/event-stream")
        assert head.content == b""
        assert forbidden.status_code == 403

    async def test_needs_the_read_scope(self, gateway: httpx.AsyncClient, keys: Keys) -> None:
        response = await gateway.get("/v1/events", headers=Keys.bearer(keys.predictor))

        assert response.status_code == 403

    @pytest.mark.parametrize(
        "value",
        ["yesterday", "-1", "1.5", str(UINT64_MAX + 1), "99999999999999999999999999"],
    )
    async def test_an_id_that_cannot_be_a_stream_sequence_is_422(
        self, make_gateway: MakeGateway, nats_url: str, value: str
    ) -> None:
        await add_catalog_stream(nats_url)
        async with make_gateway() as gateway, asyncio.timeout(5):
            by_header = await gateway.get("/v1/events", headers={"Last-Event-ID": value})
            by_query = await gateway.get("/v1/events", params={"after": value})

        for response in (by_header, by_query):
            assert response.status_code == 422
            assert response.headers["content-type"] == "application/problem+json"

    async def test_a_stream_from_now_starts_with_its_position(
        self, make_gateway: MakeGateway, nats_url: str
    ) -> None:
        # Without it, a client that lost the connection before the first event could
        # only resume "from now" again, missing what was published in between.
        await add_catalog_stream(nats_url)
        newest = [await publish(nats_url, n) for n in range(2)][-1]
        async with make_gateway() as gateway, events(gateway) as stream:
            position = await stream.block()
            published = await publish(nats_url, 2)
            event = await stream.next()

        assert position == {"id": str(newest)}
        assert event.id == published == newest + 1

    @pytest.mark.parametrize("beyond", [1000, UINT64_MAX])
    async def test_an_id_beyond_the_stream_resumes_with_the_next_event(
        self,
        make_gateway: MakeGateway,
        nats_url: str,
        beyond: int,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        caplog.set_level(logging.INFO, logger="tessera_gateway")
        await add_catalog_stream(nats_url)
        newest = [await publish(nats_url, n) for n in range(2)][-1]
        async with (
            make_gateway() as gateway,
            events(gateway, headers={"Last-Event-ID": str(beyond)}) as stream,
        ):
            # A bare `id` moves the client's Last-Event-ID back onto the stream, so a
            # reconnect before the next event does not send the bad one again.
            announced = await stream.block()
            await asyncio.sleep(1.5)  # the old loop logged a warning every second
            published = await publish(nats_url, 2)
            event = await stream.next()

        assert announced == {"id": str(newest)}
        assert event.id == published == newest + 1
        assert event.data == {"n": 2}
        # The stream's own warnings; a slow machine may add others (a late probe).
        stream_warnings = [
            r
            for r in caplog.records
            if r.levelno >= logging.WARNING and r.name.startswith("tessera_gateway")
        ]
        assert stream_warnings == []

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


async def first_greeting(nats_url: str) -> float:
    """When nats-server at `nats_url` first greets a client (its `INFO` line): the
    moment NATS is reachable again, however long the rest of its start takes."""
    address = urlsplit(nats_url)
    assert address.hostname is not None
    assert address.port is not None
    while True:
        try:
            reader, writer = await asyncio.open_connection(address.hostname, address.port)
        except OSError:
            await asyncio.sleep(0.005)
            continue
        try:
            greeting = await asyncio.wait_for(reader.readline(), 1)
        except (OSError, TimeoutError):
            greeting = b""
        finally:
            writer.close()
        if greeting.startswith(b"INFO"):
            return time.monotonic()
        await asyncio.sleep(0.005)


async def restart(nats_server: NatsServer) -> float:
    """Stop NATS, start it again; return when it was reachable again."""
    await asyncio.to_thread(nats_server.stop)
    await asyncio.sleep(0.5)  # an outage the gateway notices, not a blip
    greeted = asyncio.create_task(first_greeting(nats_server.url))
    await asyncio.to_thread(nats_server.start)  # returns once JetStream is up
    return await asyncio.wait_for(greeted, 5)


async def consumers_created_after(nats_url: str, since: datetime, count: int) -> list[datetime]:
    """The creation times of stream CATALOG's consumers created after `since`, once
    there are `count` of them (within 10 s)."""
    client = await nats.connect(nats_url)
    try:
        async with asyncio.timeout(10):
            while True:
                infos = await client.jetstream().consumers_info(v1.CATALOG_STREAM)
                created = [info.created for info in infos if info.created > since]
                if len(created) >= count:
                    return created
                await asyncio.sleep(0.05)
    finally:
        await client.close()


class TestNatsRestart:
    @pytest.mark.embedded_nats
    async def test_streams_resume_within_2_s_of_nats_being_reachable(
        self, make_gateway: MakeGateway, nats_server: NatsServer
    ) -> None:
        await add_catalog_stream(nats_server.url)
        # A long fetch timeout: resuming must not wait for it to run out. The
        # resubscription spread keeps its default: the 2 s include it.
        async with (
            make_gateway(events_ping_s=10, nats_reconnect_wait_s=0.1) as gateway,
            events(gateway) as stream,
        ):
            first = await publish(nats_server.url, 1)
            assert (await stream.next()).id == first
            reachable = await restart(nats_server)
            second = await publish(nats_server.url, 2)
            event = await stream.next(timeout_s=5)
            resumed_s = time.monotonic() - reachable

        # Exactly once: the next event, not the one before the outage again.
        assert event.id == second == first + 1
        assert resumed_s < 2

    @pytest.mark.embedded_nats
    async def test_clients_woken_together_spread_their_resubscriptions(
        self, make_gateway: MakeGateway, nats_server: NatsServer
    ) -> None:
        clients, jitter_s = 20, 1.5
        await add_catalog_stream(nats_server.url)
        async with (
            make_gateway(
                events_ping_s=10, nats_reconnect_wait_s=0.1, events_resubscribe_jitter_s=jitter_s
            ) as gateway,
            AsyncExitStack() as streams,
        ):
            for _ in range(clients):
                await streams.enter_async_context(events(gateway))
            await consumers_created_after(
                nats_server.url, datetime.min.replace(tzinfo=UTC), clients
            )
            before = datetime.now(UTC)
            await restart(nats_server)
            created = await consumers_created_after(nats_server.url, before, clients)

        # All woken by the same reconnection; without the spread their consumers
        # are created within a few milliseconds of each other.
        spread_s = (max(created) - min(created)).total_seconds()
        assert len(created) == clients
        assert jitter_s / 3 < spread_s < jitter_s + 1


class TestShutdown:
    async def test_streams_end_with_the_final_chunk_and_a_retry_hint(
        self, gateway_settings: Callable[..., Settings], nats_url: str
    ) -> None:
        await add_catalog_stream(nats_url)
        running = serve(create_app(gateway_settings()))
        url = httpx.URL(await running.__aenter__())
        assert url.port is not None
        reader, writer = await asyncio.open_connection(url.host, url.port)
        try:
            writer.write(b"GET /v1/events HTTP/1.1\r\nHost: gateway\r\n\r\n")
            await writer.drain()
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            await asyncio.wait_for(running.__aexit__(None, None, None), 10)
            rest = await asyncio.wait_for(reader.read(), 5)  # to EOF
        finally:
            writer.close()

        assert head.startswith(b"HTTP/1.1 200")
        assert b"transfer-encoding: chunked" in head.lower()
        # The chunked terminator: the client sees a complete response, not a cut.
        assert rest.endswith(b"\r\n0\r\n\r\n")
        assert b"retry: " in rest
