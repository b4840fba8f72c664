"""Adding an optional query parameter to an operation is one edit, in the contract.

An operation declared here (`scratch_echo`, owned by the catalog) is served by a
real catalog, forwarded by a real gateway and called with tessera-client, twice:
as first declared, and after one optional query parameter (`shout`) was added to
its query model. The handler, the gateway and the client code are the same both
times: only the declaration changed, and yet the catalog validates the new
parameter, both OpenAPI documents show it, the gateway forwards it and the client
accepts it.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar
from uuid import UUID

import httpx
import pytest
from pydantic import BaseModel, Field, HttpUrl, ValidationError
from tessera_catalog.app import create_app as create_catalog
from tessera_catalog.settings import Settings as CatalogSettings
from tessera_client import TesseraClient
from tessera_contracts import Contract
from tessera_contracts.operations import CATALOG, CATALOG_READ, Operation
from tessera_contracts.parameters import ProductPath
from tessera_gateway.api.proxied import proxied_operations
from tessera_gateway.app import create_app as create_gateway
from tessera_gateway.settings import Settings
from tessera_runtime.operations import implements

from .conftest import serve


class EchoQuery(Contract):
    """The scratch operation's query, as first declared."""

    word: str | None = Field(default=None, min_length=1, max_length=20)


class EchoQueryWithShout(Contract):
    """The same query after the one edit: an optional parameter added."""

    word: str | None = Field(default=None, min_length=1, max_length=20)
    shout: bool = Field(default=False, description="Echo the word in capitals.")


class Echo(Contract):
    product_id: UUID
    query: dict[str, Any]


def scratch_operation(query: type[BaseModel]) -> Operation:
    return Operation(
        id="scratch_echo",
        version="v1",
        method="GET",
        path="/v1/scratch/{product_id}/echo",
        owner=CATALOG,
        scope=CATALOG_READ,
        anonymous=True,
        summary="Echo the query parameters the catalog validated.",
        path_params=ProductPath,
        query=query,
        response=Echo,
        errors=(422,),
    )


QueryT = TypeVar("QueryT", bound=BaseModel)


# Written once, for every declaration: it returns what the catalog validated.
async def echo(product_id: UUID, query: QueryT) -> Echo:
    return Echo(product_id=product_id, query=query.model_dump(mode="json"))


@asynccontextmanager
async def scratch_stack(
    operation: Operation,
    catalog_settings: CatalogSettings,
    gateway_settings: Callable[..., Settings],
) -> AsyncIterator[tuple[str, str, dict[str, Any], dict[str, Any]]]:
    """Catalog serving `operation`, gateway forwarding it: (catalog url, gateway url,
    and both OpenAPI documents)."""
    catalog = create_catalog(catalog_settings)
    implements(catalog.router, operation)(echo)
    async with serve(catalog) as catalog_url:
        gateway = create_gateway(
            gateway_settings(catalog_url=HttpUrl(catalog_url)),
            operations=[*proxied_operations(), operation],
        )
        async with serve(gateway) as gateway_url:
            yield catalog_url, gateway_url, catalog.openapi(), gateway.openapi()


def query_parameters(document: dict[str, Any], path: str) -> dict[str, dict[str, Any]]:
    parameters = document["paths"][path]["get"]["parameters"]
    return {p["name"]: p for p in parameters if p["in"] == "query"}


PRODUCT = uuid.uuid4()
PATH = "/v1/scratch/{product_id}/echo"


async def test_before_the_edit_the_parameter_is_unknown_everywhere(
    catalog_settings: CatalogSettings, gateway_settings: Callable[..., Settings]
) -> None:
    operation = scratch_operation(EchoQuery)
    async with (
        scratch_stack(operation, catalog_settings, gateway_settings) as (_, url, catalog, gateway),
        TesseraClient(url) as client,
    ):
        echoed = await client.call(operation, path={"product_id": PRODUCT}, query={"word": "hi"})
        with pytest.raises(TypeError, match="shout"):
            await client.call(operation, path={"product_id": PRODUCT}, query={"shout": True})
        async with httpx.AsyncClient(base_url=url) as raw:
            ignored = await raw.get(f"/v1/scratch/{PRODUCT}/echo", params={"shout": "maybe"})

    assert echoed == Echo(product_id=PRODUCT, query={"word": "hi"})
    assert set(query_parameters(catalog, PATH)) == set(query_parameters(gateway, PATH)) == {"word"}
    # Unknown query parameters are ignored, as for every operation.
    assert ignored.status_code == 200
    assert Echo.model_validate_json(ignored.content).query == {"word": None}


async def test_after_the_edit_every_part_knows_the_new_parameter(
    catalog_settings: CatalogSettings, gateway_settings: Callable[..., Settings]
) -> None:
    operation = scratch_operation(EchoQueryWithShout)
    async with (
        scratch_stack(operation, catalog_settings, gateway_settings) as (_, url, catalog, gateway),
        TesseraClient(url) as client,
    ):
        echoed = await client.call(
            operation, path={"product_id": PRODUCT}, query={"word": "hi", "shout": True}
        )
        # The client checks it with the same model before sending.
        with pytest.raises(ValidationError, match="shout"):
            await client.call(operation, path={"product_id": PRODUCT}, query={"shout": "maybe"})
        async with httpx.AsyncClient(base_url=url) as raw:
            invalid = await raw.get(f"/v1/scratch/{PRODUCT}/echo", params={"shout": "maybe"})

    # The client accepted it, the gateway forwarded it, the catalog validated it.
    assert echoed == Echo(product_id=PRODUCT, query={"word": "hi", "shout": True})
    # The catalog validates it: its 422 reaches the caller through the gateway.
    assert invalid.status_code == 422
    assert invalid.headers["content-type"] == "application/problem+json"
    assert [e["loc"] for e in invalid.json()["errors"]] == [["query", "shout"]]
    # Both documents show it, with its type and default.
    for document in (catalog, gateway):
        shout = query_parameters(document, PATH)["shout"]
        assert shout["required"] is False
        assert shout["schema"]["type"] == "boolean"
        assert shout["schema"]["default"] is False
