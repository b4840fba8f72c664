"""Serving a contract operation: the binder's checks, validation and documentation."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any
from uuid import UUID, uuid4

import httpx
import pytest
from fastapi import APIRouter, Depends, FastAPI
from fastapi.responses import Response
from tessera_contracts import v1, v2
from tessera_contracts.parameters import IdempotencyHeaders, IfMatchHeaders, ProductPath
from tessera_runtime import create_service_app
from tessera_runtime.operations import OperationRoute, implements, operation_endpoint

# A catalog write with a path parameter, a header model and a body.
UPDATE = v1.UPDATE_PRODUCT


async def _answer() -> str:
    return "dependency"


Answer = Annotated[str, Depends(_answer)]


def app_serving(router: APIRouter) -> FastAPI:
    app = create_service_app(title="test", version="0")
    app.include_router(router)
    return app


async def call(app: FastAPI, method: str, url: str, **kwargs: Any) -> httpx.Response:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        return await client.request(method, url, **kwargs)


async def _undeclared_part(product_id: UUID, query: ProductPath) -> Response:
    raise AssertionError  # pragma: no cover


async def _part_of_another_model(product_id: UUID, headers: IdempotencyHeaders) -> Response:
    raise AssertionError  # pragma: no cover


async def _neither_part_nor_dependency(product_id: UUID, verbose: bool) -> Response:
    # It would otherwise become an undeclared query parameter.
    raise AssertionError  # pragma: no cover


class TestBinding:
    @pytest.mark.parametrize(
        ("handler", "match"),
        [
            (_undeclared_part, "declares no 'query'"),
            (_part_of_another_model, "headers is"),
            (_neither_part_nor_dependency, "'verbose'"),
        ],
        ids=["part-not-declared", "part-of-another-model", "no-part-no-dependency"],
    )
    def test_a_parameter_the_operation_does_not_declare_is_refused(
        self, handler: Callable[..., Awaitable[Response]], match: str
    ) -> None:
        with pytest.raises(TypeError, match=match):
            implements(APIRouter(), UPDATE)(handler)

    def test_the_server_cannot_override_the_contract(self) -> None:
        async def handler(product_id: UUID) -> Response:
            raise AssertionError  # pragma: no cover

        with pytest.raises(TypeError, match="status_code"):
            implements(APIRouter(), UPDATE, status_code=202)(handler)

    def test_a_route_serving_no_operation_is_refused(self) -> None:
        async def endpoint() -> None:
            raise AssertionError  # pragma: no cover

        with pytest.raises(TypeError, match="serves no operation"):
            OperationRoute("/x", endpoint)


class TestServing:
    async def test_every_declared_part_is_validated_even_if_unused(self) -> None:
        router = APIRouter()

        @implements(router, UPDATE)
        async def update(product_id: UUID, answer: Answer) -> Response:
            return Response(f"{product_id} {answer}")

        app = app_serving(router)
        product = uuid4()
        good = await call(app, "PATCH", f"/v1/products/{product}", json={"price": 1.5})
        bad = await call(
            app,
            "PATCH",
            f"/v1/products/{product}",
            json={"price": -1},
            headers={"If-Match": "x" * 2000},
        )

        assert good.status_code == 200
        assert good.text == f"{product} dependency"
        assert bad.status_code == 422
        assert bad.headers["content-type"] == "application/problem+json"
        locs = sorted(tuple(error["loc"][:2]) for error in bad.json()["errors"])
        assert locs == [("body", "price"), ("header", "If-Match")]

    async def test_the_handler_gets_the_parts_it_names(self) -> None:
        router = APIRouter()
        seen: dict[str, Any] = {}

        @implements(router, UPDATE)
        async def update(
            product_id: UUID, headers: IfMatchHeaders, body: v1.ProductUpdate
        ) -> Response:
            seen.update(product_id=product_id, if_match=headers.if_match, body=body)
            return Response(status_code=204)

        product = uuid4()
        await call(
            app_serving(router),
            "PATCH",
            f"/v1/products/{product}",
            json={"name": "Lamp"},
            headers={"If-Match": '"3"'},
        )

        assert seen == {
            "product_id": product,
            "if_match": '"3"',
            "body": v1.ProductUpdate(name="Lamp"),
        }


class TestDocumentation:
    def test_the_document_is_the_operation_s(self) -> None:
        router = APIRouter()

        @implements(router, UPDATE)
        async def update(product_id: UUID) -> Response:
            raise AssertionError  # pragma: no cover

        document = app_serving(router).openapi()["paths"][UPDATE.path]["patch"]

        assert document["operationId"] == "v1_update_product"
        assert document["summary"] == UPDATE.summary
        assert {p["name"] for p in document["parameters"]} == {"product_id", "If-Match"}
        statuses = {int(status) for status in document["responses"]}
        assert statuses == {UPDATE.status, *UPDATE.errors}
        assert "ETag" in document["responses"]["200"]["headers"]

    def test_no_422_where_invalid_input_is_another_status(self) -> None:
        router = APIRouter()

        @implements(router, v2.INFER)
        async def infer(name: str) -> Response:
            raise AssertionError  # pragma: no cover

        responses = app_serving(router).openapi()["paths"][v2.INFER.path]["post"]["responses"]

        assert "422" not in responses
        assert set(responses) == {"200", "400", "404", "503"}
        assert responses["404"]["description"] == "Unknown model or version"

    def test_an_event_stream_is_documented_by_its_item(self) -> None:
        router = APIRouter()

        @implements(router, v1.EVENTS)
        async def events() -> Response:
            raise AssertionError  # pragma: no cover

        document = app_serving(router).openapi()
        success = document["paths"][v1.EVENTS.path]["get"]["responses"]["200"]["content"]
        item = success["text/event-stream"]["itemSchema"]
        data = item["properties"]["data"]
        name = data["contentSchema"]["$ref"].removeprefix("#/components/schemas/")

        assert list(success) == ["text/event-stream"]
        assert item["properties"]["event"]["enum"] == [s.name for s in v1.CATALOG_EVENT_SUBJECTS]
        assert data["contentMediaType"] == "application/json"
        assert name in document["components"]["schemas"]

    def test_openapi_extra_of_server_and_contract_are_merged(self) -> None:
        router = APIRouter()
        operation = v1.GET_PRODUCT

        async def get(product_id: UUID) -> Response:
            raise AssertionError  # pragma: no cover

        implements(router, operation, openapi_extra={"security": [{}]})(get)
        document = app_serving(router).openapi()["paths"][operation.path]["get"]

        assert document["security"] == [{}]
        assert "ETag" in document["responses"]["200"]["headers"]  # the contract's part


def test_operation_endpoint_keeps_the_handler_s_name() -> None:
    async def get_product(product_id: UUID) -> Response:
        raise AssertionError  # pragma: no cover

    endpoint = operation_endpoint(v1.GET_PRODUCT, get_product)

    assert endpoint.__name__ == "get_product"
    assert endpoint.__doc__ is None  # the operation documents it, not the handler
