"""`client.v1` and `client.v2`: the generated operations, plus what a table cannot say.

Page iterators walk a listing to its end (v1 by offset until `total`, v2 by
`next_cursor`), and `events` reads the live event stream, resuming by itself.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Unpack
from uuid import UUID

from tessera_contracts import CloudEvent, v1, v2

from tessera_client._events import AsyncEventStream, StreamOptions, SyncEventStream
from tessera_client._generated import (
    AsyncV1Operations,
    AsyncV2Operations,
    SyncV1Operations,
    SyncV2Operations,
)

CatalogCloudEvent = CloudEvent[v1.CatalogEvent]
"""What `events()` yields: the CloudEvent of one catalog change."""


def _decode_event(data: str) -> CatalogCloudEvent:
    return v1.CATALOG_EVENT_ADAPTER.validate_json(data)


class AsyncV1(AsyncV1Operations):
    """The v1 API (`TesseraClient.v1`)."""

    async def iter_products(
        self, *, q: str | None = None, category: str | None = None, limit: int | None = None
    ) -> AsyncIterator[v1.Product]:
        """Every product matching the query, fetching offset pages of `limit` until `total`."""
        offset = 0
        while True:
            page = await self.list_products(q=q, category=category, offset=offset, limit=limit)
            for product in page.items:
                yield product
            offset += len(page.items)
            if not page.items or offset >= page.total:
                return

    async def iter_reviews(
        self, product_id: UUID, *, limit: int | None = None
    ) -> AsyncIterator[v1.Review]:
        """Every review of a product, newest first, fetching offset pages until `total`."""
        offset = 0
        while True:
            page = await self.list_reviews(product_id, offset=offset, limit=limit)
            for review in page.items:
                yield review
            offset += len(page.items)
            if not page.items or offset >= page.total:
                return

    def events(self, **options: Unpack[StreamOptions]) -> AsyncEventStream[CatalogCloudEvent]:
        """Live catalog changes, from now (or after `last_event_id`), resuming after drops.

        Args:
            last_event_id: Resume after this event id (`stream.last_event_id` of an
                earlier stream); None starts with the next new event.
            reconnect_attempts: Failed reconnection attempts in a row before giving up
                (raising); None never gives up. Until the first connection succeeds,
                the client's `max_retries` applies instead.
            max_line_bytes: Longest line of the stream accepted.
            max_data_bytes: Most data of one event accepted (UTF-8).

        A longer line or event drops the connection, and counts as a failed attempt.
        """
        return AsyncEventStream(self._core, v1.EVENTS, _decode_event, **options)


class AsyncV2(AsyncV2Operations):
    """The v2 API (`TesseraClient.v2`)."""

    async def iter_products(
        self, *, q: str | None = None, category: str | None = None, limit: int | None = None
    ) -> AsyncIterator[v2.Product]:
        """Every product matching the query, following `next_cursor` to the last page."""
        cursor: str | None = None
        while True:
            page = await self.list_products(q=q, category=category, cursor=cursor, limit=limit)
            for product in page.items:
                yield product
            if page.next_cursor is None:
                return
            cursor = page.next_cursor


class SyncV1(SyncV1Operations):
    """The v1 API (`TesseraSyncClient.v1`)."""

    def iter_products(
        self, *, q: str | None = None, category: str | None = None, limit: int | None = None
    ) -> Iterator[v1.Product]:
        """Every product matching the query, fetching offset pages of `limit` until `total`."""
        offset = 0
        while True:
            page = self.list_products(q=q, category=category, offset=offset, limit=limit)
            yield from page.items
            offset += len(page.items)
            if not page.items or offset >= page.total:
                return

    def iter_reviews(self, product_id: UUID, *, limit: int | None = None) -> Iterator[v1.Review]:
        """Every review of a product, newest first, fetching offset pages until `total`."""
        offset = 0
        while True:
            page = self.list_reviews(product_id, offset=offset, limit=limit)
            yield from page.items
            offset += len(page.items)
            if not page.items or offset >= page.total:
                return

    def events(self, **options: Unpack[StreamOptions]) -> SyncEventStream[CatalogCloudEvent]:
        """Live catalog changes (see `AsyncV1.events`)."""
        return SyncEventStream(self._core, v1.EVENTS, _decode_event, **options)


class SyncV2(SyncV2Operations):
    """The v2 API (`TesseraSyncClient.v2`)."""

    def iter_products(
        self, *, q: str | None = None, category: str | None = None, limit: int | None = None
    ) -> Iterator[v2.Product]:
        """Every product matching the query, following `next_cursor` to the last page."""
        cursor: str | None = None
        while True:
            page = self.list_products(q=q, category=category, cursor=cursor, limit=limit)
            yield from page.items
            if page.next_cursor is None:
                return
            cursor = page.next_cursor
