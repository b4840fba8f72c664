"""PostgreSQL going away under requests: every route answers 503 problem+json, never 500.

A request is held in flight by a table lock the test takes, then its backend
goes: terminated (`pg_terminate_backend`, SQLSTATE 57P01, as in a fast
shutdown), the whole server stopped, or crashed by a SIGKILLed backend. Stops
and crashes run on an embedded server of the test's own, so the session's
server is left alone. A lost COMMIT acknowledgement is made by a proxy that
forwards COMMIT and drops the reply.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeAlias
from urllib.parse import urlsplit

import asyncpg
import httpx
import pytest
from pydantic import PostgresDsn
from tessera_catalog.db.migrate import apply_migrations
from tessera_catalog.messaging.relay import LISTENER_APPLICATION_NAME
from tessera_catalog.settings import Settings
from tessera_stack.postgres import EmbeddedPostgres, create_database

Json = dict[str, Any]
Serve = Callable[[Settings], Any]
WaitUntil = Callable[..., Awaitable[None]]
Db: TypeAlias = "asyncpg.Connection[asyncpg.Record]"
Send = Callable[[httpx.AsyncClient, Json], Awaitable[httpx.Response]]

TABLES = "products, reviews, inventory, idempotency_keys"
CATALOG_BACKENDS = (
    "FROM pg_stat_activity WHERE datname = current_database() "
    "AND application_name = 'tessera-catalog' AND wait_event_type = 'Lock'"
)


def body_v1(sku: str) -> Json:
    return {
        "sku": sku,
        "name": "Oak Desk Lamp",
        "description": "A warm reading lamp.",
        "category": "home",
        "price": 49.99,
        "currency": "USD",
    }


def body_v2(sku: str) -> Json:
    body = body_v1(sku)
    del body["currency"]
    return body | {"price": {"amount": "49.99", "currency": "USD"}}


REVIEW = {"rating": 4, "title": "Solid", "body": "Does the job.", "author": "Ana"}

# Every route that reads or writes PostgreSQL (enriched has its own timeouts and
# answers 503 ProductUnavailable on its own).
REQUESTS: dict[str, Send] = {
    "v1 list": lambda c, p: c.get("/v1/products"),
    "v1 get": lambda c, p: c.get(f"/v1/products/{p['id']}"),
    "v1 create": lambda c, p: c.post("/v1/products", json=body_v1("NEW-1")),
    "v1 create with key": lambda c, p: c.post(
        "/v1/products", json=body_v1("NEW-1"), headers={"Idempotency-Key": "outage-1"}
    ),
    "v1 patch": lambda c, p: c.patch(f"/v1/products/{p['id']}", json={"name": "Changed"}),
    "v1 delete": lambda c, p: c.delete(f"/v1/products/{p['id']}"),
    "v2 list": lambda c, p: c.get("/v2/products"),
    "v2 get": lambda c, p: c.get(f"/v2/products/{p['id']}"),
    "v2 create": lambda c, p: c.post("/v2/products", json=body_v2("NEW-1")),
    "v2 patch": lambda c, p: c.patch(f"/v2/products/{p['id']}", json={"name": "Changed"}),
    "reviews list": lambda c, p: c.get(f"/v1/products/{p['id']}/reviews"),
    "reviews create": lambda c, p: c.post(f"/v1/products/{p['id']}/reviews", json=REVIEW),
    "reviews create with key": lambda c, p: c.post(
        f"/v1/products/{p['id']}/reviews", json=REVIEW, headers={"Idempotency-Key": "outage-2"}
    ),
    "inventory get": lambda c, p: c.get(f"/v1/products/{p['id']}/inventory"),
    "inventory set": lambda c, p: c.put(f"/v1/products/{p['id']}/inventory", json={"quantity": 7}),
}
WRITES = [name for name in REQUESTS if not name.endswith(("list", "get"))]


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


class TestTerminatedConnection:
    """pg_terminate_backend: what a fast shutdown or an operator does to each session."""

    @pytest.mark.parametrize("name", REQUESTS)
    async def test_a_request_whose_backend_is_terminated_is_503_and_changes_nothing(
        self,
        name: str,
        client: httpx.AsyncClient,
        make_product: Callable[..., Awaitable[Json]],
        db: Db,
        wait_until: WaitUntil,
    ) -> None:
        product = await make_product()
        before = await snapshot(db)
        async with db.transaction():
            await db.execute(f"LOCK TABLE {TABLES} IN ACCESS EXCLUSIVE MODE")
            request = await blocked_in_flight(db, client, REQUESTS[name], product, wait_until)
            assert await db.fetchval(f"SELECT count(pg_terminate_backend(pid)) {CATALOG_BACKENDS}")
            response = await request

        assert_unavailable(response)
        assert await snapshot(db) == before
        # The pool replaces the terminated connection: the same request now works.
        again = await REQUESTS[name](client, product)
        assert again.status_code < 300, again.text
        assert "idempotent-replayed" not in again.headers

    async def test_enriched_product_whose_parts_are_terminated_is_503(
        self,
        client: httpx.AsyncClient,
        make_product: Callable[..., Awaitable[Json]],
        db: Db,
        wait_until: WaitUntil,
    ) -> None:
        product = await make_product()
        async with db.transaction():
            await db.execute(f"LOCK TABLE {TABLES} IN ACCESS EXCLUSIVE MODE")
            request = await blocked_in_flight(
                db, client, lambda c, p: c.get(f"/v1/products/{p['id']}/enriched"), product,
                wait_until,
            )  # fmt: skip
            await db.fetchval(f"SELECT count(pg_terminate_backend(pid)) {CATALOG_BACKENDS}")
            response = await request

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


async def until_serving(client: httpx.AsyncClient, sku: str) -> list[int]:
    """POST one product until it is created; the statuses answered on the way."""
    statuses = []
    for _ in range(300):
        response = await client.post("/v1/products", json=body_v1(sku))
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
        created = await own_client.post("/v1/products", json=body_v1("OLD-1"))
        assert created.status_code == 201
        holder, _ = await hold_locks(own_url)
        try:
            request = await blocked_in_flight(
                holder, own_client, REQUESTS[name], created.json(), wait_until
            )
            await asyncio.to_thread(own_postgres.stop)
            assert_unavailable(await request)
        finally:
            holder.terminate()

        # Stopped: refused connections.
        assert_unavailable(await REQUESTS[name](own_client, created.json()))
        await asyncio.to_thread(own_postgres.start)
        await until_serving(own_client, "NEW-2")
        assert await skus(own_url) == ["NEW-2", "OLD-1"]

    async def test_a_crashed_backend_restarting_the_server_gives_503s_until_it_is_back(
        self,
        own_client: httpx.AsyncClient,
        own_url: str,
        wait_until: WaitUntil,
    ) -> None:
        created = await own_client.post("/v1/products", json=body_v1("OLD-1"))
        assert created.status_code == 201
        holder, pid = await hold_locks(own_url)
        try:
            request = await blocked_in_flight(
                holder, own_client, REQUESTS["v1 patch"], created.json(), wait_until
            )
            # A backend killed by signal makes the postmaster end every other session
            # (57P02) and run crash recovery ("the database system is in recovery mode").
            os.kill(pid, signal.SIGKILL)
            assert_unavailable(await request)
        finally:
            holder.terminate()

        statuses = await until_serving(own_client, "NEW-2")
        assert set(statuses) <= {201, 503}
        assert await skus(own_url) == ["NEW-2", "OLD-1"]


# --- the acknowledgement of a COMMIT is lost -----------------------------------------------


class FaultyProxy:
    """A TCP proxy to PostgreSQL that makes two faults on demand.

    * `armed`: forward an idempotent create's COMMIT and drop the reply. The
      server commits; the catalog sees the connection close before the answer.
    * `inject(message)`: send a server message to every client connection, as a
      dying server does to its idle sessions (57P01) an instant before it closes them.
    """

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.port = 0
        self.armed = False
        self.cut = asyncio.Event()
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._clients: set[asyncio.StreamWriter] = set()

    def inject(self, message: bytes) -> None:
        """Send `message` to the pool's connections (not the relay's LISTEN connection)."""
        for writer in self._clients:
            writer.write(message)

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.create_task(self._forward(reader, writer))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _forward(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self.target)
        startup = await reader.read(65536)
        up_writer.write(startup)
        if LISTENER_APPLICATION_NAME.encode() not in startup:
            self._clients.add(writer)
        committing = asyncio.Event()
        doomed = False

        async def upstream() -> None:
            nonlocal doomed
            while data := await reader.read(65536):
                # The create's own connection (the one storing the idempotent
                # response), not the relay's, which commits too.
                if self.armed and b"UPDATE idempotency_keys" in data:
                    self.armed = False
                    doomed = True
                if doomed and b"COMMIT" in data:
                    committing.set()
                up_writer.write(data)
                await up_writer.drain()
            up_writer.close()

        async def downstream() -> None:
            while data := await up_reader.read(65536):
                if committing.is_set():
                    # The server's reply to COMMIT: it committed; the client never hears.
                    self.cut.set()
                    writer.transport.abort()
                    up_writer.transport.abort()
                    return
                writer.write(data)
                await writer.drain()
            writer.close()

        try:
            await asyncio.gather(upstream(), downstream())
        except OSError:
            pass
        finally:
            self._clients.discard(writer)
            writer.transport.abort()
            up_writer.transport.abort()


@pytest.fixture
async def cutter(migrated_url: str) -> AsyncIterator[FaultyProxy]:
    target = urlsplit(migrated_url)
    assert target.hostname is not None
    assert target.port is not None
    proxy = FaultyProxy(target.hostname, target.port)
    await proxy.start()
    try:
        yield proxy
    finally:
        await proxy.stop()


@pytest.fixture
async def cut_client(
    serve: Serve, settings: Settings, cutter: FaultyProxy, migrated_url: str
) -> AsyncIterator[httpx.AsyncClient]:
    update = {"database_url": through(cutter, migrated_url)}
    async with serve(settings.model_copy(update=update)) as client:
        yield client


def through(proxy: FaultyProxy, url: str) -> PostgresDsn:
    """`url` with the proxy's address in place of the server's."""
    parts = urlsplit(url)
    userinfo, _, _ = parts.netloc.rpartition("@")
    return PostgresDsn(parts._replace(netloc=f"{userinfo}@127.0.0.1:{proxy.port}").geturl())


class TestCommitAcknowledgementLost:
    async def test_is_503_saying_the_outcome_is_unknown_and_a_retry_with_the_key_replays(
        self, cut_client: httpx.AsyncClient, cutter: FaultyProxy, db: Db
    ) -> None:
        headers = {"Idempotency-Key": "lost-ack"}
        cutter.armed = True
        first = await cut_client.post("/v1/products", json=body_v1("ACK-1"), headers=headers)

        assert cutter.cut.is_set()
        assert_unavailable(first, "CommitOutcomeUnknown")
        assert "may or may not" in first.json()["detail"]
        # It did commit: the retry with the same key gets the original answer back.
        retry = await cut_client.post("/v1/products", json=body_v1("ACK-1"), headers=headers)
        assert retry.status_code == 201, retry.text
        assert retry.headers["idempotent-replayed"] == "true"
        assert await db.fetchval("SELECT count(*) FROM products WHERE sku = 'ACK-1'") == 1
        assert retry.json()["id"] == str(await db.fetchval("SELECT id FROM products"))

    async def test_a_503_before_commit_says_nothing_was_changed(
        self,
        client: httpx.AsyncClient,
        make_product: Callable[..., Awaitable[Json]],
        db: Db,
        wait_until: WaitUntil,
    ) -> None:
        product = await make_product()
        async with db.transaction():
            await db.execute(f"LOCK TABLE {TABLES} IN ACCESS EXCLUSIVE MODE")
            request = await blocked_in_flight(db, client, REQUESTS["v1 patch"], product, wait_until)
            await db.fetchval(f"SELECT count(pg_terminate_backend(pid)) {CATALOG_BACKENDS}")
            response = await request

        assert_unavailable(response)
        assert "nothing was changed" in response.json()["detail"]


def fatal_error(code: str, message: str) -> bytes:
    """A PostgreSQL ErrorResponse message of severity FATAL."""
    fields = b"".join(
        kind + value.encode() + b"\0"
        for kind, value in ((b"S", "FATAL"), (b"V", "FATAL"), (b"C", code), (b"M", message))
    )
    body = fields + b"\0"
    return b"E" + (len(body) + 4).to_bytes(4, "big") + body


class TestFatalOnAnIdleConnection:
    async def test_the_next_request_on_it_is_503_and_the_connection_is_not_lent_again(
        self,
        serve: Serve,
        settings: Settings,
        cutter: FaultyProxy,
        migrated_url: str,
        db: Db,
        wait_until: WaitUntil,
    ) -> None:
        # The relay must not be the first to borrow a connection after the fault.
        quiet_relay = {"outbox_poll_interval_s": 60.0, "outbox_pending_refresh_s": 60.0}
        async with serve(
            settings.model_copy(
                update={"database_url": through(cutter, migrated_url)} | quiet_relay
            )
        ) as client:
            await self._check(client, cutter, db, wait_until)

    async def _check(
        self, cut_client: httpx.AsyncClient, cutter: FaultyProxy, db: Db, wait_until: WaitUntil
    ) -> None:
        created = await cut_client.post("/v1/products", json=body_v1("IDLE-1"))
        assert created.status_code == 201

        async def published() -> bool:
            return not await db.fetchval("SELECT count(*) FROM outbox WHERE published_at IS NULL")

        await wait_until(published, what="the relay to publish the create")
        await asyncio.sleep(0.2)  # and to go back to waiting
        # What a fast shutdown sends each idle session; the close that follows
        # is held back, so the pool still thinks its connections are open.
        cutter.inject(fatal_error("57P01", "terminating connection due to administrator command"))
        await asyncio.sleep(0.1)

        # Every pooled connection got the message: the first borrower fails.
        assert_unavailable(await REQUESTS["v1 patch"](cut_client, created.json()))
        # Each broken connection fails one request at most, then a new one serves.
        for _ in range(10):
            response = await REQUESTS["v1 get"](cut_client, created.json())
            if response.status_code == 200:
                break
            assert_unavailable(response)
        assert response.status_code == 200
