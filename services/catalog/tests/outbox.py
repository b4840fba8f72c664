"""The outbox and stream CATALOG as the event tests look at them (fixture `outbox`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx
import nats
from nats.js import JetStreamContext
from tessera_contracts import v1
from tessera_stack.testing import WaitUntil

if TYPE_CHECKING:
    from .conftest import Db

StreamEvent = tuple[int, dict[str, str], Any]
"""(stream sequence, headers, decoded CloudEvent) of one message on stream CATALOG."""


async def stream_events(js: JetStreamContext) -> list[StreamEvent]:
    """Every message on stream CATALOG, in stream order."""
    info = await js.stream_info(v1.CATALOG_STREAM)
    events = []
    for seq in range(info.state.first_seq, info.state.last_seq + 1):
        msg = await js.get_msg(v1.CATALOG_STREAM, seq)
        assert msg.data is not None
        events.append(
            (seq, dict(msg.headers or {}), v1.CATALOG_EVENT_ADAPTER.validate_json(msg.data))
        )
    return events


async def wait_nats_connected(client: httpx.AsyncClient, wait_until: WaitUntil) -> None:
    """Wait until the catalog's /metrics say its NATS connection is up."""

    async def up() -> bool:
        return "catalog_nats_connected 1.0" in (await client.get("/metrics")).text

    await wait_until(up, what="catalog connected to NATS")


@dataclass(frozen=True)
class Outbox:
    """The test database's outbox and the test NATS server's stream CATALOG."""

    db: Db
    nats_url: str
    wait_until: WaitUntil

    async def pending(self) -> int:
        """Rows the relay has not published yet."""
        return int(await self.db.fetchval("SELECT count(*) FROM outbox WHERE published_at IS NULL"))

    async def wait_published(self, what: str = "outbox drained", timeout_s: float = 10.0) -> None:
        """Wait until no row is pending."""

        async def drained() -> bool:
            return await self.pending() == 0

        await self.wait_until(drained, timeout_s=timeout_s, what=what)

    async def events(self) -> list[StreamEvent]:
        """`stream_events`, read with a client of our own (it outlives NATS restarts)."""
        reader = await nats.connect(self.nats_url)
        try:
            return await stream_events(reader.jetstream())
        finally:
            await reader.close()

    async def event_ids(self) -> list[str]:
        """The outbox's CloudEvent ids, in outbox order."""
        return [
            r["event_id"] for r in await self.db.fetch("SELECT event_id FROM outbox ORDER BY id")
        ]

    async def assert_published_once_in_order(self, count: int) -> None:
        """Stream CATALOG holds the outbox's `count` events, each once, in outbox order."""
        ids = [event.id for _, _, event in await self.events()]
        assert ids == await self.event_ids()
        assert len(ids) == len(set(ids)) == count
