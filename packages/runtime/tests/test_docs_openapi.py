"""Offline /docs and /redoc, and an OpenAPI document whose errors are Problem bodies."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pydantic import BaseModel
from tessera_contracts.problem import PROBLEM_MEDIA_TYPE
from tessera_runtime import PROBLEM_RESPONSES, create_service_app, problem_responses

ASSET_TYPES = {
    "swagger-ui-bundle.js": "javascript",
    "swagger-ui.css": "text/css",
    "redoc.standalone.js": "javascript",
    "favicon.png": "image/png",
}


class ValidationError(BaseModel):
    """A service's own model that happens to share a name with FastAPI's default."""

    field: str


def referenced_urls(html: str) -> list[str]:
    return re.findall(r"""(?:src|href)\s*=\s*["']([^"']+)["']""", html)


class TestDocsPages:
    @pytest.mark.parametrize(
        ("page", "assets"),
        [
            ("/docs", {"swagger-ui-bundle.js", "swagger-ui.css", "favicon.png"}),
            ("/redoc", {"redoc.standalone.js", "favicon.png"}),
        ],
    )
    async def test_reference_only_local_assets(
        self, client: httpx.AsyncClient, page: str, assets: set[str]
    ) -> None:
        response = await client.get(page)

        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/html")
        html = response.text
        urls = referenced_urls(html)
        assert {url.rsplit("/", 1)[-1] for url in urls} == assets
        assert all(url.startswith("/static/docs/") for url in urls)
        # No CDN, font service or validator anywhere in the page, not just in src/href.
        assert "http://" not in html
        assert "https://" not in html
        assert "/openapi.json" in html

    @pytest.mark.parametrize(("asset", "content_type"), sorted(ASSET_TYPES.items()))
    async def test_assets_are_served(
        self, client: httpx.AsyncClient, asset: str, content_type: str
    ) -> None:
        response = await client.get(f"/static/docs/{asset}")

        assert response.status_code == 200
        assert content_type in response.headers["content-type"]
        assert len(response.content) > 1000

    async def test_swagger_bundle_is_the_real_library(self, client: httpx.AsyncClient) -> None:
        response = await client.get("/static/docs/swagger-ui-bundle.js")

        assert "SwaggerUIBundle" in response.text

    async def test_urls_carry_the_root_path_behind_a_proxy(self, demo_app: FastAPI) -> None:
        transport = httpx.ASGITransport(app=demo_app, root_path="/catalog")
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            html = (await client.get("/catalog/docs")).text

        assert all(url.startswith("/catalog/static/docs/") for url in referenced_urls(html))
        assert "'/catalog/openapi.json'" in html

    async def test_oauth2_redirect_page_exists(self, client: httpx.AsyncClient) -> None:
        response = await client.get("/docs/oauth2-redirect")

        assert response.status_code == 200
        assert "oauth2" in response.text


def operation(doc: dict[str, Any], path: str, method: str) -> dict[str, Any]:
    result: dict[str, Any] = doc["paths"][path][method]
    return result


class TestOpenApi:
    async def test_default_422_is_a_problem(self, client: httpx.AsyncClient) -> None:
        doc = (await client.get("/openapi.json")).json()

        responses = operation(doc, "/v1/products/predict", "post")["responses"]
        assert responses["422"]["content"] == {
            PROBLEM_MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}
        }
        schemas = doc["components"]["schemas"]
        assert "HTTPValidationError" not in schemas
        assert "ValidationError" not in schemas
        assert {"Problem", "FieldError"} <= set(schemas)
        assert schemas["Problem"]["properties"]["errors"]["anyOf"][0]["items"] == {
            "$ref": "#/components/schemas/FieldError"
        }

    async def test_problem_responses_are_documented_as_problem_json(
        self, client: httpx.AsyncClient
    ) -> None:
        doc = (await client.get("/openapi.json")).json()

        responses = operation(doc, "/v1/products/{product_id}", "get")["responses"]
        assert set(responses) == {"200", "404", "422", "500"}
        for status in ("404", "500"):
            assert responses[status]["content"] == {
                PROBLEM_MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}
            }
        assert responses["404"]["description"] == "Not Found"
        # The success response keeps its own media type.
        assert "application/json" in responses["200"]["content"]

    async def test_a_service_model_named_like_a_default_is_kept(self) -> None:
        app = create_service_app(title="t", version="0")

        @app.post("/check")
        async def check(body: ValidationError) -> ValidationError:
            return body

        schemas = app.openapi()["components"]["schemas"]

        assert "ValidationError" in schemas
        assert "HTTPValidationError" not in schemas

    def test_every_operation_with_a_body_documents_the_422_problem(self) -> None:
        # The 422 is also the answer to a body that cannot be parsed at all (not
        # UTF-8, say), whatever else the operation documents.
        app = create_service_app(title="t", version="0")

        @app.post("/plain")
        async def plain(body: ValidationError) -> None:
            return None

        @app.put("/things/{thing_id}", responses=problem_responses(404, 409))
        async def put_thing(thing_id: int, body: ValidationError) -> None:
            return None

        @app.patch("/common", responses=PROBLEM_RESPONSES)
        async def common(body: ValidationError) -> None:
            return None

        doc = app.openapi()

        with_body = [
            operation
            for item in doc["paths"].values()
            for operation in item.values()
            if "requestBody" in operation
        ]
        assert len(with_body) == 3
        for operation in with_body:
            assert operation["responses"]["422"]["content"] == {
                PROBLEM_MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}
            }

    def test_document_is_cached_and_route_responses_are_untouched(self) -> None:
        responses = problem_responses(409)
        app = create_service_app(title="t", version="0")

        @app.put("/things/{thing_id}", responses=responses)
        async def put_thing(thing_id: int) -> None:
            return None

        first = app.openapi()

        assert app.openapi() is first
        assert responses[409]["content"] == {PROBLEM_MEDIA_TYPE: {}}
        put = first["paths"]["/things/{thing_id}"]["put"]["responses"]
        assert put["409"]["content"][PROBLEM_MEDIA_TYPE]["schema"] == {
            "$ref": "#/components/schemas/Problem"
        }

    def test_problem_responses_constant_covers_common_errors(self) -> None:
        assert set(PROBLEM_RESPONSES) == {404, 422, 500}

    async def test_tags_and_description_are_passed_on(self) -> None:
        app = create_service_app(
            title="catalog",
            version="9.9",
            description="Products.",
            openapi_tags=[{"name": "products", "description": "Product rows."}],
        )

        doc = app.openapi()

        assert doc["info"] == {"title": "catalog", "version": "9.9", "description": "Products."}
        assert doc["tags"] == [{"name": "products", "description": "Product rows."}]
