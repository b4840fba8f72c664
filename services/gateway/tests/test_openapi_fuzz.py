"""Schemathesis against the gateway's OpenAPI document, on a real socket.

The gateway runs in front of the real catalog and inference services (each as
`tessera up` runs it, on PostgreSQL and NATS), and every request carries a key
that holds every scope, so the fuzzing reaches the upstreams instead of
stopping at 401/403. No answer may be a 5xx, and each must match its
documented status codes, content type and schema.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from tessera_contracts.operations import SCOPES
from tessera_gateway.app import create_app
from tessera_gateway.domain.auth import generate_key
from tessera_gateway.settings import Settings
from tessera_stack.openapi_fuzz import (
    FuzzCase,
    check_case,
    fuzz_settings,
    served,
    served_document,
)
from tessera_stack.testing import served_catalog

EXAMPLES_PER_OPERATION = 12
KEY, KEY_ENTRY = generate_key("fuzz", SCOPES)
# Far above what the run sends: a 429 here would say nothing about the schema.
UNLIMITED = "1000000"

# schemathesis generates one test per operation at collection time, so it reads
# the document from the app object (nothing is connected before its lifespan
# starts); test_served_document_is_the_fuzzed_one checks the gateway serves it.
DOCUMENT = create_app(Settings()).openapi()
schema = schemathesis.openapi.from_dict(DOCUMENT).exclude(path="/v1/events")
# An SSE stream does not end while its client stays: schemathesis reads it for
# EVENTS_READ_S (or until it has enough events) and judges what came, so the
# event stream gets fewer examples than the rest.
events = schemathesis.openapi.from_dict(DOCUMENT).include(path="/v1/events")
EVENTS_EXAMPLES = 8
EVENTS_READ_S = 1.5


@pytest.fixture(scope="module")
def gateway_url(postgres_dsn: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root: Path = tmp_path_factory.mktemp("gateway-fuzz")
    with (
        served_catalog(postgres_dsn, root) as catalog,
        served("inference", {"INFERENCE_NATS_URL": catalog.nats_url}, root) as inference_url,
        served(
            "gateway",
            {
                "GATEWAY_CATALOG_URL": catalog.url,
                "GATEWAY_INFERENCE_URL": inference_url,
                "GATEWAY_NATS_URL": catalog.nats_url,
                "GATEWAY_API_KEYS": KEY_ENTRY.to_setting(),
                "GATEWAY_RATE_LIMIT_PER_S": UNLIMITED,
                "GATEWAY_RATE_LIMIT_BURST": UNLIMITED,
            },
            root,
        ) as url,
    ):
        yield url


def test_served_document_is_the_fuzzed_one(gateway_url: str) -> None:
    assert served_document(gateway_url) == DOCUMENT


# Both places the documented security schemes name: schemathesis would otherwise fill
# the other one with a generated value, which the gateway refuses as a different key
# (and counts as a failed attempt, rate limited per client address).
BEARER = {"Authorization": f"Bearer {KEY}", "X-API-Key": KEY}


@schema.parametrize()
@fuzz_settings(EXAMPLES_PER_OPERATION)
def test_every_operation_answers_as_documented(case: FuzzCase, gateway_url: str) -> None:
    check_case(case, gateway_url, headers=BEARER)


@events.parametrize()
@fuzz_settings(EVENTS_EXAMPLES)
def test_event_stream_answers_as_documented(case: FuzzCase, gateway_url: str) -> None:
    check_case(case, gateway_url, headers=BEARER, timeout_s=EVENTS_READ_S)
