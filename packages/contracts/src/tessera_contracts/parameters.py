"""Path, query and header parameters of the HTTP operations, as Pydantic models.

Each model is one part of an `Operation` (see `tessera_contracts.operations`):
its fields are the parameters, with their constraints, defaults and
descriptions. Servers validate requests with them and clients build requests
from them, so a parameter is declared here once.
"""

from __future__ import annotations

from typing import Annotated, Any, Final
from uuid import UUID

from pydantic import Field

from tessera_contracts._base import Contract

DEFAULT_LIMIT: Final = 20
MAX_LIMIT: Final = 100
"""Largest page: a larger `limit` is served as this many (the page's `limit` says so)."""
MAX_OFFSET: Final = 2**31 - 1
STREAM_SEQUENCE_MAX: Final = 2**64 - 1
"""JetStream stream sequences (the event stream's ids) are unsigned 64-bit integers."""

# PostgreSQL text cannot hold U+0000; refusing it up front gives the client a
# 422 that points at the parameter instead of a database error.
_NO_NUL: Final = r"^[^\x00]+$"


def _header(alias: str, description: str, **constraints: Any) -> Any:
    """An optional header field, named by its alias (header models' rule)."""
    return Field(default=None, alias=alias, description=description, **constraints)


Limit = Annotated[
    int,
    Field(ge=1, description=f"Page size; values above {MAX_LIMIT} are served as {MAX_LIMIT}."),
]
Offset = Annotated[int, Field(ge=0, le=MAX_OFFSET, description="Index of the first item.")]
SearchText = Annotated[
    str | None,
    Field(
        min_length=1,
        max_length=200,
        pattern=_NO_NUL,
        description="Full-text search over name and description (web-search syntax: "
        '`lamp oak`, `"desk lamp"`, `lamp -oak`, `lamp or vase`).',
    ),
]
CategoryName = Annotated[
    str | None,
    Field(min_length=1, max_length=64, pattern=_NO_NUL, description="Exact category name."),
]
StreamSequence = Annotated[int, Field(ge=0, le=STREAM_SEQUENCE_MAX)]


class ProductPath(Contract):
    """`{product_id}` of the product operations."""

    product_id: UUID
    """The product's catalog identifier."""


class ProductOffsetQuery(Contract):
    """Query of `GET /v1/products`: search, filter and an offset page."""

    q: SearchText = None
    category: CategoryName = None
    offset: Offset = 0
    limit: Limit = DEFAULT_LIMIT


class ProductCursorQuery(Contract):
    """Query of `GET /v2/products`: search, filter and a keyset page."""

    q: SearchText = None
    category: CategoryName = None
    cursor: str | None = Field(
        default=None,
        description="`next_cursor` of the previous page; omit for the first page. "
        "A cursor this API did not issue is 400.",
    )
    limit: Limit = DEFAULT_LIMIT


class PageQuery(Contract):
    """Query of an offset-paged list: `offset` and `limit`."""

    offset: Offset = 0
    limit: Limit = DEFAULT_LIMIT


class IdempotencyHeaders(Contract):
    """Headers of a create that can be retried safely."""

    idempotency_key: str | None = _header(
        "Idempotency-Key",
        "Makes a retry of this create return the first response (a different body with the "
        "same key is 409). Remembered for 24 h by default; the gateway itself retries such a "
        "request when the catalog is briefly unavailable.",
        min_length=1,
        max_length=255,
        pattern=r"^[\x21-\x7e]+$",
    )


class IfMatchHeaders(Contract):
    """Headers of a conditional write."""

    if_match: str | None = _header(
        "If-Match",
        "ETag from a GET; the write happens only if the product is unchanged (else 412).",
        max_length=1024,
    )


class IfNoneMatchHeaders(Contract):
    """Headers of a conditional read."""

    if_none_match: str | None = _header(
        "If-None-Match", "ETags you have: 304 when the product is unchanged.", max_length=1024
    )


class EventsQuery(Contract):
    """Query of `GET /v1/events`."""

    after: StreamSequence | None = Field(
        default=None, description="Resume after this event id, for a first connection."
    )


class EventsHeaders(Contract):
    """Headers of `GET /v1/events`."""

    last_event_id: StreamSequence | None = _header(
        "Last-Event-ID",
        "Resume after this event id (browsers send it when they reconnect). An id beyond the "
        "stream resumes with the next new event.",
    )


class ModelPath(Contract):
    """`{name}` of the Open Inference Protocol model operations."""

    name: str
    """The model's name."""


class ModelVersionPath(Contract):
    """`{name}` and `{version}` of the Open Inference Protocol model-version operations."""

    name: str
    """The model's name."""
    version: str
    """The model version: `1.0`, `1` and `v1` name the same one."""
