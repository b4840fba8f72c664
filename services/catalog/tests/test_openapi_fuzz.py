"""Schemathesis against the catalog's OpenAPI document, on a real socket.

Every documented operation gets generated requests (valid and invalid); no
answer may be a 5xx, and each must match its documented status codes, content
type and schema. The catalog runs as `tessera up` runs it, on a migrated and
seeded PostgreSQL database and NATS.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from pydantic import PostgresDsn
from tessera_catalog.app import create_app
from tessera_catalog.db.migrate import apply_migrations
from tessera_catalog.db.seed import seed_if_empty
from tessera_catalog.settings import Settings
from tessera_stack.nats import EmbeddedNats
from tessera_stack.openapi_fuzz import (
    FuzzCase,
    check_case,
    fuzz_settings,
    scratch_database,
    served,
    served_document,
)
from tessera_stack.process import run_sync

EXAMPLES_PER_OPERATION = 20  # 15 operations

# schemathesis generates one test per operation at collection time, so it reads
# the document from the app object (nothing is connected before its lifespan
# starts); test_served_document_is_the_fuzzed_one checks the service serves it.
DOCUMENT = create_app(
    Settings(database_url=PostgresDsn("postgresql://unused@127.0.0.1/unused"))
).openapi()
schema = schemathesis.openapi.from_dict(DOCUMENT)


@pytest.fixture(scope="module")
def catalog_url(postgres_dsn: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root: Path = tmp_path_factory.mktemp("catalog-fuzz")
    with scratch_database(postgres_dsn) as database_url, EmbeddedNats(root / "nats") as nats:
        run_sync(apply_migrations(database_url))
        run_sync(seed_if_empty(database_url))
        env = {"CATALOG_DATABASE_URL": database_url, "CATALOG_NATS_URL": nats.url}
        with served("catalog", env, root) as url:
            yield url


def test_served_document_is_the_fuzzed_one(catalog_url: str) -> None:
    assert served_document(catalog_url) == DOCUMENT


@schema.parametrize()
@fuzz_settings(EXAMPLES_PER_OPERATION)
def test_every_operation_answers_as_documented(case: FuzzCase, catalog_url: str) -> None:
    check_case(case, catalog_url)
