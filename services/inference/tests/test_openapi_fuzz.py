"""Schemathesis against the inference service's OpenAPI document, on a real socket.

Every documented operation gets generated requests (valid and invalid); no
answer may be a 5xx, and each must match its documented status codes, content
type and schema. The service runs as `tessera up` runs it, with NATS.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from tessera_inference.app import create_app
from tessera_inference.settings import Settings
from tessera_stack.nats import EmbeddedNats
from tessera_stack.openapi_fuzz import served
from tessera_stack.testing import openapi_fuzz_tests

EXAMPLES_PER_OPERATION = 30  # 10 operations

# schemathesis generates one test per operation at collection time, so it reads
# the document from the app object; test_served_document_is_the_fuzzed_one
# checks that the running service serves that same document.
DOCUMENT = create_app(Settings(nats_enabled=False)).openapi()
test_served_document_is_the_fuzzed_one, test_every_operation_answers_as_documented = (
    openapi_fuzz_tests(DOCUMENT, EXAMPLES_PER_OPERATION)
)


@pytest.fixture(scope="module")
def service_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root: Path = tmp_path_factory.mktemp("inference-fuzz")
    with (
        EmbeddedNats(root / "nats") as nats,
        served("inference", {"INFERENCE_NATS_URL": nats.url}, root) as url,
    ):
        yield url
