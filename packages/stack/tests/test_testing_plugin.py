"""The fixtures of `tessera_stack.testing`, used directly and from inner pytest sessions."""

from __future__ import annotations

import json
import socket
import subprocess
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
import nats
import pytest
from tessera_stack.nats import EmbeddedNats
from tessera_stack.testing import NatsServer, checked_external_database

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
