"""Idempotency-Key handling for creates: a retry gets the first response back.

The key is claimed in the transaction of the create and the response is stored
in that same transaction, so either both the change and its stored response
exist or neither does. A request that fails (409 duplicate sku, 422, ...) rolls
the claim back too: retrying it with the same key runs it again.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

from pydantic import BaseModel

from tessera_catalog.db import idempotency
from tessera_catalog.db.records import Executor
from tessera_catalog.errors import IdempotencyKeyReused

REPLAYED_HEADER = "Idempotent-Replayed"
"""Set to `true` on a response that repeats a stored one."""


@dataclass(frozen=True, slots=True)
class IdempotencyRequest:
    scope: str
    """Method and path, e.g. `POST /v1/products`: a key is only reused within one endpoint."""
    key: str
    request_hash: str

    @classmethod
    def build(cls, method: str, path: str, key: str, body: BaseModel) -> IdempotencyRequest:
        # The validated body, re-serialized, is compared rather than the raw bytes,
        # so a retry that differs only in whitespace or key order still matches.
        digest = hashlib.sha256(body.model_dump_json().encode()).hexdigest()
        return cls(scope=f"{method} {path}", key=key, request_hash=digest)


@dataclass(frozen=True, slots=True)
class Rendered:
    """A response as it is sent and, for an idempotent create, as it is stored."""

    status_code: int
    body: bytes
    headers: Mapping[str, str] = field(default_factory=dict)
    replayed: bool = False


async def run_idempotent(
    conn: Executor,
    request: IdempotencyRequest | None,
    ttl_s: float,
    action: Callable[[], Awaitable[Rendered]],
) -> Rendered:
    """Run `action` once per key; `conn` must be inside the caller's transaction."""
    if request is None:
        return await action()
    stored = await idempotency.claim(conn, request.scope, request.key, request.request_hash, ttl_s)
    if stored is not None:
        if stored.request_hash != request.request_hash:
            raise IdempotencyKeyReused()
        return Rendered(stored.status_code, stored.body, stored.headers, replayed=True)
    rendered = await action()
    await idempotency.complete(
        conn, request.scope, request.key, rendered.status_code, rendered.body, rendered.headers
    )
    return rendered
