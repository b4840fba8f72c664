"""SQL for Idempotency-Key records."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass

from tessera_catalog.db.records import Executor


@dataclass(frozen=True, slots=True)
class StoredResponse:
    request_hash: str
    status_code: int
    body: bytes
    headers: dict[str, str]


async def claim(
    conn: Executor, scope: str, key: str, request_hash: str, ttl_s: float
) -> StoredResponse | None:
    """Claim (scope, key) for this transaction, or return the response stored for it.

    Must run inside the transaction that performs the change. A concurrent request
    with the same key blocks on the primary key until this transaction ends, then
    sees the stored response (commit) or claims the key itself (rollback).
    """
    # Loops only if the row we collided with vanished before we could read it
    # (expired and purged in between): then the key is free to claim again.
    while True:
        # An expired key is free again; deleting it here keeps the claim one statement.
        await conn.execute(
            """
            DELETE FROM idempotency_keys
            WHERE scope = $1 AND key = $2 AND created_at < now() - make_interval(secs => $3)
            """,
            scope,
            key,
            ttl_s,
        )
        claimed = await conn.fetchval(
            """
            INSERT INTO idempotency_keys (scope, key, request_hash) VALUES ($1, $2, $3)
            ON CONFLICT (scope, key) DO NOTHING
            RETURNING true
            """,
            scope,
            key,
            request_hash,
        )
        if claimed:
            return None
        # Read committed: this statement sees the row whose commit made ours conflict.
        row = await conn.fetchrow(
            """
            SELECT request_hash, status_code, response_body, headers::text AS headers
            FROM idempotency_keys WHERE scope = $1 AND key = $2
            """,
            scope,
            key,
        )
        if row is not None and row["status_code"] is not None:
            return StoredResponse(
                request_hash=row["request_hash"],
                status_code=row["status_code"],
                body=bytes(row["response_body"]),
                headers=json.loads(row["headers"]),
            )


async def complete(
    conn: Executor,
    scope: str,
    key: str,
    status_code: int,
    body: bytes,
    headers: Mapping[str, str],
) -> None:
    await conn.execute(
        """
        UPDATE idempotency_keys SET status_code = $3, response_body = $4, headers = $5::jsonb
        WHERE scope = $1 AND key = $2
        """,
        scope,
        key,
        status_code,
        body,
        json.dumps(dict(headers)),
    )


async def purge_expired(conn: Executor, ttl_s: float) -> int:
    status = await conn.execute(
        "DELETE FROM idempotency_keys WHERE created_at < now() - make_interval(secs => $1)", ttl_s
    )
    return int(status.split()[-1])
