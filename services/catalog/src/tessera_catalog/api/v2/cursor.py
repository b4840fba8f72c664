"""Opaque keyset cursors: the (created_at, id) of the last row of a page.

A cursor names a position in an order that never changes (rows are never
re-timestamped), so paging is stable while rows are inserted or deleted: each
row that exists for the whole walk is seen exactly once. The encoding is
url-safe base64 without padding; clients must treat it as opaque.
"""

from __future__ import annotations

import base64
import binascii
from datetime import datetime
from typing import Final
from uuid import UUID

from tessera_catalog.errors import InvalidCursor

_PREFIX: Final = "k1:"  # a version tag, so the format can change without misreading old cursors
_MAX_LENGTH: Final = 200


def encode_cursor(created_at: datetime, product_id: UUID) -> str:
    raw = f"{_PREFIX}{created_at.isoformat()}|{product_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, UUID]:
    """The position a cursor names; InvalidCursor (400) for anything we did not issue."""
    if not cursor or len(cursor) > _MAX_LENGTH or not cursor.isascii():
        raise InvalidCursor()
    try:
        raw = base64.b64decode(cursor + "=" * (-len(cursor) % 4), altchars=b"-_", validate=True)
        text = raw.decode()
        if not text.startswith(_PREFIX):
            raise ValueError("unknown cursor version")
        stamp, _, ident = text.removeprefix(_PREFIX).partition("|")
        created_at = datetime.fromisoformat(stamp)
        product_id = UUID(ident)
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise InvalidCursor() from exc
    # Only the exact text we issue is accepted: no naive times, no alternative spellings.
    if created_at.tzinfo is None or encode_cursor(created_at, product_id) != cursor:
        raise InvalidCursor()
    return created_at, product_id
