"""The service serves the contract's inference operations, and documents them as declared."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import iter_route_contexts
from tessera_contracts import v1, v2
from tessera_contracts.operations import INFERENCE, Operation
from tessera_inference.api.v2 import OipRoute
from tessera_inference.app import create_app
from tessera_inference.settings import Settings
from tessera_runtime.operations import OperationRoute

OWNED = [op for op in (*v1.OPERATIONS, *v2.OPERATIONS) if op.owner == INFERENCE]
_REF = "#/components/schemas/"


def _served(app: FastAPI) -> dict[str, tuple[OperationRoute, str]]:
    """Each served operation's key -> its route and the path it is served at."""
    served: dict[str, tuple[OperationRoute, str]] = {}
    for context in iter_route_contexts(app.router.routes):
        route = context.original_route
        if isinstance(route, OperationRoute):
            assert route.operation.key not in served, f"{route.operation.key} served twice"
            assert context.path_format is not None
            served[route.operation.key] = (route, context.path_format)
    return served


@pytest.fixture(scope="module")
def served() -> dict[str, tuple[OperationRoute, str]]:
    return _served(create_app(Settings(nats_enabled=False)))


@pytest.fixture
async def document(serve: Any, settings: Settings) -> dict[str, Any]:
    async with serve(settings) as client:
        response: httpx.Response = await client.get("/openapi.json")
    assert response.status_code == 200
    document: dict[str, Any] = response.json()
    return document


def _documented(document: dict[str, Any], operation: Operation) -> dict[str, Any]:
    entry: dict[str, Any] = document["paths"][operation.path][operation.method.lower()]
    return entry


class TestServedOperations:
    def test_every_inference_operation_is_served_and_nothing_else(
        self, served: dict[str, tuple[OperationRoute, str]]
    ) -> None:
        assert set(served) == {op.key for op in OWNED}
        # The set is not empty by accident: v1's predict and the nine OIP operations.
        assert len(served) == 10

    @pytest.mark.parametrize("operation", OWNED, ids=lambda op: op.key)
    def test_each_is_served_at_its_declared_method_and_path(
        self, served: dict[str, tuple[OperationRoute, str]], operation: Operation
    ) -> None:
        route, path = served[operation.key]

        assert route.operation is operation
        assert path == operation.path
        assert route.methods == {operation.method}

    @pytest.mark.parametrize("operation", OWNED, ids=lambda op: op.key)
    def test_oip_operations_render_oip_errors(
        self, served: dict[str, tuple[OperationRoute, str]], operation: Operation
    ) -> None:
        route, _ = served[operation.key]

        is_oip = operation.error_model is v2.InferenceErrorResponse
        assert isinstance(route, OipRoute) == is_oip
        assert is_oip == (operation.version == "v2")


class TestDocumentedOperations:
    @pytest.mark.parametrize("operation", OWNED, ids=lambda op: op.key)
    def test_operation_id_and_parameters_are_the_contract_s(
        self, document: dict[str, Any], operation: Operation
    ) -> None:
        documented = _documented(document, operation)

        assert documented["operationId"] == f"{operation.version}_{operation.id}"
        parameters = {(p["name"], p["in"], p["required"]) for p in documented.get("parameters", [])}
        assert parameters == {(name, "path", True) for name in operation.path_param_names}
        if operation.body is None:
            assert "requestBody" not in documented
        else:
            content = documented["requestBody"]["content"]["application/json"]
            assert content["schema"] == {"$ref": _REF + operation.body.__name__}

    @pytest.mark.parametrize("operation", OWNED, ids=lambda op: op.key)
    def test_statuses_are_the_declared_ones(
        self, document: dict[str, Any], operation: Operation
    ) -> None:
        responses = _documented(document, operation)["responses"]

        declared = {operation.status, *operation.errors, *(a.status for a in operation.answers)}
        assert set(responses) == {str(status) for status in declared}
        for status in operation.errors:
            assert responses[str(status)]["content"] == {
                operation.error_media_type: {
                    "schema": {"$ref": _REF + operation.error_model.__name__}
                }
            }, status

    @pytest.mark.parametrize(
        ("operation", "statuses"),
        [
            (v1.PREDICT_OPERATION, {"200", "404", "422", "503"}),
            (v2.SERVER_METADATA, {"200"}),
            (v2.SERVER_READY, {"200", "503"}),
            (v2.MODEL_METADATA, {"200", "400", "404", "503"}),
            (v2.MODEL_VERSION_READY, {"200", "400", "404", "503"}),
            (v2.INFER, {"200", "400", "404", "503"}),
            (v2.INFER_VERSION, {"200", "400", "404", "503"}),
        ],
        ids=lambda value: value.key if isinstance(value, Operation) else "",
    )
    def test_oip_operations_have_no_422_and_v1_keeps_its_problems(
        self, document: dict[str, Any], operation: Operation, statuses: set[str]
    ) -> None:
        responses = _documented(document, operation)["responses"]

        assert set(responses) == statuses
        for status in statuses - {"200"}:
            [(media_type, content)] = responses[status]["content"].items()
            if operation is v1.PREDICT_OPERATION:
                assert media_type == "application/problem+json"
                assert content["schema"] == {"$ref": _REF + "Problem"}
            elif operation is v2.SERVER_READY:  # not ready: the same body, ready false
                assert content["schema"] == {"$ref": _REF + "ServerReadyResponse"}
            else:
                assert media_type == "application/json"
                assert content["schema"] == {"$ref": _REF + "InferenceErrorResponse"}
