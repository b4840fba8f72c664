"""`tessera migrate`, `tessera seed` and the parts of `tessera up` that need no services."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import asyncpg
import pytest
from tessera_stack.cli import main
from tessera_stack.local.runner import AlreadyRunning, data_dir_lock


@pytest.fixture
def no_database_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("DATABASE_URL", "CATALOG_DATABASE_URL", "NATS_URL"):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.usefixtures("no_database_env")
class TestMigrateAndSeed:
    @pytest.mark.parametrize("command", ["migrate", "seed"])
    def test_without_a_database_url_is_a_usage_error(
        self, command: str, capsys: pytest.CaptureFixture[str]
    ) -> None:
        with pytest.raises(SystemExit) as exit_info:
            main([command])

        assert exit_info.value.code == 2
        error = capsys.readouterr().err
        assert f"usage: tessera {command} [-h] [--database-url DATABASE_URL]" in error
        assert f"tessera {command}: error: no database given" in error
        assert "--database-url" in error
        assert "DATABASE_URL" in error

    async def test_migrate_then_seed_an_empty_database(
        self, database_url: str, capsys: pytest.CaptureFixture[str]
    ) -> None:
        assert main(["migrate", "--database-url", database_url]) == 0
        assert capsys.readouterr().out.startswith("applied ")
        assert main(["migrate", "--database-url", database_url]) == 0
        assert capsys.readouterr().out == "up to date: no pending migrations\n"

        assert main(["seed", "--database-url", database_url]) == 0
        assert capsys.readouterr().out.startswith("loaded ")
        assert main(["seed", "--database-url", database_url]) == 0
        assert capsys.readouterr().out == "the database has data: nothing loaded\n"

        connection = await asyncpg.connect(database_url)
        try:
            assert await connection.fetchval("SELECT count(*) FROM products") > 0
        finally:
            await connection.close()

    def test_the_url_may_come_from_the_environment(
        self,
        database_url: str,
        monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        monkeypatch.setenv("CATALOG_DATABASE_URL", database_url)

        assert main(["migrate"]) == 0
        assert capsys.readouterr().out.startswith("applied ")

    def test_an_unreachable_database_is_a_clear_error(
        self, capsys: pytest.CaptureFixture[str]
    ) -> None:
        with socket.socket() as free:
            free.bind(("127.0.0.1", 0))
            port = free.getsockname()[1]
        url = f"postgresql://tessera:secret@127.0.0.1:{port}/tessera"

        assert main(["migrate", "--database-url", url]) == 1
        error = capsys.readouterr().err
        assert f"tessera migrate: cannot migrate postgresql://tessera:***@127.0.0.1:{port}" in error
        assert "secret" not in error


class TestUpPreconditions:
    def test_a_second_holder_of_the_data_dir_is_refused(self, tmp_path: Path) -> None:
        first = data_dir_lock(tmp_path)
        try:
            with pytest.raises(AlreadyRunning, match=f"pid {os.getpid()}"):
                data_dir_lock(tmp_path)
        finally:
            first.close()
        data_dir_lock(tmp_path).close()  # free again once the holder is gone

    @pytest.mark.usefixtures("no_database_env")
    def test_a_busy_service_port_stops_before_anything_starts(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        with socket.socket() as busy:
            busy.bind(("127.0.0.1", 0))
            busy.listen()
            port = busy.getsockname()[1]

            status = main(["up", "--data-dir", str(tmp_path / "data"), "--catalog-port", str(port)])

        assert status == 1
        assert f"catalog port {port}" in capsys.readouterr().err
        assert not (tmp_path / "data" / "postgres").exists()
