"""v2 products: keyset cursors (stable under inserts), exact money, the same writes as v1."""

from __future__ import annotations

import asyncio
import base64
import uuid
from typing import Any

import httpx
import pytest
from tessera_contracts import v2
from tessera_contracts.parameters import MAX_LIMIT
from tessera_stack.testing import Json, product_body_v2

from .conftest import Db


async def bulk_insert(db: Db, count: int, prefix: str = "BULK") -> None:
    # Same created_at for all rows of one call: the id must break the tie in the keyset.
    await db.execute(
        "INSERT INTO products (id, sku, name, category, price) "
        "SELECT gen_random_uuid(), $2 || '-' || i, 'Bulk ' || i, 'bulk', 1 "
        "FROM generate_series(1, $1) AS i",
        count,
        prefix,
    )


async def walk(client: httpx.AsyncClient, limit: int, **params: Any) -> list[Json]:
    """Every page of the v2 listing; returns the pages' JSON."""
    pages: list[Json] = []
    cursor: str | None = None
    while True:
        query = {"limit": limit, **params} | ({"cursor": cursor} if cursor else {})
        response = await client.get("/v2/products", params=query)
        assert response.status_code == 200, response.text
        page: Json = response.json()
        pages.append(page)
        cursor = page["next_cursor"]
        if cursor is None:
            return pages


class TestCreateAndGet:
    async def test_create_with_money_and_read_back_in_both_versions(
        self, client: httpx.AsyncClient
    ) -> None:
        response = await client.post(
            "/v2/products", json=product_body_v2(price={"amount": "59.90", "currency": "EUR"})
        )

        assert response.status_code == 201
        product = v2.Product.model_validate_json(response.content)
        assert response.headers["location"] == f"/v2/products/{product.id}"
        assert response.headers["etag"] == '"1"'
        assert response.json()["price"] == {"amount": "59.90", "currency": "EUR"}
        v1_view = (await client.get(f"/v1/products/{product.id}")).json()
        assert (v1_view["price"], v1_view["currency"]) == (59.9, "EUR")
        fetched = await client.get(f"/v2/products/{product.id}")
        assert fetched.json() == response.json()
        assert fetched.headers["etag"] == '"1"'

    @pytest.mark.parametrize(
        ("price", "loc"),
        [
            ({"amount": 59.9, "currency": "EUR"}, ["body", "price", "amount"]),
            ({"amount": "59.999", "currency": "EUR"}, ["body", "price", "amount"]),
            ({"amount": "-1", "currency": "EUR"}, ["body", "price", "amount"]),
            ({"amount": "1e3", "currency": "EUR"}, ["body", "price", "amount"]),
            ({"amount": "1", "currency": "eur"}, ["body", "price", "currency"]),
            ({"amount": "1"}, ["body", "price", "currency"]),
        ],
    )
    async def test_bad_money_is_422(
        self, client: httpx.AsyncClient, price: Json, loc: list[str]
    ) -> None:
        response = await client.post("/v2/products", json=product_body_v2(price=price))

        assert response.status_code == 422
        assert loc in [e["loc"] for e in response.json()["errors"]]

    async def test_largest_amount_round_trips_exactly(self, client: httpx.AsyncClient) -> None:
        price = {"amount": "999999999999.99", "currency": "USD"}

        response = await client.post("/v2/products", json=product_body_v2(price=price))

        assert response.status_code == 201
        assert (await client.get(response.headers["location"])).json()["price"] == price

    async def test_idempotent_create(self, client: httpx.AsyncClient, db: Db) -> None:
        headers = {"Idempotency-Key": "v2-create"}
        first = await client.post("/v2/products", json=product_body_v2(), headers=headers)

        retry = await client.post("/v2/products", json=product_body_v2(), headers=headers)
        other = await client.post(
            "/v2/products", json=product_body_v2(name="Other"), headers=headers
        )

        assert retry.status_code == 201
        assert retry.content == first.content
        assert other.status_code == 409
        assert await db.fetchval("SELECT count(*) FROM products") == 1

    async def test_duplicate_sku_is_409(self, client: httpx.AsyncClient) -> None:
        await client.post("/v2/products", json=product_body_v2())

        response = await client.post("/v2/products", json=product_body_v2(name="Twin"))

        assert response.status_code == 409
        assert response.json()["title"] == "DuplicateSku"

    async def test_unknown_id_is_404(self, client: httpx.AsyncClient) -> None:
        response = await client.get(f"/v2/products/{uuid.uuid4()}")

        assert response.status_code == 404


class TestPatchAndDelete:
    async def test_patch_price_sets_amount_and_currency_with_if_match(
        self, client: httpx.AsyncClient
    ) -> None:
        created = (await client.post("/v2/products", json=product_body_v2())).json()
        url = f"/v2/products/{created['id']}"

        response = await client.patch(
            url, json={"price": {"amount": "10.00", "currency": "GBP"}}, headers={"If-Match": '"1"'}
        )
        stale = await client.patch(url, json={"name": "Late"}, headers={"If-Match": '"1"'})

        assert response.status_code == 200
        assert response.json()["price"] == {"amount": "10.00", "currency": "GBP"}
        assert response.json()["version"] == 2
        assert stale.status_code == 412

    async def test_patch_errors(self, client: httpx.AsyncClient) -> None:
        created = (await client.post("/v2/products", json=product_body_v2())).json()
        url = f"/v2/products/{created['id']}"

        assert (await client.patch(url, json={})).status_code == 422
        assert (await client.patch(url, json={"price": None})).status_code == 422
        assert (
            await client.patch(f"/v2/products/{uuid.uuid4()}", json={"name": "X"})
        ).status_code == 404

    async def test_delete(self, client: httpx.AsyncClient) -> None:
        created = (await client.post("/v2/products", json=product_body_v2())).json()
        url = f"/v2/products/{created['id']}"

        assert (await client.delete(url, headers={"If-Match": '"7"'})).status_code == 412
        assert (await client.delete(url, headers={"If-Match": '"1"'})).status_code == 204
        assert (await client.get(url)).status_code == 404


class TestCursorPagination:
    async def test_walks_every_product_once_in_order(
        self, client: httpx.AsyncClient, db: Db
    ) -> None:
        await bulk_insert(db, 23)

        pages = await walk(client, limit=5)

        ids = [p["id"] for page in pages for p in page["items"]]
        expected = [
            str(r["id"]) for r in await db.fetch("SELECT id FROM products ORDER BY created_at, id")
        ]
        assert ids == expected
        assert [len(page["items"]) for page in pages] == [5, 5, 5, 5, 3]
        assert all(page["limit"] == 5 for page in pages)

    async def test_exact_multiple_of_limit_ends_without_an_empty_page(
        self, client: httpx.AsyncClient, db: Db
    ) -> None:
        await bulk_insert(db, 10)

        pages = await walk(client, limit=5)

        assert [len(page["items"]) for page in pages] == [5, 5]

    async def test_stable_while_rows_are_inserted_concurrently(
        self, client: httpx.AsyncClient, db: Db
    ) -> None:
        await bulk_insert(db, 40, prefix="OLD")
        existing = {str(r["id"]) for r in await db.fetch("SELECT id FROM products")}
        walking_done = asyncio.Event()

        async def writer() -> int:
            # Inserts through the API while the reader pages, until the reader is done.
            count = 0
            while not walking_done.is_set():
                count += 1
                response = await client.post(
                    "/v2/products", json=product_body_v2(sku=f"NEW-{count}")
                )
                assert response.status_code == 201
                await asyncio.sleep(0)
            return count

        async def reader() -> list[str]:
            try:
                pages = await walk(client, limit=3)
            finally:
                walking_done.set()
            return [p["id"] for page in pages for p in page["items"]]

        inserted, seen = await asyncio.gather(writer(), reader())

        assert inserted > 0
        assert len(seen) == len(set(seen)), "a row was returned twice"
        assert existing <= set(seen), "a row that existed throughout was skipped"

    async def test_filters_apply_to_every_page(self, client: httpx.AsyncClient, db: Db) -> None:
        await bulk_insert(db, 7, prefix="BULK")
        for i in range(4):
            await client.post(
                "/v2/products", json=product_body_v2(sku=f"LAMP-{i}", name=f"Oak Lamp {i}")
            )

        pages = await walk(client, limit=3, q="lamp", category="home")

        assert [p["sku"] for page in pages for p in page["items"]] == [
            f"LAMP-{i}" for i in range(4)
        ]

    async def test_limit_is_capped(self, client: httpx.AsyncClient, db: Db) -> None:
        await bulk_insert(db, MAX_LIMIT + 1)

        response = await client.get("/v2/products", params={"limit": 5000})

        assert response.json()["limit"] == MAX_LIMIT
        assert len(response.json()["items"]) == MAX_LIMIT
        assert response.json()["next_cursor"] is not None

    @pytest.mark.parametrize(
        "cursor",
        [
            "garbage!",
            "",
            "a" * 201,
            base64.urlsafe_b64encode(b"k1:not-a-date|x").decode().rstrip("="),
            base64.urlsafe_b64encode(b"k1:2025-01-01T00:00:00|" + str(uuid.uuid4()).encode())
            .decode()
            .rstrip("="),  # naive timestamp
            base64.urlsafe_b64encode(b"k0:2025-01-01T00:00:00+00:00|" + str(uuid.uuid4()).encode())
            .decode()
            .rstrip("="),  # unknown version
            base64.urlsafe_b64encode(b"\xff\xfe").decode(),
            "é",
        ],
    )
    async def test_malformed_cursor_is_400(self, client: httpx.AsyncClient, cursor: str) -> None:
        response = await client.get("/v2/products", params={"cursor": cursor})

        assert response.status_code == 400
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["title"] == "InvalidCursor"

    async def test_a_cursor_of_a_deleted_row_still_works(
        self, client: httpx.AsyncClient, db: Db
    ) -> None:
        await bulk_insert(db, 6)
        first = (await client.get("/v2/products", params={"limit": 3})).json()
        await client.delete(f"/v2/products/{first['items'][-1]['id']}")

        second = await client.get(
            "/v2/products", params={"limit": 3, "cursor": first["next_cursor"]}
        )

        assert second.status_code == 200
        assert len(second.json()["items"]) == 3
        assert second.json()["next_cursor"] is None
