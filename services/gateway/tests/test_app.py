"""The gateway as a service: docs offline, health, metrics, request ids, CORS, shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Callable

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import iter_route_contexts
from pydantic import BaseModel, HttpUrl
from tessera_contracts import v1, v2
from tessera_contracts.asyncapi import asyncapi_document
from tessera_contracts.operations import GATEWAY
from tessera_gateway.api.proxied import ProxiedRoute
from tessera_gateway.app import create_app
from tessera_gateway.domain.access import Access
from tessera_gateway.settings import Settings

from .conftest import Keys, MakeGateway, Tap, serve

PRODUCTS = "/v1/products"


def proxied_routes(app: FastAPI) -> list[ProxiedRoute]:
    """The app's proxied routes (FastAPI keeps included routers nested)."""
    return [
        context.original_route
        for context in iter_route_contexts(app.routes)
        if isinstance(context.original_route, ProxiedRoute)
    ]


class TestDocs:
    @pytest.mark.parametrize("page", ["/docs", "/redoc"])
    async def test_pages_load_only_local_assets(self, make_gateway: MakeGateway, page: str) -> None:
        async with make_gateway() as gateway:
            html = (await gateway.get(page)).text
            assets = re.findall(r'(?:src|href)="([^"]+)"', html)
            fetched = [await gateway.get(asset) for asset in assets if asset != "/openapi.json"]

        assert assets
        assert all(asset.startswith("/") for asset in assets), assets  # no CDN
        assert all(response.status_code == 200 for response in fetched)
        assert "/openapi.json" in html

    async def test_every_operation_is_documented(self) -> None:
        app = create_app(Settings())
        schema = app.openapi()
        operations = {
            (method.upper(), path): operation
            for path, item in schema["paths"].items()
            for method, operation in item.items()
        }
        proxied = {
            (method, route.path)
            for route in proxied_routes(app)
            if route.include_in_schema
            for method in route.methods or ()
        }

        assert proxied <= set(operations)
        # HEAD (every GET has one) is HTTP's business, not an operation of its own.
        assert not [key for key in operations if key[0] == "HEAD"]
        assert ("GET", "/v1/events") in operations
        for key in proxied:
            operation = operations[key]
            assert operation["summary"], key
            assert operation["description"], key
            assert {"401", "403", "429", "502", "503", "504"} <= set(operation["responses"]), key
            assert {"bearer", "apiKey"} <= {
                name for requirement in operation["security"] for name in requirement
            }, key
            success = next(code for code in operation["responses"] if code.startswith("2"))
            if success != "204":
                content = operation["responses"][success]["content"]["application/json"]
                assert "$ref" in content["schema"] or "type" in content["schema"], key

    async def test_serves_exactly_the_contract_s_operations(self) -> None:
        app = create_app(Settings())
        schema = app.openapi()
        table = (*v1.OPERATIONS, *v2.OPERATIONS)
        documented = {
            (method.upper(), path) for path, item in schema["paths"].items() for method in item
        }
        routes = proxied_routes(app)
        # Operations are not hashable (their mappings): compared by key.
        proxied = {route.operation.key for route in routes if route.include_in_schema}
        heads = {route.operation.key for route in routes if route.methods == {"HEAD"}}

        assert {(op.method, op.path) for op in table} <= documented
        assert proxied == {op.key for op in table if op.owner != GATEWAY}
        assert [op.key for op in table if op.owner == GATEWAY] == [v1.EVENTS.key]
        assert heads == {op.key for op in table if op.owner != GATEWAY and op.method == "GET"}
        assert len(routes) == len(proxied) + len(heads)
        for route in routes:
            operation = route.operation
            assert route.path == operation.path, operation.key
            assert route.proxy.upstream.name == operation.owner, operation.key
            assert route.proxy.access == Access(operation.scope, operation.anonymous)
            assert route.proxy.retry == operation.retry_policy, operation.key
            if route.include_in_schema:
                assert route.methods == {operation.method}, operation.key
                document = schema["paths"][operation.path][operation.method.lower()]
                security = document["security"]
                scopes = [scopes for requirement in security for scopes in requirement.values()]
                assert scopes == [[operation.scope], [operation.scope]], operation.key
                # Settings() allows anonymous reads: the empty requirement says so.
                assert ({} in security) == operation.anonymous, operation.key

    async def test_oip_operations_document_the_protocol_s_errors_and_no_422(self) -> None:
        paths = create_app(Settings()).openapi()["paths"]
        oip = {
            (method, path): operation
            for path, item in paths.items()
            if path.startswith("/v2/models/")
            for method, operation in item.items()
        }

        assert len(oip) == 6
        for key, operation in oip.items():
            responses = operation["responses"]
            assert "422" not in responses, key
            for status in ("400", "404"):
                schema = responses[status]["content"]["application/json"]["schema"]
                assert schema["$ref"].endswith("InferenceErrorResponse"), key
        # Catalog operations keep FastAPI's 422 with field detail.
        assert "422" in paths["/v1/products"]["post"]["responses"]

    async def test_bodies_reference_the_contract_models_and_examples_are_valid(self) -> None:
        app = create_app(Settings())
        schema = app.openapi()
        for route in proxied_routes(app):
            if route.body_field is None:
                continue
            method = next(iter(route.methods or ()))
            body = schema["paths"][route.path][method.lower()]["requestBody"]
            media = body["content"]["application/json"]
            model: type[BaseModel] = route.body_field.field_info.annotation  # type: ignore[assignment]
            version = model.__module__.split(".")[1]  # tessera_contracts.v1.catalog
            name = media["schema"]["$ref"].removeprefix("#/components/schemas/")
            assert name in (model.__name__, f"{version}.{model.__name__}"), route.path
            assert name in schema["components"]["schemas"]
            assert media.get("examples"), route.path
            for example in media["examples"].values():
                model.model_validate(example["value"])

    async def test_asyncapi_document_is_served_and_linked_from_the_docs(
        self, make_gateway: MakeGateway
    ) -> None:
        async with make_gateway() as gateway:
            served = await gateway.get("/asyncapi.json")
            description = (await gateway.get("/openapi.json")).json()["info"]["description"]

        assert served.status_code == 200
        assert served.headers["content-type"] == "application/json"
        assert served.json() == asyncapi_document()
        assert served.json()["asyncapi"] == "3.0.0"
        # /docs renders the description: a relative link works behind a path prefix too.
        assert "(asyncapi.json)" in description

    async def test_schemes_are_declared(self) -> None:
        schemes = create_app(Settings()).openapi()["components"]["securitySchemes"]

        assert schemes["bearer"] == {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "tsk_<id>_<secret>",
            "description": "`Authorization: Bearer <key>`",
        }
        assert schemes["apiKey"]["in"] == "header"


class TestServiceEndpoints:
    async def test_health_and_readiness(self, make_gateway: MakeGateway) -> None:
        async with make_gateway() as gateway:
            live = await gateway.get("/healthz")
            ready = await gateway.get("/readyz")

        assert live.status_code == 200
        assert live.json()["service"] == "gateway"
        # Upstreams are not readiness dependencies: their outages are the breakers' job.
        assert ready.status_code == 200

    async def test_proxied_requests_are_counted_by_route_template(
        self, gateway: httpx.AsyncClient
    ) -> None:
        await gateway.get("/v1/products/00000000-0000-0000-0000-000000000000")

        metrics = (await gateway.get("/metrics")).text

        assert (
            'http_requests_total{method="GET",route="/v1/products/{product_id}",status="404"} 1.0'
            in metrics
        )

    async def test_request_id_is_echoed_on_proxied_and_refused_requests(
        self, gateway: httpx.AsyncClient
    ) -> None:
        proxied = await gateway.get(PRODUCTS, headers={"X-Request-ID": "rid-1"})
        refused = await gateway.post(PRODUCTS, json={}, headers={"X-Request-ID": "rid-2"})

        assert proxied.headers["x-request-id"] == "rid-1"
        assert refused.status_code == 401
        assert refused.headers["x-request-id"] == "rid-2"

    async def test_unknown_path_and_method_are_problems(self, gateway: httpx.AsyncClient) -> None:
        missing = await gateway.get("/v1/nothing")
        wrong_method = await gateway.put(PRODUCTS)

        assert missing.status_code == 404
        assert wrong_method.status_code == 405
        assert wrong_method.headers["content-type"] == "application/problem+json"


class TestProxyRouter:
    async def test_admits_answers_and_labels_proxied_requests(
        self, make_gateway: MakeGateway, catalog_url: str, keys: Keys
    ) -> None:
        async with make_gateway(catalog_url=HttpUrl(catalog_url)) as gateway:
            listed = await gateway.get(PRODUCTS, headers={"X-Request-ID": "rid-proxied"})
            refused = await gateway.post(PRODUCTS, json={})
            forbidden = await gateway.post(PRODUCTS, json={}, headers=Keys.bearer(keys.reader))
            metrics = (await gateway.get("/metrics")).text

        assert listed.status_code == 200
        assert listed.headers["x-request-id"] == "rid-proxied"
        assert listed.headers["ratelimit-limit"]
        assert refused.status_code == 401
        assert refused.headers["www-authenticate"].startswith("Bearer")
        assert forbidden.status_code == 403
        assert forbidden.headers["content-type"] == "application/problem+json"
        assert 'route="/v1/products",status="200"' in metrics


class TestCors:
    async def test_preflight_and_exposed_headers(
        self, make_gateway: MakeGateway, catalog_url: str
    ) -> None:
        origin = "https://shop.example"
        async with make_gateway(
            catalog_url=HttpUrl(catalog_url), cors_allow_origins=[origin]
        ) as gateway:
            preflight = await gateway.options(
                PRODUCTS,
                headers={
                    "Origin": origin,
                    "Access-Control-Request-Method": "POST",
                    "Access-Control-Request-Headers": "authorization,idempotency-key",
                },
            )
            actual = await gateway.get(PRODUCTS, headers={"Origin": origin})
            foreign = await gateway.get(PRODUCTS, headers={"Origin": "https://evil.example"})

        assert preflight.status_code == 200
        assert preflight.headers["access-control-allow-origin"] == origin
        assert "idempotency-key" in preflight.headers["access-control-allow-headers"].lower()
        assert actual.headers["access-control-allow-origin"] == origin
        assert "ratelimit-remaining" in actual.headers["access-control-expose-headers"].lower()
        assert "access-control-allow-origin" not in foreign.headers


class TestShutdown:
    async def test_in_flight_requests_finish_and_streams_end(
        self,
        gateway_settings: Callable[..., Settings],
        catalog_url: str,
        keys: Keys,
    ) -> None:
        tap = Tap(catalog_url, delay_s=0.5)
        async with serve(tap) as slow:
            running = serve(create_app(gateway_settings(catalog_url=HttpUrl(slow))))
            url = await running.__aenter__()
            async with httpx.AsyncClient(base_url=url, timeout=10) as client:
                in_flight = asyncio.create_task(client.get(PRODUCTS))
                async with client.stream("GET", "/v1/events") as stream:
                    assert stream.status_code == 200
                    await asyncio.sleep(0.2)  # the slow request is at the tap now
                    await asyncio.wait_for(running.__aexit__(None, None, None), 10)
                    # The stream ended (so shutdown could finish): the client sees
                    # the connection close, and an EventSource reconnects elsewhere
                    # with Last-Event-ID.
                    with contextlib.suppress(httpx.RemoteProtocolError):
                        async with asyncio.timeout(1):
                            async for _ in stream.aiter_lines():
                                pass
                response = await in_flight

        assert response.status_code == 200
