"""PostgreSQL going away under requests: every route answers 503 problem+json, never 500.

A request is held in flight by a table lock the test takes, then its backend
goes: terminated (`pg_terminate_backend`, SQLSTATE 57P01, as in a fast
shutdown), the whole server stopped, or crashed by a SIGKILLed backend. Stops
and crashes run on an embedded server of the test's own, so the session's
server is left alone. A lost COMMIT acknowledgement and a FATAL on an idle
connection are made by a proxy between the catalog and the server (`pg_proxy`).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from pydantic import PostgresDsn
from tessera_catalog.db.migrate import apply_migrations
from tessera_catalog.settings import Settings
from tessera_stack.postgres import EmbeddedPostgres, create_database
from tessera_stack.testing import Json, WaitUntil, product_body, product_body_v2

from .conftest import Db, MakeProduct, Serve
from .pg_proxy import PostgresProxy, fatal_error, through
from .pg_proxy import postgres_proxy_fixture as postgres_proxy_fixture

Send = Callable[[httpx.AsyncClient, Json], Awaitable[httpx.Response]]

TABLES = "products, reviews, inventory, idempotency_keys"
POOL_APPLICATION_NAME = "tessera-catalog"
CATALOG_BACKENDS = (
    "FROM pg_stat_activity WHERE datname = current_database() "
    f"AND application_name = '{POOL_APPLICATION_NAME}' AND wait_event_type = 'Lock'"
)


REVIEW = {"rating": 4, "title": "Solid", "body": "Does the job.", "author": "Ana"}

# Every route that reads or writes PostgreSQL (enriched has its own timeouts and
# answers 503 ProductUnavailable on its own).
REQUESTS: dict[str, Send] = {
    "v1 list": lambda c, p: c.get("/v1/products"),
    "v1 get": lambda c, p: c.get(f"/v1/products/{p['id']}"),
    "v1 create": lambda c, p: c.post("/v1/products", json=product_body("NEW-1")),
    "v1 create with key": lambda c, p: c.post(
        "/v1/products", json=product_body("NEW-1"), headers={"Idempotency-Key": "outage-1"}
    ),
    "v1 patch": lambda c, p: c.patch(f"/v1/products/{p['id']}", json={"name": "Changed"}),
    "v1 delete": lambda c, p: c.delete(f"/v1/products/{p['id']}"),
    "v2 list": lambda c, p: c.get("/v2/products"),
    "v2 get": lambda c, p: c.get(f"/v2/products/{p['id']}"),
    "v2 create": lambda c, p: c.post("/v2/products", json=product_body_v2("NEW-1")),
    "v2 patch": lambda c, p: c.patch(f"/v2/products/{p['id']}", json={"name": "Changed"}),
    "reviews list": lambda c, p: c.get(f"/v1/products/{p['id']}/reviews"),
    "reviews create": lambda c, p: c.post(f"/v1/products/{p['id']}/reviews", json=REVIEW),
    "reviews create with key": lambda c, p: c.post(
        f"/v1/products/{p['id']}/reviews", json=REVIEW, headers={"Idempotency-Key": "outage-2"}
    ),
    "inventory get": lambda c, p: c.get(f"/v1/products/{p['id']}/inventory"),
    "inventory set": lambda c, p: c.put(f"/v1/products/{p['id']}/inventory", json={"quantity": 7}),
}


def assert_unavailable(response: httpx.Response, title: str = "DatabaseUnavailable") -> None:
    assert response.status_code == 503, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["retry-after"] == "1"
    assert response.json()["title"] == title
    assert response.json()["upstream"] == "postgresql"


async def snapshot(db: Db) -> list[tuple[Any, ...]]:
    """Everything a write could change, to show that a 503 changed nothing."""
    rows = await db.fetch(
        "SELECT (SELECT json_agg(p ORDER BY id)::text FROM products p),"
        " (SELECT count(*) FROM reviews), (SELECT json_agg(i)::text FROM inventory i),"
        " (SELECT count(*) FROM outbox), (SELECT count(*) FROM idempotency_keys)"
    )
    return [tuple(r) for r in rows]


async def blocked_in_flight(
    db: Db, client: httpx.AsyncClient, send: Send, product: Json, wait_until: WaitUntil
) -> asyncio.Task[httpx.Response]:
    """Start `send` and return once the catalog's query waits on the test's table locks.

    `db` must be in a transaction that holds them.
    """

    async def call() -> httpx.Response:
        return await send(client, product)

    request = asyncio.create_task(call())

    async def waiting() -> bool:
        assert not request.done(), request.result().text
        return bool(await db.fetchval(f"SELECT count(*) {CATALOG_BACKENDS}"))

    await wait_until(waiting, timeout_s=5, what="the request to wait on the lock")
    return request


async def terminated_in_flight(
    db: Db, client: httpx.AsyncClient, send: Send, product: Json, wait_until: WaitUntil
) -> httpx.Response:
    """The answer to `send` when its backend is terminated while it waits on a table lock."""
    async with db.transaction():
        await db.execute(f"LOCK TABLE {TABLES} IN ACCESS EXCLUSIVE MODE")
        request = await blocked_in_flight(db, client, send, product, wait_until)
        assert await db.fetchval(f"SELECT count(pg_terminate_backend(pid)) {CATALOG_BACKENDS}")
        return await request


class TestTerminatedConnection:
    """pg_terminate_backend: what a fast shutdown or an operator does to each session."""

    @pytest.mark.parametrize("name", REQUESTS)
    async def test_a_request_whose_backend_is_terminated_is_503_and_changes_nothing(
        self,
        name: str,
        client: httpx.AsyncClient,
        make_product: MakeProduct,
        db: Db,
        wait_until: WaitUntil,
    ) -> None:
        product = await make_product()
        before = await snapshot(db)

        response = await terminated_in_flight(db, client, REQUESTS[name], product, wait_until)

        assert_unavailable(response)
        assert await snapshot(db) == before
        # The pool replaces the terminated connection: the same request now works.
        again = await REQUESTS[name](client, product)
        assert again.status_code < 300, again.text
        assert "idempotent-replayed" not in again.headers

    async def test_enriched_product_whose_parts_are_terminated_is_503(
        self, client: httpx.AsyncClient, make_product: MakeProduct, db: Db, wait_until: WaitUntil
    ) -> None:
        def enriched(c: httpx.AsyncClient, p: Json) -> Awaitable[httpx.Response]:
            return c.get(f"/v1/products/{p['id']}/enriched")

        product = await make_product()

        response = await terminated_in_flight(db, client, enriched, product, wait_until)

        assert_unavailable(response, "ProductUnavailable")


# --- a server of the test's own: stopped, crashed, restarted -----------------------------


@pytest.fixture(scope="module")
def own_postgres() -> Iterator[EmbeddedPostgres]:
    # Not tmp_path: the server may run as `nobody`, which needs to traverse the path.
    root = Path(tempfile.mkdtemp(prefix="tessera-outage-postgres-"))
    os.chmod(root, 0o755)
    try:
        # fsync on: with it off (synchronous_commit=off) a crash loses the last
        # commits, the migrations of a test's fresh database among them.
        with EmbeddedPostgres(root / "data", fsync=True) as server:
            yield server
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
async def own_url(own_postgres: EmbeddedPostgres) -> str:
    own_postgres.start()  # a test may have left it stopped
    name = f"outage_{os.urandom(6).hex()}"
    url = await create_database(own_postgres.dsn, name)
    await apply_migrations(url)
    return url


@pytest.fixture
async def own_client(
    serve: Serve, settings: Settings, own_url: str
) -> AsyncIterator[httpx.AsyncClient]:
    own = settings.model_copy(update={"database_url": PostgresDsn(own_url)})
    async with serve(own) as client:
        yield client


async def hold_locks(url: str) -> tuple[Db, int]:
    """A connection in a transaction that locks every table; and its backend's pid."""
    conn = await asyncpg.connect(url)
    await conn.execute(f"BEGIN; LOCK TABLE {TABLES} IN ACCESS EXCLUSIVE MODE")
    pid = await conn.fetchval("SELECT pg_backend_pid()")
    return conn, int(pid)


async def fault_under_a_request(
    client: httpx.AsyncClient,
    url: str,
    send: Send,
    fault: Callable[[int], Awaitable[None]],
    wait_until: WaitUntil,
) -> Json:
    """Create a product and hold `send` on it in flight, then `fault`: `send` gets a 503.

    `fault` is given the pid of the backend whose locks `send` waits on.
    Returns the product.
    """
    created = await client.post("/v1/products", json=product_body("OLD-1"))
    assert created.status_code == 201
    holder, pid = await hold_locks(url)
    try:
        request = await blocked_in_flight(holder, client, send, created.json(), wait_until)
        await fault(pid)
        assert_unavailable(await request)
    finally:
        holder.terminate()
    product: Json = created.json()
    return product


async def until_serving(client: httpx.AsyncClient, sku: str) -> list[int]:
    """POST one product until it is created; the statuses answered on the way."""
    statuses = []
    for _ in range(300):
        response = await client.post("/v1/products", json=product_body(sku))
        statuses.append(response.status_code)
        if response.status_code == 201:
            return statuses
        assert_unavailable(response)
        await asyncio.sleep(0.05)
    pytest.fail(f"the catalog did not recover: {statuses[-5:]}")


async def skus(url: str) -> list[str]:
    conn = await asyncpg.connect(url)
    try:
        return [r["sku"] for r in await conn.fetch("SELECT sku FROM products ORDER BY sku")]
    finally:
        await conn.close()


class TestServerStopsAndComesBack:
    @pytest.mark.parametrize("name", ["v1 create with key", "v1 patch", "v2 list"])
    async def test_a_fast_shutdown_under_a_request_is_503_then_it_serves_again(
        self,
        name: str,
        own_client: httpx.AsyncClient,
        own_postgres: EmbeddedPostgres,
        own_url: str,
        wait_until: WaitUntil,
    ) -> None:
        async def stop(_: int) -> None:
            await asyncio.to_thread(own_postgres.stop)

        product = await fault_under_a_request(own_client, own_url, REQUESTS[name], stop, wait_until)

        # Stopped: refused connections.
        assert_unavailable(await REQUESTS[name](own_client, product))
        await asyncio.to_thread(own_postgres.start)
        await until_serving(own_client, "NEW-2")
        assert await skus(own_url) == ["NEW-2", "OLD-1"]

    async def test_a_crashed_backend_restarting_the_server_gives_503s_until_it_is_back(
        self, own_client: httpx.AsyncClient, own_url: str, wait_until: WaitUntil
    ) -> None:
        async def crash(pid: int) -> None:
            # A backend killed by signal makes the postmaster end every other session
            # (57P02) and run crash recovery ("the database system is in recovery mode").
            os.kill(pid, signal.SIGKILL)

        await fault_under_a_request(own_client, own_url, REQUESTS["v1 patch"], crash, wait_until)

        statuses = await until_serving(own_client, "NEW-2")
        assert set(statuses) <= {201, 503}
        assert await skus(own_url) == ["NEW-2", "OLD-1"]


# --- faults made by a proxy: a lost COMMIT acknowledgement, a FATAL on an idle session ---


@pytest.fixture
async def proxied_client(
    serve: Serve, settings: Settings, postgres_proxy: PostgresProxy, migrated_url: str
) -> AsyncIterator[httpx.AsyncClient]:
    update = {"database_url": through(postgres_proxy, migrated_url)}
    async with serve(settings.model_copy(update=update)) as client:
        yield client


class TestCommitAcknowledgementLost:
    async def test_is_503_saying_the_outcome_is_unknown_and_a_retry_with_the_key_replays(
        self, proxied_client: httpx.AsyncClient, postgres_proxy: PostgresProxy, db: Db
    ) -> None:
        headers = {"Idempotency-Key": "lost-ack"}
        # The create's own session (the one storing the idempotent response), not
        # the relay's, which commits too.
        postgres_proxy.lose_commit_reply(after=b"UPDATE idempotency_keys")
        first = await proxied_client.post(
            "/v1/products", json=product_body("ACK-1"), headers=headers
        )

        assert postgres_proxy.commit_reply_lost.is_set()
        assert_unavailable(first, "CommitOutcomeUnknown")
        assert "may or may not" in first.json()["detail"]
        # It did commit: the retry with the same key gets the original answer back.
        retry = await proxied_client.post(
            "/v1/products", json=product_body("ACK-1"), headers=headers
        )
        assert retry.status_code == 201, retry.text
        assert retry.headers["idempotent-replayed"] == "true"
        assert await db.fetchval("SELECT count(*) FROM products WHERE sku = 'ACK-1'") == 1
        assert retry.json()["id"] == str(await db.fetchval("SELECT id FROM products"))

    async def test_a_503_before_commit_says_nothing_was_changed(
        self, client: httpx.AsyncClient, make_product: MakeProduct, db: Db, wait_until: WaitUntil
    ) -> None:
        product = await make_product()

        response = await terminated_in_flight(db, client, REQUESTS["v1 patch"], product, wait_until)

        assert_unavailable(response)
        assert "nothing was changed" in response.json()["detail"]


class TestFatalOnAnIdleConnection:
    async def test_the_next_request_on_it_is_503_and_the_connection_is_not_lent_again(
        self,
        serve: Serve,
        settings: Settings,
        postgres_proxy: PostgresProxy,
        migrated_url: str,
        db: Db,
        wait_until: WaitUntil,
    ) -> None:
        # The relay must not be the first to borrow a connection after the fault.
        quiet_relay = {"outbox_poll_interval_s": 60.0, "outbox_pending_refresh_s": 60.0}
        update = {"database_url": through(postgres_proxy, migrated_url)} | quiet_relay
        async with serve(settings.model_copy(update=update)) as client:
            created = await client.post("/v1/products", json=product_body("IDLE-1"))
            assert created.status_code == 201

            async def published() -> bool:
                return not await db.fetchval(
                    "SELECT count(*) FROM outbox WHERE published_at IS NULL"
                )

            await wait_until(published, what="the relay to publish the create")
            await asyncio.sleep(0.2)  # and to go back to waiting
            # What a fast shutdown sends each idle session; the close that follows
            # is held back, so the pool still thinks its connections are open.
            fatal = fatal_error("57P01", "terminating connection due to administrator command")
            assert postgres_proxy.inject(fatal, application_name=POOL_APPLICATION_NAME)
            await asyncio.sleep(0.1)

            # Every pooled connection got the message: the first borrower fails.
            assert_unavailable(await REQUESTS["v1 patch"](client, created.json()))
            # Each broken connection fails one request at most, then a new one serves.
            for _ in range(10):
                response = await REQUESTS["v1 get"](client, created.json())
                if response.status_code == 200:
                    break
                assert_unavailable(response)
            assert response.status_code == 200
