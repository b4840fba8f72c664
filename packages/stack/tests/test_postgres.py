from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import asyncpg
import pytest
from tessera_stack.postgres import (
    EmbeddedPostgres,
    ExternalPostgres,
    create_database,
    database_dsn,
    drop_database,
    redact,
    resolve_postgres,
)
from tessera_stack.process import ServerError, free_port


@pytest.fixture(scope="module")
def server() -> Iterator[EmbeddedPostgres]:
    # One cluster for the tests that only use it (initdb is the slow part);
    # a test that stops it starts it again.
    root = Path(tempfile.mkdtemp(prefix="tessera-stack-test-"))
    root.chmod(0o711)
    try:
        with EmbeddedPostgres(root / "pg", fsync=False) as postgres:
            yield postgres
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _owner_uid(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Uid:"):
            return int(line.split()[1])
    raise AssertionError(f"no Uid line for {pid}")


class TestEmbeddedPostgres:
    async def test_accepts_tcp_connections_and_queries(self, server: EmbeddedPostgres) -> None:
        assert server.dsn == f"postgresql://tessera@127.0.0.1:{server.port}/postgres"

        connection = await asyncpg.connect(server.dsn)
        try:
            assert await connection.fetchval("SELECT 40 + 2") == 42
            assert await connection.fetchval("SELECT current_user") == "tessera"
            assert await connection.fetchval(
                "SELECT rolsuper FROM pg_roles WHERE rolname = 'tessera'"
            )
        finally:
            await connection.close()

    def test_runs_unprivileged(self, server: EmbeddedPostgres) -> None:
        assert server._process is not None
        expected = pwd.getpwnam("nobody").pw_uid if os.geteuid() == 0 else os.geteuid()
        assert _owner_uid(server._process.pid) == expected

    async def test_data_survives_a_restart_on_the_same_port(
        self, server: EmbeddedPostgres, wait_gone: Callable[[str, float], list[str]]
    ) -> None:
        dsn = server.dsn
        connection = await asyncpg.connect(dsn)
        await connection.execute("CREATE TABLE kept (value text)")
        await connection.execute("INSERT INTO kept VALUES ('still here')")
        await connection.close()

        server.stop()
        assert not server.running
        assert wait_gone(str(server.data_dir), 5.0) == []  # postmaster and backends
        assert not (server.data_dir / "postmaster.pid").exists()
        with pytest.raises(ConnectionRefusedError):
            await asyncpg.connect(dsn, timeout=2)
        server.start()

        assert server.dsn == dsn
        connection = await asyncpg.connect(dsn)
        try:
            assert await connection.fetchval("SELECT value FROM kept") == "still here"
        finally:
            await connection.close()

    async def test_a_new_instance_reuses_existing_data(self, server: EmbeddedPostgres) -> None:
        connection = await asyncpg.connect(server.dsn)
        await connection.execute("CREATE TABLE IF NOT EXISTS reused (id int)")
        await connection.close()
        marker = server.data_dir / "PG_VERSION"
        created = marker.stat().st_mtime_ns
        server.stop()
        try:
            with EmbeddedPostgres(server.data_dir, fsync=False) as again:
                # initdb did not run again: same cluster, same tables.
                assert marker.stat().st_mtime_ns == created
                connection = await asyncpg.connect(again.dsn)
                assert await connection.fetchval("SELECT to_regclass('reused')::text") == "reused"
                await connection.close()
        finally:
            server.start()

    def test_refuses_a_non_empty_directory_that_is_no_cluster(self, reachable_tmp: Path) -> None:
        data = reachable_tmp / "pg"
        data.mkdir()
        (data / "notes.txt").write_text("mine")

        with pytest.raises(ServerError, match="not empty"):
            EmbeddedPostgres(data).start()
        assert (data / "notes.txt").read_text() == "mine"

    def test_a_taken_fixed_port_is_a_clear_error(self, server: EmbeddedPostgres) -> None:
        server.stop()
        try:
            with socket.socket() as taken:
                taken.bind(("127.0.0.1", 0))
                taken.listen()
                port = taken.getsockname()[1]
                blocked = EmbeddedPostgres(server.data_dir, port=port, fsync=False)
                with pytest.raises(ServerError, match=f"could not listen on 127.0.0.1:{port}"):
                    blocked.start()
                assert not blocked.running
        finally:
            server.start()


# Started by an ordinary account, the server runs as that account, with no o+x added.
AS_ORDINARY_USER = """
import asyncio, os, sys
from pathlib import Path
import asyncpg
from tessera_stack.postgres import EmbeddedPostgres

async def query(dsn):
    connection = await asyncpg.connect(dsn)
    try:
        return await connection.fetchval("SELECT 1")
    finally:
        await connection.close()

with EmbeddedPostgres(Path(sys.argv[1]) / "pg", fsync=False) as server:
    status = Path(f"/proc/{server._process.pid}/status").read_text()
    uid = next(line.split()[1] for line in status.splitlines() if line.startswith("Uid:"))
    print(os.getuid(), uid, asyncio.run(query(server.dsn)), len(server.granted))
"""


def test_an_ordinary_user_runs_the_binaries_directly(reachable_tmp: Path) -> None:
    command = [sys.executable, "-c", AS_ORDINARY_USER, str(reachable_tmp)]
    env = dict(os.environ)
    if os.geteuid() == 0:
        # Be an ordinary user: the path every developer machine takes.
        nobody = pwd.getpwnam("nobody")
        os.chown(reachable_tmp, nobody.pw_uid, nobody.pw_gid)
        command = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "--", *command]
        env["HOME"] = "/nonexistent"  # asyncpg looks for client certificates in $HOME
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)

    assert result.returncode == 0, result.stderr
    runner_uid, server_uid, answer, granted = result.stdout.split()
    assert server_uid == runner_uid != "0"
    assert (answer, granted) == ("1", "0")


class TestResolvePostgres:
    def test_reachable_url_is_used_as_is(self, postgres_dsn: str, tmp_path: Path) -> None:
        reasons: list[str] = []
        server = resolve_postgres(postgres_dsn, tmp_path / "pg", on_unreachable=reasons.append)

        assert isinstance(server, ExternalPostgres)
        assert server.dsn == postgres_dsn
        assert reasons == []
        assert not (tmp_path / "pg").exists()

    def test_unreachable_url_falls_back_to_embedded(self, tmp_path: Path) -> None:
        reasons: list[str] = []
        url = f"postgresql://someone@127.0.0.1:{free_port()}/db"
        server = resolve_postgres(url, tmp_path / "pg", on_unreachable=reasons.append)

        assert isinstance(server, EmbeddedPostgres)
        assert server.data_dir == (tmp_path / "pg").resolve()
        assert len(reasons) == 1
        assert "refused" in reasons[0].lower()

    def test_no_url_is_embedded(self, tmp_path: Path) -> None:
        assert isinstance(resolve_postgres(None, tmp_path / "pg"), EmbeddedPostgres)


class TestDatabases:
    async def test_create_gives_a_usable_database_and_drop_removes_it(
        self, postgres_dsn: str
    ) -> None:
        url = await create_database(postgres_dsn, "stack_test_create")
        try:
            connection = await asyncpg.connect(url)
            assert await connection.fetchval("SELECT current_database()") == "stack_test_create"
            await connection.close()
            # exist_ok: a second `tessera up` finds the database there.
            assert await create_database(postgres_dsn, "stack_test_create", exist_ok=True) == url
            with pytest.raises(asyncpg.DuplicateDatabaseError):
                await create_database(postgres_dsn, "stack_test_create")
        finally:
            await drop_database(postgres_dsn, "stack_test_create")

        connection = await asyncpg.connect(postgres_dsn)
        try:
            names = await connection.fetch("SELECT datname FROM pg_database")
        finally:
            await connection.close()
        assert "stack_test_create" not in {row["datname"] for row in names}

    async def test_names_that_need_quoting_are_refused(self, postgres_dsn: str) -> None:
        with pytest.raises(ValueError, match="plain database name"):
            await create_database(postgres_dsn, 'x"; DROP DATABASE postgres; --')

    def test_database_dsn_replaces_only_the_database(self) -> None:
        dsn = "postgresql://u:p@db.example:6543/postgres?sslmode=require"
        assert (
            database_dsn(dsn, "tessera")
            == "postgresql://u:p@db.example:6543/tessera?sslmode=require"
        )
        with pytest.raises(ValueError, match="postgresql://"):
            database_dsn("host=db dbname=x", "tessera")

    def test_redact_hides_only_the_password(self) -> None:
        assert redact("postgresql://u:secret@h:5432/d") == "postgresql://u:***@h:5432/d"
        assert redact("postgresql://u@h/d") == "postgresql://u@h/d"
