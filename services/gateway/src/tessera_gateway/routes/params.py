"""Parameters of the catalog operations, documented as the catalog enforces them.

The gateway does not check them (the catalog does, and its 422 reaches the
client); they are here so `/docs` shows each operation's real contract.
"""

from __future__ import annotations

from typing import Annotated, Final

from fastapi import Header, Query

DEFAULT_LIMIT: Final = 20
MAX_LIMIT: Final = 100

Limit = Annotated[
    int,
    Query(ge=1, description=f"Page size; values above {MAX_LIMIT} are served as {MAX_LIMIT}."),
]
Offset = Annotated[int, Query(ge=0, le=2**31 - 1, description="Index of the first item.")]
SearchQuery = Annotated[
    str | None,
    Query(
        min_length=1,
        max_length=200,
        description="Full-text search over name and description (web-search syntax: "
        '`lamp oak`, `"desk lamp"`, `lamp -oak`, `lamp or vase`).',
    ),
]
CategoryFilter = Annotated[
    str | None, Query(min_length=1, max_length=64, description="Exact category name.")
]
Cursor = Annotated[
    str | None,
    Query(
        description="`next_cursor` of the previous page; omit for the first page. "
        "A cursor this API did not issue is 400."
    ),
]
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=255,
        description="Makes a retry of this create return the first response (a different "
        "body with the same key is 409). The gateway itself retries such a POST when the "
        "catalog is briefly unavailable.",
    ),
]
IfMatch = Annotated[
    str | None,
    Header(
        alias="If-Match",
        max_length=1024,
        description="ETag from a GET; the write happens only if the product is unchanged (else 412).",
    ),
]
IfNoneMatch = Annotated[
    str | None,
    Header(
        alias="If-None-Match", max_length=1024, description="ETag you have: 304 when unchanged."
    ),
]
