"""Live events: typed CloudEvents, resumed after a dropped connection with nothing missed."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator
from urllib.parse import urlsplit
from uuid import UUID

import pytest
from tessera_client import (
    CatalogCloudEvent,
    TesseraClient,
    TesseraConnectionError,
    TesseraSyncClient,
)
from tessera_contracts import v1

from .conftest import Stack, v1_product
from .servers import Relay, ScriptedEvents, scripted_events


@pytest.fixture
def relay(stack: Stack) -> Iterator[Relay]:
    port = urlsplit(stack.gateway).port
    assert port is not None
    server = Relay(port)
    try:
        yield server
    finally:
        server.close()


def _created(event: CatalogCloudEvent) -> UUID:
    assert isinstance(event.data, v1.ProductCreated)
    return event.data.product.id


async def test_resumes_after_a_dropped_connection(
    client: TesseraClient, relay: Relay, stack: Stack
) -> None:
    async with (
        TesseraClient(relay.url, api_key=stack.key, retry_backoff_s=0.05) as watcher,
        watcher.v1.events() as stream,
    ):
        # The stream starts "from now" when it connects: create products until the
        # first one arrives, so the rest of the test knows where it stands.
        first = asyncio.ensure_future(anext(stream))
        created: list[UUID] = []
        while not first.done():
            created.append((await client.v1.create_product(v1_product())).id)
            await asyncio.wait({first}, timeout=0.2)
        received = [first.result()]
        positions = [stream.last_event_id]

        relay.refusing.set()
        relay.drop()
        created.append((await client.v1.create_product(v1_product())).id)  # while cut off
        await asyncio.sleep(0.3)  # a reconnection attempt or two is refused
        relay.refusing.clear()
        while _created(received[-1]) != created[-1]:
            received.append(await asyncio.wait_for(anext(stream), 15))
            positions.append(stream.last_event_id)

    start = created.index(_created(received[0]))
    assert [_created(e) for e in received] == created[start:]  # none missed, none twice
    assert all(e.type == "catalog.v1.product.created" for e in received)
    # Each event's id is its stream sequence: consecutive, so the resumption left no gap.
    assert positions[0] is not None
    assert positions == list(range(positions[0], positions[0] + len(positions)))
    assert stream.reconnects >= 1
    assert relay.accepted >= 2


async def test_first_connection_fails_fast() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nothing listens once the block ends
    async with TesseraClient(f"http://127.0.0.1:{port}", max_retries=1) as client:
        with pytest.raises(TesseraConnectionError) as raised:
            await anext(client.v1.events())

    assert raised.value.attempts == 2


def _event_text(sequence: int, product: v1.Product) -> str:
    event = v1.new_catalog_event(v1.ProductCreated(product=product))
    return f"event: {event.type}\nid: {sequence}\ndata: {event.model_dump_json()}\n\n"


@pytest.fixture
async def product(client: TesseraClient) -> v1.Product:
    return await client.v1.create_product(v1_product())


async def test_retry_field_and_id_only_events(product: v1.Product) -> None:
    script = [
        "retry: 300\n" + _event_text(7, product) + ": keep-alive\n\n" + "id: 9\n\n",
        _event_text(10, product),
    ]
    with scripted_events(script, time.monotonic) as server:
        async with TesseraClient(server.url) as client, client.v1.events() as stream:
            first = await anext(stream)
            second = await asyncio.wait_for(anext(stream), 10)

    assert [first.data, second.data] == [v1.ProductCreated(product=product)] * 2
    # The id-only event moved the position: the reconnection resumes after 9, not 7.
    assert server.last_event_ids[:2] == [None, "9"]
    assert server.connected_at[1] - server.connected_at[0] >= 0.3
    assert stream.last_event_id == 10


def _two_sync_events(
    script: list[str], **options: int
) -> tuple[list[CatalogCloudEvent], ScriptedEvents, int | None]:
    """The first two events a sync stream of `script` yields, the server, and where
    the stream stands after them."""
    with (
        scripted_events(script, time.monotonic) as server,
        TesseraSyncClient(server.url) as client,
        client.v1.events(**options) as stream,
    ):
        events = [next(stream), next(stream)]
    return events, server, stream.last_event_id


def test_sync_stream_resumes_with_last_event_id(product: v1.Product) -> None:
    script = ["retry: 50\n" + _event_text(3, product), _event_text(4, product)]

    events, server, position = _two_sync_events(script, last_event_id=2)

    assert [e.data for e in events] == [v1.ProductCreated(product=product)] * 2
    assert server.last_event_ids[:2] == ["2", "3"]
    assert position == 4


async def test_data_holding_unicode_line_separators_stays_one_event(product: v1.Product) -> None:
    # Pydantic writes U+2028/U+2029/U+0085 unescaped in JSON: they are not SSE line ends.
    named = product.model_copy(update={"name": "Lamp\u2028Oak\u2029Desk\u0085x"})
    text = _event_text(1, named).replace("\n", "\r\n", 1)  # CRLF ends lines too
    assert "\u2028" in text
    with scripted_events([text], time.monotonic) as server:
        async with TesseraClient(server.url) as client, client.v1.events() as stream:
            event = await asyncio.wait_for(anext(stream), 10)

    assert event.data == v1.ProductCreated(product=named)


def test_an_oversized_line_drops_the_connection_and_resumes(product: v1.Product) -> None:
    script = ["retry: 10\n" + _event_text(1, product) + "data: " + "x" * 5000 + "\n\n"]
    script.append(_event_text(2, product))

    events, server, _ = _two_sync_events(script, max_line_bytes=4096)

    assert [e.data for e in events] == [v1.ProductCreated(product=product)] * 2
    assert server.last_event_ids[:2] == [None, "1"]


async def test_oversized_events_count_as_failed_attempts(product: v1.Product) -> None:
    oversized = "data: " + "x" * 3000 + "\n" + "data: " + "x" * 3000 + "\n\n"
    with scripted_events([oversized] * 5, time.monotonic) as server:
        async with (
            TesseraClient(server.url, retry_backoff_s=0.01) as client,
            client.v1.events(reconnect_attempts=2, max_data_bytes=4096) as stream,
        ):
            with pytest.raises(TesseraConnectionError) as raised:
                await asyncio.wait_for(anext(stream), 10)

    assert raised.value.attempts == 3
    assert len(server.last_event_ids) == 3


async def test_ids_that_are_not_positions_are_ignored(product: v1.Product) -> None:
    beyond = 2**64  # more than any stream sequence, which `Last-Event-ID` refuses
    script = [
        f"retry: 10\n{_event_text(5, product)}id: {beyond}\n\nid: ²\n\nid: ٣\n\n",
        _event_text(6, product),
    ]
    with scripted_events(script, time.monotonic) as server:
        async with TesseraClient(server.url) as client, client.v1.events() as stream:
            events = [await asyncio.wait_for(anext(stream), 10) for _ in range(2)]

    assert [e.data for e in events] == [v1.ProductCreated(product=product)] * 2
    assert server.last_event_ids[:2] == [None, "5"]
    assert stream.last_event_id == 6
