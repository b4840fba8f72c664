"""Pieces every route shares: query and header parameters, JSON responses, NUL checks."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Final

from fastapi import Header, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel
from tessera_contracts.problem import FieldError

from tessera_catalog.errors import InvalidValue
from tessera_catalog.idempotency import REPLAYED_HEADER, IdempotencyRequest, Rendered

DEFAULT_LIMIT: Final = 20
MAX_LIMIT: Final = 100
"""Largest page: a larger `limit` is served as this many (the page's `limit` says so)."""
MAX_OFFSET: Final = 2**31 - 1
JSON: Final = "application/json"

# PostgreSQL text cannot hold U+0000; refusing it up front gives the client a
# 422 that points at the parameter instead of a database error.
_NO_NUL = r"^[^\x00]+$"

Limit = Annotated[
    int,
    Query(ge=1, description=f"Page size; values above {MAX_LIMIT} are served as {MAX_LIMIT}."),
]
Offset = Annotated[int, Query(ge=0, le=MAX_OFFSET, description="Index of the first item.")]
SearchQuery = Annotated[
    str | None,
    Query(
        min_length=1,
        max_length=200,
        pattern=_NO_NUL,
        description="Full-text search over name and description (web-search syntax: "
        '`lamp oak`, `"desk lamp"`, `lamp -oak`, `lamp or vase`).',
    ),
]
CategoryFilter = Annotated[
    str | None,
    Query(min_length=1, max_length=64, pattern=_NO_NUL, description="Exact category name."),
]
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=255,
        pattern=r"^[\x21-\x7e]+$",
        description="Makes a retry of this create return the first response "
        "(a different body with the same key is 409). Remembered for 24 h by default.",
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
IfNoneMatch = Annotated[str | None, Header(alias="If-None-Match", max_length=1024)]


def clamp_limit(limit: int) -> int:
    return min(limit, MAX_LIMIT)


def json_response(
    model: BaseModel, status_code: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    # Serialized here, once: returning the model would make FastAPI validate it again.
    return Response(
        model.model_dump_json().encode(),
        status_code=status_code,
        headers=dict(headers) if headers else None,
        media_type=JSON,
    )


def rendered_response(rendered: Rendered) -> Response:
    headers = dict(rendered.headers)
    if rendered.replayed:
        headers[REPLAYED_HEADER] = "true"
    return Response(
        rendered.body, status_code=rendered.status_code, headers=headers, media_type=JSON
    )


def idempotency_request(
    request: Request, key: str | None, body: BaseModel
) -> IdempotencyRequest | None:
    if key is None:
        return None
    return IdempotencyRequest.build(request.method, request.url.path, key, body)


def reject_nul(body: BaseModel) -> None:
    """422 for any U+0000 in the body's strings (PostgreSQL text cannot store it)."""
    errors = [
        FieldError(
            loc=["body", name], msg="must not contain U+0000", type="string_pattern_mismatch"
        )
        for name, value in body
        if isinstance(value, str) and "\x00" in value
    ]
    if errors:
        raise InvalidValue("text must not contain NUL characters", errors)


def none_match(header: str | None, etag: str) -> bool:
    """If-None-Match: True when the client already has `etag` (weak comparison)."""
    if header is None:
        return False
    if header.strip() == "*":
        return True
    return any(tag.strip().removeprefix("W/") == etag for tag in header.split(","))
