"""Apply the catalog's plain-SQL migrations in order, once each.

Used by `tessera up`, `tessera migrate` and, in Kubernetes, the catalog pods'
`migrate` init container, which runs this package's own `tessera-catalog-migrate`
(the catalog image holds the catalog and its runtime, not the local tooling).
Each file `NNNN_name.sql` runs in its own transaction together with the row that records it,
so a failed migration leaves neither a half-applied schema nor a false record.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import sys
from dataclasses import dataclass
from importlib import resources
from typing import TYPE_CHECKING
from urllib.parse import urlsplit, urlunsplit

import asyncpg

if TYPE_CHECKING:  # only the type: `tessera migrate` imports this module, keep it light
    from tessera_catalog.db.records import Executor

# Any constant works as long as every runner uses the same one; this is
# int.from_bytes(b"tessmig!") truncated to fit a signed bigint.
MIGRATION_LOCK_KEY = 0x746573736D696721 & 0x7FFFFFFFFFFFFFFF

_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")

_CREATE_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    name       text PRIMARY KEY,
    checksum   text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""


class MigrationError(RuntimeError):
    """The migrations on disk and those recorded in the database disagree."""


@dataclass(frozen=True, slots=True)
class Migration:
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def load_migrations() -> list[Migration]:
    """The migration files shipped in this package, in apply order."""
    folder = resources.files("tessera_catalog.db").joinpath("migrations")
    migrations = [
        Migration(entry.name, entry.read_text(encoding="utf-8"))
        for entry in folder.iterdir()
        if entry.name.endswith(".sql")
    ]
    for migration in migrations:
        if not _NAME.match(migration.name):
            raise MigrationError(f"migration file {migration.name!r} is not named NNNN_name.sql")
    migrations.sort(key=lambda m: m.name)
    numbers = [m.name[:4] for m in migrations]
    if len(set(numbers)) != len(numbers):
        raise MigrationError(f"two migrations share a number: {numbers}")
    return migrations


async def apply_migrations(dsn: str) -> list[str]:
    """Apply every pending migration to the database at `dsn`.

    Args:
        dsn: PostgreSQL connection string.

    Returns:
        The names of the migrations applied by this call, in order (empty when the
        database was already up to date).

    Raises:
        MigrationError: a recorded migration's file changed or disappeared.
    """
    migrations = load_migrations()
    connection = await asyncpg.connect(dsn)
    try:
        # Session-level lock: a second runner (another pod of the Job, `tessera up`
        # racing `tessera migrate`) waits here, then finds nothing left to do.
        await connection.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK_KEY)
        try:
            await connection.execute(_CREATE_TABLE)
            recorded = {
                row["name"]: row["checksum"]
                for row in await connection.fetch("SELECT name, checksum FROM schema_migrations")
            }
            _check_recorded(migrations, recorded)
            applied: list[str] = []
            for migration in migrations:
                if migration.name in recorded:
                    continue
                async with connection.transaction():
                    await connection.execute(migration.sql)
                    await connection.execute(
                        "INSERT INTO schema_migrations (name, checksum) VALUES ($1, $2)",
                        migration.name,
                        migration.checksum,
                    )
                applied.append(migration.name)
            return applied
        finally:
            await connection.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK_KEY)
    finally:
        await connection.close()


async def is_applied(conn: Executor, name: str) -> bool:
    """Whether migration `name` is recorded (false, not an error, before the first run)."""
    return bool(
        await conn.fetchval("SELECT EXISTS (SELECT 1 FROM schema_migrations WHERE name = $1)", name)
    )


def _check_recorded(migrations: list[Migration], recorded: dict[str, str]) -> None:
    # An edited migration means this database and this code disagree about the
    # schema; applying more on top would only hide that.
    on_disk = {m.name: m.checksum for m in migrations}
    for name, checksum in recorded.items():
        if name in on_disk and on_disk[name] != checksum:
            raise MigrationError(f"migration {name} changed after it was applied")
    # Recorded names this version does not ship are allowed: the database is ahead
    # (a rollback of the code). A pending one older than the newest recorded is not:
    # it would run out of order against a schema it was never written for.
    newest = max(recorded, default="")
    late = [m.name for m in migrations if m.name not in recorded and m.name < newest]
    if late:
        raise MigrationError(f"pending migrations {late} are older than applied {newest}")


async def migrate_and_report(dsn: str, *, program: str) -> int:
    """Apply the pending migrations to `dsn` and say what happened, as a command does.

    Returns:
        The exit status: 0 when the database is up to date, 1 when it cannot be
        reached or its recorded migrations disagree with this code.
    """
    try:
        applied = await apply_migrations(dsn)
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as e:
        sys.stderr.write(f"{program}: cannot migrate {_without_password(dsn)}: {e}\n")
        return 1
    except MigrationError as e:
        sys.stderr.write(f"{program}: {e}\n")
        return 1
    sys.stdout.write(
        f"applied {', '.join(applied)}\n" if applied else "up to date: no pending migrations\n"
    )
    return 0


def main() -> None:
    """`tessera-catalog-migrate`: migrate the database of the catalog's settings
    (`CATALOG_DATABASE_URL`), as the Kubernetes init container does."""
    from tessera_catalog.settings import Settings

    database_url = str(Settings().database_url)
    sys.exit(asyncio.run(migrate_and_report(database_url, program="tessera-catalog-migrate")))


def _without_password(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    return urlunsplit(
        parts._replace(netloc=parts.netloc.replace(f":{parts.password}@", ":***@", 1))
    )
