"""Migrations: applied in order once, recorded, safe to run concurrently; constraints in the database."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
from tessera_catalog.db import migrate
from tessera_catalog.db.migrate import MigrationError, apply_migrations, load_migrations

from .conftest import Db, db_connection


@pytest.fixture
async def conn(database_url: str) -> AsyncIterator[Db]:
    """A direct connection to the test's database, before any migration."""
    async with db_connection(database_url) as connection:
        yield connection


class TestApplyMigrations:
    async def test_applies_every_shipped_migration_in_order_and_records_it(
        self, database_url: str, conn: Db
    ) -> None:
        shipped = [m.name for m in load_migrations()]

        applied = await apply_migrations(database_url)

        assert applied == shipped
        recorded = await conn.fetch("SELECT name, checksum FROM schema_migrations ORDER BY name")
        assert [r["name"] for r in recorded] == shipped
        assert [r["checksum"] for r in recorded] == [m.checksum for m in load_migrations()]
        tables = {
            r["tablename"]
            for r in await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        }
        assert {"products", "reviews", "inventory", "outbox", "idempotency_keys"} <= tables

    async def test_second_run_is_a_no_op(self, database_url: str, conn: Db) -> None:
        await apply_migrations(database_url)
        before = await conn.fetch("SELECT name, applied_at FROM schema_migrations")

        assert await apply_migrations(database_url) == []

        assert await conn.fetch("SELECT name, applied_at FROM schema_migrations") == before

    async def test_concurrent_runners_apply_each_migration_once(
        self, database_url: str, conn: Db
    ) -> None:
        results = await asyncio.gather(*(apply_migrations(database_url) for _ in range(4)))

        # Exactly one runner applied everything; the others waited and found nothing to do.
        assert sorted(results, key=len) == [[], [], [], [m.name for m in load_migrations()]]
        assert await conn.fetchval("SELECT count(*) FROM schema_migrations") == len(
            load_migrations()
        )

    async def test_an_edited_applied_migration_is_refused(
        self, database_url: str, conn: Db
    ) -> None:
        await apply_migrations(database_url)
        await conn.execute("UPDATE schema_migrations SET checksum = 'edited'")

        with pytest.raises(MigrationError, match="changed after it was applied"):
            await apply_migrations(database_url)

    async def test_a_pending_migration_older_than_the_newest_applied_is_refused(
        self, database_url: str, conn: Db
    ) -> None:
        await apply_migrations(database_url)
        # The database already has a newer migration (from a branch merged later).
        await conn.execute("DELETE FROM schema_migrations")
        await conn.execute(
            "INSERT INTO schema_migrations (name, checksum) VALUES ('9999_from_the_future.sql', 'x')"
        )

        with pytest.raises(MigrationError, match="older than applied"):
            await apply_migrations(database_url)

    async def test_a_failing_migration_leaves_no_trace(
        self, database_url: str, conn: Db, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        good = load_migrations()
        broken = migrate.Migration(
            "9000_broken.sql", "CREATE TABLE half_done (id int); SELECT 1/0;"
        )
        monkeypatch.setattr(migrate, "load_migrations", lambda: [*good, broken])

        with pytest.raises(asyncpg.DivisionByZeroError):
            await apply_migrations(database_url)

        assert await conn.fetchval("SELECT to_regclass('half_done')") is None
        names = [r["name"] for r in await conn.fetch("SELECT name FROM schema_migrations")]
        assert "9000_broken.sql" not in names
        # The lock was released: the good migrations alone apply (nothing left) without hanging.
        monkeypatch.setattr(migrate, "load_migrations", lambda: good)
        assert await asyncio.wait_for(apply_migrations(database_url), 5) == []


def _product_row(**overrides: object) -> dict[str, object]:
    row: dict[str, object] = {
        "id": uuid.uuid4(),
        "sku": f"SKU-{uuid.uuid4().hex[:8].upper()}",
        "name": "Lamp",
        "category": "home",
        "price": 10,
        "currency": "USD",
        "features": None,
    }
    row.update(overrides)
    return row


class TestDatabaseConstraints:
    """The schema refuses what the API refuses, whoever writes (psql, a script, a bug)."""

    @pytest.fixture(autouse=True)
    async def migrated(self, database_url: str) -> None:
        await apply_migrations(database_url)

    async def insert_product(self, conn: Db, **overrides: object) -> uuid.UUID:
        row = _product_row(**overrides)
        await conn.execute(
            "INSERT INTO products (id, sku, name, category, price, currency, features) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7)",
            *row.values(),
        )
        product_id = row["id"]
        assert isinstance(product_id, uuid.UUID)
        return product_id

    async def test_a_valid_product_is_accepted(self, conn: Db) -> None:
        product_id = await self.insert_product(conn, features=[1.0] * 10)

        assert await conn.fetchval("SELECT version FROM products WHERE id = $1", product_id) == 1

    @pytest.mark.parametrize(
        "overrides",
        [
            {"sku": "lower-case"},
            {"sku": "-LEADING-DASH"},
            {"name": ""},
            {"category": "x" * 65},
            {"price": -1},
            {"currency": "usd"},
            {"features": [1.0] * 9},
            {"features": [1.0] * 9 + [-0.5]},
            {"features": [1.0] * 9 + [float("nan")]},
            {"features": [1.0] * 9 + [float("inf")]},
            {"features": [1.0] * 9 + [None]},
        ],
        ids=lambda o: next(iter(o.items()))[0] + "=" + repr(next(iter(o.values())))[:20],
    )
    async def test_invalid_products_are_refused(
        self, conn: Db, overrides: dict[str, object]
    ) -> None:
        with pytest.raises(asyncpg.CheckViolationError):
            await self.insert_product(conn, **overrides)

    async def test_sku_is_unique(self, conn: Db) -> None:
        await self.insert_product(conn, sku="DUP-1")

        with pytest.raises(asyncpg.UniqueViolationError):
            await self.insert_product(conn, sku="DUP-1")

    @pytest.mark.parametrize("rating", [0, 6])
    async def test_rating_must_be_one_to_five(self, conn: Db, rating: int) -> None:
        product_id = await self.insert_product(conn)

        with pytest.raises(asyncpg.CheckViolationError):
            await conn.execute(
                "INSERT INTO reviews (id, product_id, rating, title, author) VALUES ($1, $2, $3, 't', 'a')",
                uuid.uuid4(),
                product_id,
                rating,
            )

    @pytest.mark.parametrize(("quantity", "reserved"), [(-1, 0), (5, -1), (5, 6)])
    async def test_inventory_is_non_negative_and_reserved_within_quantity(
        self, conn: Db, quantity: int, reserved: int
    ) -> None:
        product_id = await self.insert_product(conn)

        with pytest.raises(asyncpg.CheckViolationError):
            await conn.execute(
                "INSERT INTO inventory (product_id, quantity, reserved) VALUES ($1, $2, $3)",
                product_id,
                quantity,
                reserved,
            )

    async def test_deleting_a_product_deletes_its_reviews_and_inventory(self, conn: Db) -> None:
        product_id = await self.insert_product(conn)
        await conn.execute(
            "INSERT INTO reviews (id, product_id, rating, title, author) VALUES ($1, $2, 5, 't', 'a')",
            uuid.uuid4(),
            product_id,
        )
        await conn.execute(
            "INSERT INTO inventory (product_id, quantity) VALUES ($1, 3)", product_id
        )

        await conn.execute("DELETE FROM products WHERE id = $1", product_id)

        assert await conn.fetchval("SELECT count(*) FROM reviews") == 0
        assert await conn.fetchval("SELECT count(*) FROM inventory") == 0


class TestMigrateCommand:
    """`tessera-catalog-migrate`, the console script the catalog's init container runs."""

    @staticmethod
    async def run_command(env: dict[str, str]) -> tuple[int, str, str]:
        script = Path(sys.executable).with_name("tessera-catalog-migrate")
        process = await asyncio.create_subprocess_exec(
            str(script),
            env={"PATH": os.environ["PATH"], **env},
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(process.communicate(), timeout=60)
        assert process.returncode is not None
        return process.returncode, out.decode(), err.decode()

    async def test_migrates_the_database_of_the_catalog_settings(
        self, database_url: str, conn: Db
    ) -> None:
        status, out, _ = await self.run_command({"CATALOG_DATABASE_URL": database_url})

        assert status == 0
        assert out == f"applied {', '.join(m.name for m in load_migrations())}\n"
        assert await conn.fetchval("SELECT count(*) FROM schema_migrations") == len(
            load_migrations()
        )
        assert await self.run_command({"CATALOG_DATABASE_URL": database_url}) == (
            0,
            "up to date: no pending migrations\n",
            "",
        )

    async def test_an_unreachable_database_fails_without_showing_the_password(self) -> None:
        with socket.socket() as free:
            free.bind(("127.0.0.1", 0))
            port = free.getsockname()[1]
        url = f"postgresql://tessera:secret@127.0.0.1:{port}/tessera"

        status, _, err = await self.run_command({"CATALOG_DATABASE_URL": url})

        assert status == 1
        assert (
            f"tessera-catalog-migrate: cannot migrate postgresql://tessera:***@127.0.0.1:{port}"
            in err
        )
        assert "secret" not in err
