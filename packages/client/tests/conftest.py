"""The real stack for the client tests: gateway, catalog and inference as processes.

They run as `python -m tessera_<name>` (tessera_stack.testing.running_service)
on real TCP ports, once per session (their start is the slow part), on the
session's PostgreSQL (a database of its own) and a NATS server of their own.
"""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from tessera_catalog.db.migrate import apply_migrations
from tessera_client import TesseraClient, TesseraSyncClient
from tessera_contracts import SCOPES, v1, v2
from tessera_gateway.domain.auth import generate_key
from tessera_stack.nats import EmbeddedNats, delete_streams
from tessera_stack.postgres import create_database, drop_database
from tessera_stack.process import run_sync
from tessera_stack.testing import NATS_URL_ENV, product_body, running_service


@dataclass(frozen=True)
class Stack:
    gateway: str
    """Base URL of the gateway."""
    key: str
    """An API key with every scope."""
    reader: str
    """An API key with `catalog:read` only."""


@pytest.fixture(scope="session")
def stack_nats_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    external = os.environ.get(NATS_URL_ENV)
    if external:
        run_sync(delete_streams(external))
        yield external
        return
    with EmbeddedNats(tmp_path_factory.mktemp("nats")) as server:
        yield server.url


@pytest.fixture(scope="session")
def stack_database_url(postgres_dsn: str) -> Iterator[str]:
    name = f"client_{uuid.uuid4().hex[:12]}"
    url = run_sync(create_database(postgres_dsn, name))
    run_sync(apply_migrations(url))
    try:
        yield url
    finally:
        run_sync(drop_database(postgres_dsn, name))


@pytest.fixture(scope="session")
def stack(
    stack_nats_url: str, stack_database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    logs = tmp_path_factory.mktemp("logs")
    key, key_entry = generate_key("client", SCOPES)
    reader, reader_entry = generate_key("reader", ["catalog:read"])
    with ExitStack() as services:

        def run(name: str, env: dict[str, str]) -> str:
            command = [sys.executable, "-m", f"tessera_{name}"]
            service = services.enter_context(
                running_service(command, env=env, log=Path(logs) / f"{name}.log")
            )
            return service.url

        catalog = run(
            "catalog",
            {
                "CATALOG_DATABASE_URL": stack_database_url,
                "CATALOG_NATS_URL": stack_nats_url,
                "CATALOG_OUTBOX_POLL_INTERVAL_S": "0.05",
            },
        )
        inference = run("inference", {"INFERENCE_NATS_URL": stack_nats_url})
        gateway = run(
            "gateway",
            {
                "GATEWAY_CATALOG_URL": catalog,
                "GATEWAY_INFERENCE_URL": inference,
                "GATEWAY_NATS_URL": stack_nats_url,
                "GATEWAY_API_KEYS": f"{key_entry.to_setting()},{reader_entry.to_setting()}",
                "GATEWAY_EVENTS_PING_S": "0.5",
                "GATEWAY_ACCESS_LOG": "false",
            },
        )
        yield Stack(gateway=gateway, key=key, reader=reader)


@pytest.fixture
async def client(stack: Stack) -> AsyncIterator[TesseraClient]:
    async with TesseraClient(stack.gateway, api_key=stack.key, retry_backoff_s=0.01) as c:
        yield c


@pytest.fixture
def sync_client(stack: Stack) -> Iterator[TesseraSyncClient]:
    with TesseraSyncClient(stack.gateway, api_key=stack.key, retry_backoff_s=0.01) as c:
        yield c


def unique_sku() -> str:
    return f"TSR-{uuid.uuid4().hex[:10].upper()}"


def v1_product(**overrides: Any) -> v1.ProductCreate:
    return v1.ProductCreate(**product_body(unique_sku(), **overrides))


def v2_product(**overrides: Any) -> v2.ProductCreate:
    values: dict[str, Any] = {
        "sku": unique_sku(),
        "name": "Walnut Shelf",
        "category": "home",
        "price": v2.Money(amount=Decimal("19.90"), currency="EUR"),
    }
    values.update(overrides)
    return v2.ProductCreate(**values)
