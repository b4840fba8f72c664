"""Writing catalog events to the outbox, inside the transaction of the change."""

from __future__ import annotations

from tessera_contracts import v1
from tessera_contracts.events import event_headers
from tessera_runtime.context import outgoing_headers

from tessera_catalog.db import outbox
from tessera_catalog.db.records import Executor


async def record_event(conn: Executor, data: v1.CatalogEvent, about: str) -> str:
    """Append a CloudEvent for `data` to the outbox; returns the event id.

    `conn` must be in the transaction that makes the change, so the event exists
    if and only if the change committed. The request's X-Request-ID and
    traceparent go into the stored headers, so consumers can tie an event back
    to the HTTP request that caused it.
    """
    event = v1.new_catalog_event(data, subject=about)
    headers = {**outgoing_headers(), **event_headers(event)}
    await outbox.insert(
        conn, event.id, v1.catalog_subject(data), event.model_dump_json().encode(), headers
    )
    return event.id
