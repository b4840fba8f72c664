"""Pieces every route shares: JSON responses, NUL checks, idempotency, page limits.

Parameters and headers are not declared here: each operation's models in
`tessera_contracts.parameters` are (see `tessera_runtime.operations.implements`).
"""

from __future__ import annotations

from collections.abc import Mapping

from fastapi import Request
from fastapi.responses import Response
from pydantic import BaseModel
from tessera_contracts.operations import JSON
from tessera_contracts.parameters import MAX_LIMIT
from tessera_contracts.problem import FieldError

from tessera_catalog.domain.idempotency import REPLAYED_HEADER, IdempotencyRequest, Rendered
from tessera_catalog.errors import InvalidValue


def clamp_limit(limit: int) -> int:
    """The page size served for a `limit` (the contract allows more than `MAX_LIMIT`)."""
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
