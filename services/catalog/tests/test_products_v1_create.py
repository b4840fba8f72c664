"""v1 products over HTTP: create (with Idempotency-Key) and its error paths."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from tessera_contracts import v1
from tessera_stack.testing import Json, assert_problem_body, error_locs

from .conftest import Db, MakeProduct, ProductBody


class TestCreateProduct:
    async def test_returns_201_with_location_etag_and_the_product(
        self, client: httpx.AsyncClient, product_body: ProductBody
    ) -> None:
        body = product_body(price=19.99)

        response = await client.post("/v1/products", json=body)

        assert response.status_code == 201
        product = v1.Product.model_validate_json(response.content)
        assert response.headers["location"] == f"/v1/products/{product.id}"
        assert response.headers["etag"] == '"1"'
        assert (product.sku, product.name, product.price, product.version) == (
            body["sku"],
            body["name"],
            19.99,
            1,
        )
        assert product.features == body["features"]
        fetched = await client.get(response.headers["location"])
        assert v1.Product.model_validate_json(fetched.content) == product

    async def test_defaults_currency_description_and_features(
        self, client: httpx.AsyncClient
    ) -> None:
        response = await client.post(
            "/v1/products", json={"sku": "MIN-1", "name": "Bare", "category": "misc", "price": 1}
        )

        assert response.status_code == 201
        assert response.json() | {"id": None, "created_at": None, "updated_at": None} == {
            "id": None,
            "sku": "MIN-1",
            "name": "Bare",
            "description": "",
            "category": "misc",
            "price": 1.0,
            "currency": "USD",
            "features": None,
            "version": 1,
            "created_at": None,
            "updated_at": None,
        }

    async def test_price_keeps_two_decimals_rounded_half_to_even(
        self, client: httpx.AsyncClient, product_body: ProductBody
    ) -> None:
        response = await client.post("/v1/products", json=product_body(price=2.675))
        v2_view = await client.get(f"/v2/products/{response.json()['id']}")

        assert response.json()["price"] == 2.68
        assert v2_view.json()["price"] == {"amount": "2.68", "currency": "USD"}

    async def test_duplicate_sku_is_409_and_writes_nothing(
        self,
        client: httpx.AsyncClient,
        make_product: MakeProduct,
        product_body: ProductBody,
        db: Db,
    ) -> None:
        await make_product(sku="DUP-1")
        events_before = await db.fetchval("SELECT count(*) FROM outbox")

        response = await client.post("/v1/products", json=product_body(sku="DUP-1", name="Other"))

        body = assert_problem_body(response, 409, "DuplicateSku")
        assert "DUP-1" in body["detail"]
        assert await db.fetchval("SELECT count(*) FROM products") == 1
        assert await db.fetchval("SELECT count(*) FROM outbox") == events_before

    @pytest.mark.parametrize(
        ("overrides", "loc"),
        [
            ({"sku": "lower"}, ["body", "sku"]),
            ({"sku": ""}, ["body", "sku"]),
            ({"name": ""}, ["body", "name"]),
            ({"name": "x" * 201}, ["body", "name"]),
            ({"category": "x" * 65}, ["body", "category"]),
            ({"price": -0.01}, ["body", "price"]),
            ({"price": "9.99"}, ["body", "price"]),  # strict: no string-to-number coercion
            ({"currency": "usd"}, ["body", "currency"]),
            ({"features": [1.0] * 9}, ["body", "features"]),
            ({"features": [1.0] * 9 + [-1.0]}, ["body", "features", 9]),
            ({"price": 1e15}, ["body", "price"]),  # beyond numeric(14, 2)
            ({"name": "nul\u0000byte"}, ["body", "name"]),  # PostgreSQL text cannot hold U+0000
        ],
    )
    async def test_invalid_body_is_422_with_field_location_and_writes_nothing(
        self,
        client: httpx.AsyncClient,
        product_body: ProductBody,
        db: Db,
        overrides: Json,
        loc: list[Any],
    ) -> None:
        response = await client.post("/v1/products", json=product_body(**overrides))

        body = assert_problem_body(response, 422)
        assert loc in error_locs(body)
        assert await db.fetchval("SELECT count(*) FROM products") == 0
        assert await db.fetchval("SELECT count(*) FROM outbox") == 0

    async def test_missing_fields_are_all_reported(self, client: httpx.AsyncClient) -> None:
        response = await client.post("/v1/products", json={})

        body = assert_problem_body(response, 422)
        assert {("body", f) for f in ("sku", "name", "category", "price")} <= {
            tuple(loc) for loc in error_locs(body)
        }

    @pytest.mark.parametrize("content", [b"{not json", b"[]", b'"text"', b""])
    async def test_malformed_json_is_422(self, client: httpx.AsyncClient, content: bytes) -> None:
        response = await client.post(
            "/v1/products", content=content, headers={"content-type": "application/json"}
        )

        assert_problem_body(response, 422)

    async def test_lone_surrogate_in_text_is_422_not_500(self, client: httpx.AsyncClient) -> None:
        content = b'{"sku": "SUR-1", "name": "bad \\ud800 text", "category": "home", "price": 1}'

        response = await client.post(
            "/v1/products", content=content, headers={"content-type": "application/json"}
        )

        assert_problem_body(response, 422)


class TestIdempotentCreate:
    async def test_retry_with_same_key_and_body_returns_the_first_result(
        self, client: httpx.AsyncClient, product_body: ProductBody, db: Db
    ) -> None:
        headers = {"Idempotency-Key": "create-lamp-1"}
        first = await client.post("/v1/products", json=product_body(), headers=headers)

        retry = await client.post("/v1/products", json=product_body(), headers=headers)

        assert first.status_code == retry.status_code == 201
        assert retry.content == first.content
        assert retry.headers["location"] == first.headers["location"]
        assert retry.headers["etag"] == first.headers["etag"]
        assert retry.headers["idempotent-replayed"] == "true"
        assert "idempotent-replayed" not in first.headers
        assert await db.fetchval("SELECT count(*) FROM products") == 1
        assert await db.fetchval("SELECT count(*) FROM outbox") == 1

    async def test_same_key_with_a_different_body_is_409(
        self, client: httpx.AsyncClient, product_body: ProductBody, db: Db
    ) -> None:
        headers = {"Idempotency-Key": "create-lamp-2"}
        await client.post("/v1/products", json=product_body(), headers=headers)

        response = await client.post(
            "/v1/products", json=product_body(name="Another name"), headers=headers
        )

        assert_problem_body(response, 409, "IdempotencyKeyReused")
        assert await db.fetchval("SELECT count(*) FROM products") == 1

    async def test_concurrent_requests_with_one_key_create_one_product(
        self, client: httpx.AsyncClient, product_body: ProductBody, db: Db
    ) -> None:
        headers = {"Idempotency-Key": "burst"}

        responses = await asyncio.gather(
            *(client.post("/v1/products", json=product_body(), headers=headers) for _ in range(8))
        )

        assert {r.status_code for r in responses} == {201}
        assert len({r.json()["id"] for r in responses}) == 1
        assert await db.fetchval("SELECT count(*) FROM products") == 1

    async def test_a_failed_request_does_not_burn_the_key(
        self, client: httpx.AsyncClient, make_product: MakeProduct, product_body: ProductBody
    ) -> None:
        taken = await make_product(sku="TAKEN-1")
        headers = {"Idempotency-Key": "retry-after-fix"}
        first = await client.post("/v1/products", json=product_body(sku="TAKEN-1"), headers=headers)
        assert first.status_code == 409
        await client.delete(f"/v1/products/{taken['id']}")

        retry = await client.post("/v1/products", json=product_body(sku="TAKEN-1"), headers=headers)

        assert retry.status_code == 201
        assert "idempotent-replayed" not in retry.headers

    async def test_keys_are_scoped_to_the_endpoint(
        self, client: httpx.AsyncClient, product_body: ProductBody
    ) -> None:
        headers = {"Idempotency-Key": "shared-key"}
        product = await client.post("/v1/products", json=product_body(), headers=headers)

        review = await client.post(
            f"/v1/products/{product.json()['id']}/reviews",
            json={"rating": 5, "title": "Great", "author": "Ana"},
            headers=headers,
        )

        assert review.status_code == 201
        assert "idempotent-replayed" not in review.headers

    @pytest.mark.parametrize("key", ["", "has space", "x" * 256, "tab\tkey"])
    async def test_malformed_key_is_422(
        self, client: httpx.AsyncClient, product_body: ProductBody, key: str
    ) -> None:
        response = await client.post(
            "/v1/products", json=product_body(), headers={"Idempotency-Key": key}
        )

        body = assert_problem_body(response, 422)
        assert ["header", "Idempotency-Key"] in error_locs(body)
