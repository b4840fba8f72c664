"""The fixtures of `tessera_stack.testing`, used directly and from inner pytest sessions."""

from __future__ import annotations

import json
import socket
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import ClassVar
from urllib.parse import urlsplit

import asyncpg
import httpx
import nats
import pytest
from tessera_stack.nats import EmbeddedNats
from tessera_stack.testing import (
    NatsServer,
    WaitUntil,
    assert_problem,
    assert_problem_body,
    checked_external_database,
    error_locs,
)

PytestRunner = Callable[[str, dict[str, str]], subprocess.CompletedProcess[str]]


async def test_database_url_is_a_new_empty_database_on_the_session_server(
    database_url: str, postgres_dsn: str
) -> None:
    assert urlsplit(database_url).netloc == urlsplit(postgres_dsn).netloc
    connection = await asyncpg.connect(database_url)
    try:
        assert await connection.fetchval("SELECT current_database()") not in ("postgres", "")
        tables = await connection.fetchval(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'"
        )
        assert tables == 0
    finally:
        await connection.close()


async def test_nats_server_restarts_on_the_same_url_and_store(nats_server: NatsServer) -> None:
    url = nats_server.url
    client = await nats.connect(url)
    await client.jetstream().add_stream(name="OUTAGE", subjects=["outage.>"])
    await client.close()

    nats_server.stop()
    port = urlsplit(url).port
    assert port is not None
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    nats_server.start()

    assert nats_server.url == url
    client = await nats.connect(url)
    try:
        info = await client.jsm().stream_info("OUTAGE")
        assert info.config.subjects == ["outage.>"]
    finally:
        await client.close()


def test_nats_url_is_the_servers_url(nats_server: NatsServer, nats_url: str) -> None:
    assert nats_url == nats_server.url


ISOLATION_TESTS = """
import json, os, asyncpg, asyncio

RECORD = os.environ["RECORD_FILE"]

async def _names(url):
    connection = await asyncpg.connect(url)
    try:
        tables = await connection.fetch(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
        )
        return await connection.fetchval("SELECT current_database()"), [r[0] for r in tables]
    finally:
        await connection.close()

async def test_first_creates_a_table(database_url):
    connection = await asyncpg.connect(database_url)
    await connection.execute("CREATE TABLE leftover (id int)")
    await connection.close()
    name, tables = await _names(database_url)
    with open(RECORD, "a") as f:
        f.write(json.dumps({"test": "first", "database": name, "tables": tables}) + "\\n")

async def test_second_does_not_see_it(database_url):
    name, tables = await _names(database_url)
    with open(RECORD, "a") as f:
        f.write(json.dumps({"test": "second", "database": name, "tables": tables}) + "\\n")
"""


async def test_each_test_gets_its_own_database_dropped_afterwards(
    run_inner_pytest: PytestRunner, postgres_dsn: str, tmp_path: Path
) -> None:
    record = tmp_path / "record.jsonl"
    result = run_inner_pytest(
        "import pytest\npytestmark = pytest.mark.asyncio\n" + ISOLATION_TESTS,
        {"TESSERA_TEST_DATABASE_URL": postgres_dsn, "RECORD_FILE": str(record)},
    )
    assert result.returncode == 0, result.stdout + result.stderr

    first, second = (json.loads(line) for line in record.read_text().splitlines())
    assert first["tables"] == ["leftover"]
    assert second["tables"] == []
    assert first["database"] != second["database"]
    connection = await asyncpg.connect(postgres_dsn)
    try:
        names = {row[0] for row in await connection.fetch("SELECT datname FROM pg_database")}
    finally:
        await connection.close()
    assert first["database"] not in names
    assert second["database"] not in names


EXTERNAL_NATS_TESTS = """
import os, pytest, nats
from tessera_stack.process import ServerError

EXTERNAL = os.environ["TESSERA_TEST_NATS_URL"]

@pytest.mark.asyncio
async def test_external_server_without_streams(nats_server, nats_url):
    assert nats_url == EXTERNAL
    client = await nats.connect(nats_url)
    try:
        assert await client.jsm().streams_info() == []
    finally:
        await client.close()

def test_external_server_cannot_be_stopped(nats_server):
    with pytest.raises(ServerError, match="pytest.mark.embedded_nats"):
        nats_server.stop()

@pytest.mark.embedded_nats
def test_outage_tests_get_an_embedded_server(nats_server, nats_url):
    assert nats_url != EXTERNAL
    nats_server.stop()
    nats_server.start()
    assert nats_server.url == nats_url
"""


async def test_external_nats_is_emptied_and_outage_tests_get_their_own(
    run_inner_pytest: PytestRunner, tmp_path: Path
) -> None:
    with EmbeddedNats(tmp_path / "external") as external:
        client = await nats.connect(external.url)
        await client.jetstream().add_stream(name="STALE", subjects=["stale.>"])
        await client.close()

        result = run_inner_pytest(EXTERNAL_NATS_TESTS, {"TESSERA_TEST_NATS_URL": external.url})

        assert result.returncode == 0, result.stdout + result.stderr
        assert "3 passed" in result.stdout
        client = await nats.connect(external.url)
        try:
            assert await client.jsm().streams_info() == []
        finally:
            await client.close()


def test_an_unreachable_external_database_fails_naming_the_variable() -> None:
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    url = f"postgresql://x:secret@127.0.0.1:{port}/db"

    with pytest.raises(pytest.fail.Exception) as failure:
        checked_external_database(url)

    message = str(failure.value)
    assert message.startswith(f"TESSERA_TEST_DATABASE_URL=postgresql://x:***@127.0.0.1:{port}/db")
    assert "is unreachable: ConnectionRefusedError" in message


def test_a_reachable_external_database_is_used_as_is(postgres_dsn: str) -> None:
    assert checked_external_database(postgres_dsn) == postgres_dsn


class TestWaitUntil:
    async def test_returns_once_the_predicate_holds(self, wait_until: WaitUntil) -> None:
        calls = 0

        async def third_time() -> bool:
            nonlocal calls
            calls += 1
            return calls == 3

        await wait_until(third_time)

        assert calls == 3

    async def test_fails_the_test_naming_what_it_waited_for(self, wait_until: WaitUntil) -> None:
        async def never() -> bool:
            return False

        with pytest.raises(pytest.fail.Exception, match="0.05s waiting for the moon"):
            await wait_until(never, timeout_s=0.05, what="the moon")


def _problem(status: int, body: dict[str, object], media_type: str) -> httpx.Response:
    return httpx.Response(status, json=body, headers={"content-type": media_type})


class TestAssertProblem:
    BODY: ClassVar[dict[str, object]] = {
        "title": "Unprocessable Content",
        "status": 422,
        "errors": [{"loc": ["body", "price"], "msg": "too low", "type": "value_error"}],
        "extension": "kept",
    }

    def test_returns_the_body_and_the_parsed_problem(self) -> None:
        response = _problem(422, self.BODY, "application/problem+json")

        body = assert_problem_body(response, 422, "Unprocessable Content")
        problem = assert_problem(response, 422)

        assert body["extension"] == "kept"
        assert error_locs(body) == [["body", "price"]]
        assert problem.title == "Unprocessable Content"

    @pytest.mark.parametrize(
        ("status", "title", "media_type"),
        [
            (400, None, "application/problem+json"),
            (422, "Bad Request", "application/problem+json"),
            (422, None, "application/json"),
        ],
    )
    def test_a_different_answer_fails(
        self, status: int, title: str | None, media_type: str
    ) -> None:
        response = _problem(422, self.BODY, media_type)

        with pytest.raises(AssertionError):
            assert_problem_body(response, status, title)
