"""The catalog serves the contract's operations: exactly its own, and as they are declared.

The routes are checked on the app object, and the OpenAPI document operation by
operation against `tessera_contracts` (operation id, parameters with their
constraints, body, statuses); one test checks the served document is that one.
"""

from __future__ import annotations

import httpx
import pytest
from fastapi.routing import iter_route_contexts
from pydantic import BaseModel, PostgresDsn
from tessera_catalog.app import create_app
from tessera_catalog.settings import Settings
from tessera_contracts import v1, v2
from tessera_contracts.operations import CATALOG, Operation
from tessera_runtime.operations import OperationRoute
from tessera_stack.testing import Json

CATALOG_OPERATIONS = [op for op in (*v1.OPERATIONS, *v2.OPERATIONS) if op.owner == CATALOG]
# Nothing is connected before the lifespan starts, so the app object can be read as is.
APP = create_app(Settings(database_url=PostgresDsn("postgresql://unused@127.0.0.1/unused")))
DOCUMENT: Json = APP.openapi()
NO_NUL = r"^[^\x00]+$"


def served_operations() -> list[tuple[str, Operation]]:
    """(path served at, operation) of every route that serves an operation."""
    return [
        (str(context.path_format), context.original_route.operation)
        for context in iter_route_contexts(APP.router.routes)
        if isinstance(context.original_route, OperationRoute)
    ]


def documented(operation: Operation) -> Json:
    document: Json = DOCUMENT["paths"][operation.path][operation.method.lower()]
    return document


def parameters(operation: Operation) -> dict[tuple[str, str], Json]:
    return {(p["in"], p["name"]): p for p in documented(operation).get("parameters", [])}


def declared_parameters(operation: Operation) -> dict[tuple[str, str], Json]:
    """Each parameter as the contract's models state it: where, required, JSON schema."""
    declared: dict[tuple[str, str], Json] = {}
    parts: list[tuple[str, type[BaseModel] | None]] = [
        ("path", operation.path_params),
        ("query", operation.query),
        ("header", operation.headers),
    ]
    for where, model in parts:
        if model is None:
            continue
        schema = model.model_json_schema()  # properties are named by alias: Idempotency-Key
        for name, prop in schema["properties"].items():
            # FastAPI leaves a null default out of a parameter's schema.
            expected = {k: v for k, v in prop.items() if not (k == "default" and v is None)}
            declared[(where, name)] = {
                "required": where == "path" or name in schema.get("required", []),
                "schema": expected,
            }
    return declared


def component(ref: str) -> Json:
    schema: Json = DOCUMENT["components"]["schemas"][ref.removeprefix("#/components/schemas/")]
    return schema


def operation_ids(operations: list[Operation]) -> list[str]:
    return [op.key for op in operations]


class TestRoutes:
    def test_serves_exactly_the_catalog_operations_of_both_versions(self) -> None:
        # By key: an Operation holds dicts (response headers, examples), so it is
        # comparable but not hashable.
        served = [operation for _, operation in served_operations()]

        assert sorted(operation_ids(served)) == sorted(operation_ids(CATALOG_OPERATIONS))
        assert {op.key: op for op in served} == {op.key: op for op in CATALOG_OPERATIONS}

    def test_each_operation_is_served_at_its_declared_path(self) -> None:
        assert all(path == operation.path for path, operation in served_operations())

    def test_every_versioned_route_serves_an_operation(self) -> None:
        # A route under /v1 or /v2 that is not bound to an operation would be API
        # surface the contract does not know about.
        versioned = [
            context
            for context in iter_route_contexts(APP.router.routes)
            if str(context.path_format).startswith(("/v1/", "/v2/"))
        ]

        assert versioned
        assert all(isinstance(c.original_route, OperationRoute) for c in versioned)


async def test_served_document_is_the_checked_one(client: httpx.AsyncClient) -> None:
    response = await client.get("/openapi.json")

    assert response.status_code == 200
    assert response.json() == DOCUMENT


@pytest.mark.parametrize("operation", CATALOG_OPERATIONS, ids=operation_ids(CATALOG_OPERATIONS))
class TestDocumentedAsDeclared:
    def test_operation_id_is_version_and_id(self, operation: Operation) -> None:
        assert documented(operation)["operationId"] == f"{operation.version}_{operation.id}"

    def test_parameters_are_the_contracts(self, operation: Operation) -> None:
        actual = {
            key: {"required": p["required"], "schema": p["schema"]}
            for key, p in parameters(operation).items()
        }

        assert actual == declared_parameters(operation)

    def test_statuses_are_the_contracts(self, operation: Operation) -> None:
        expected = {operation.status, *operation.errors, *(a.status for a in operation.answers)}

        assert set(documented(operation)["responses"]) == {str(s) for s in expected}

    def test_errors_are_problems(self, operation: Operation) -> None:
        responses = documented(operation)["responses"]

        for status in operation.errors:
            content = responses[str(status)]["content"]
            assert content[operation.error_media_type]["schema"]["$ref"].endswith("/Problem")

    def test_success_body_and_headers_are_the_contracts(self, operation: Operation) -> None:
        success = documented(operation)["responses"][str(operation.status)]

        if operation.response is None:
            assert "content" not in success
        else:
            ref = success["content"]["application/json"]["schema"]["$ref"]
            assert ref.endswith(operation.response.__name__)
            assert set(component(ref)["properties"]) == set(operation.response.model_fields)
        assert set(success.get("headers", {})) == set(operation.response_headers)

    def test_request_body_is_the_contracts(self, operation: Operation) -> None:
        body: Json | None = documented(operation).get("requestBody")

        if operation.body is None:
            assert body is None
            return
        assert body is not None
        assert body["required"] is True
        content = body["content"]["application/json"]
        ref = content["schema"]["$ref"]
        assert ref.endswith(operation.body.__name__)
        assert set(component(ref)["properties"]) == set(operation.body.model_fields)
        assert set(content.get("examples", {})) == set(operation.body_examples)


class TestConstraintsReachTheDocument:
    """The constraints the copies used to drift on, spelled out."""

    @pytest.mark.parametrize("operation", [v1.LIST_PRODUCTS, v2.LIST_PRODUCTS], ids=["v1", "v2"])
    @pytest.mark.parametrize("name", ["q", "category"])
    def test_search_and_category_refuse_nul(self, operation: Operation, name: str) -> None:
        schema = parameters(operation)[("query", name)]["schema"]

        assert {"type": "null"} in schema["anyOf"]
        assert [s["pattern"] for s in schema["anyOf"] if "pattern" in s] == [NO_NUL]

    @pytest.mark.parametrize(
        "operation",
        [v1.CREATE_PRODUCT, v2.CREATE_PRODUCT, v1.CREATE_REVIEW],
        ids=operation_ids([v1.CREATE_PRODUCT, v2.CREATE_PRODUCT, v1.CREATE_REVIEW]),
    )
    def test_idempotency_key_is_printable_ascii(self, operation: Operation) -> None:
        parameter = parameters(operation)[("header", "Idempotency-Key")]
        text = next(s for s in parameter["schema"]["anyOf"] if s.get("type") == "string")

        assert parameter["required"] is False
        assert text == {
            "type": "string",
            "minLength": 1,
            "maxLength": 255,
            "pattern": r"^[\x21-\x7e]+$",
        }

    def test_limit_and_offset_bounds(self) -> None:
        query = parameters(v1.LIST_PRODUCTS)

        assert query[("query", "limit")]["schema"]["minimum"] == 1
        assert query[("query", "limit")]["schema"]["default"] == 20
        assert query[("query", "offset")]["schema"]["minimum"] == 0
        assert query[("query", "offset")]["schema"]["maximum"] == 2**31 - 1

    def test_product_id_is_a_required_uuid(self) -> None:
        parameter = parameters(v1.GET_PRODUCT)[("path", "product_id")]

        assert parameter["required"] is True
        assert parameter["schema"]["format"] == "uuid"
