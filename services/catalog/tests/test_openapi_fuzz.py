"""Schemathesis against the catalog's OpenAPI document, on a real socket.

Every documented operation gets generated requests (valid and invalid); no
answer may be a 5xx, and each must match its documented status codes, content
type and schema. The catalog runs as `tessera up` runs it, on a migrated and
seeded PostgreSQL database and NATS.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pydantic import PostgresDsn
from tessera_catalog.app import create_app
from tessera_catalog.settings import Settings
from tessera_stack.testing import openapi_fuzz_tests, served_catalog

EXAMPLES_PER_OPERATION = 20  # 15 operations

# schemathesis generates one test per operation at collection time, so it reads
# the document from the app object (nothing is connected before its lifespan
# starts); test_served_document_is_the_fuzzed_one checks the service serves it.
DOCUMENT = create_app(
    Settings(database_url=PostgresDsn("postgresql://unused@127.0.0.1/unused"))
).openapi()
test_served_document_is_the_fuzzed_one, test_every_operation_answers_as_documented = (
    openapi_fuzz_tests(DOCUMENT, EXAMPLES_PER_OPERATION)
)


@pytest.fixture(scope="module")
def service_url(postgres_dsn: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with served_catalog(postgres_dsn, tmp_path_factory.mktemp("catalog-fuzz")) as catalog:
        yield catalog.url
