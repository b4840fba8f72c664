"""Reviews and inventory of a product over HTTP."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import pytest
from tessera_contracts import v1
from tessera_stack.testing import Json

from .conftest import Db, MakeProduct


def review_body(**overrides: Any) -> Json:
    return {"rating": 4, "title": "Solid", "body": "Does the job.", "author": "Ana"} | overrides


class TestReviews:
    async def test_post_then_list_newest_first_with_total(
        self, client: httpx.AsyncClient, make_product: MakeProduct
    ) -> None:
        product = await make_product()
        url = f"/v1/products/{product['id']}/reviews"
        posted = []
        for rating in (5, 3, 1):
            response = await client.post(url, json=review_body(rating=rating))
            assert response.status_code == 201
            posted.append(v1.Review.model_validate_json(response.content))

        page = await client.get(url, params={"limit": 2})
        rest = await client.get(url, params={"limit": 2, "offset": 2})

        assert page.status_code == 200
        assert page.json()["total"] == 3
        assert [r["id"] for r in page.json()["items"]] == [str(posted[2].id), str(posted[1].id)]
        assert [r["id"] for r in rest.json()["items"]] == [str(posted[0].id)]
        assert posted[0].product_id == uuid.UUID(product["id"])

    async def test_product_without_reviews_lists_empty(
        self, client: httpx.AsyncClient, make_product: MakeProduct
    ) -> None:
        product = await make_product()

        response = await client.get(f"/v1/products/{product['id']}/reviews")

        assert response.json() == {"items": [], "total": 0, "offset": 0, "limit": 20}

    async def test_unknown_product_is_404_for_list_and_post(
        self, client: httpx.AsyncClient, db: Db
    ) -> None:
        url = f"/v1/products/{uuid.uuid4()}/reviews"

        listed = await client.get(url)
        posted = await client.post(url, json=review_body())

        assert listed.status_code == posted.status_code == 404
        assert posted.json()["title"] == "ProductNotFound"
        assert await db.fetchval("SELECT count(*) FROM outbox") == 0

    @pytest.mark.parametrize(
        ("overrides", "loc"),
        [
            ({"rating": 0}, ["body", "rating"]),
            ({"rating": 6}, ["body", "rating"]),
            ({"rating": 4.5}, ["body", "rating"]),
            ({"rating": "5"}, ["body", "rating"]),
            ({"title": ""}, ["body", "title"]),
            ({"author": "x" * 101}, ["body", "author"]),
            ({"body": "x" * 5001}, ["body", "body"]),
            ({"author": "\u0000"}, ["body", "author"]),
        ],
    )
    async def test_invalid_review_is_422_and_writes_nothing(
        self,
        client: httpx.AsyncClient,
        make_product: MakeProduct,
        db: Db,
        overrides: Json,
        loc: list[str],
    ) -> None:
        product = await make_product()

        response = await client.post(
            f"/v1/products/{product['id']}/reviews", json=review_body(**overrides)
        )

        assert response.status_code == 422
        assert loc in [e["loc"] for e in response.json()["errors"]]
        assert await db.fetchval("SELECT count(*) FROM reviews") == 0

    async def test_idempotent_post(
        self, client: httpx.AsyncClient, make_product: MakeProduct, db: Db
    ) -> None:
        product = await make_product()
        url = f"/v1/products/{product['id']}/reviews"
        headers = {"Idempotency-Key": "review-1"}

        first, retry = [
            await client.post(url, json=review_body(), headers=headers) for _ in range(2)
        ]
        conflict = await client.post(url, json=review_body(rating=1), headers=headers)

        assert retry.content == first.content
        assert retry.headers["idempotent-replayed"] == "true"
        assert conflict.status_code == 409
        assert await db.fetchval("SELECT count(*) FROM reviews") == 1


class TestInventory:
    async def test_new_product_has_zero_stock(
        self, client: httpx.AsyncClient, make_product: MakeProduct
    ) -> None:
        product = await make_product()

        response = await client.get(f"/v1/products/{product['id']}/inventory")

        assert response.status_code == 200
        assert response.json() == {
            "product_id": product["id"],
            "quantity": 0,
            "reserved": 0,
            "updated_at": product["created_at"],
        }

    async def test_put_sets_stock_and_get_reads_it(
        self, client: httpx.AsyncClient, make_product: MakeProduct
    ) -> None:
        product = await make_product()
        url = f"/v1/products/{product['id']}/inventory"

        first = await client.put(url, json={"quantity": 12, "reserved": 2})
        second = await client.put(url, json={"quantity": 3})

        assert first.status_code == second.status_code == 200
        assert (first.json()["quantity"], first.json()["reserved"]) == (12, 2)
        fetched = v1.Inventory.model_validate_json((await client.get(url)).content)
        assert (fetched.quantity, fetched.reserved) == (3, 0)

    async def test_setting_the_same_stock_sends_no_event(
        self, client: httpx.AsyncClient, make_product: MakeProduct, db: Db
    ) -> None:
        product = await make_product()
        url = f"/v1/products/{product['id']}/inventory"
        await client.put(url, json={"quantity": 5})
        events = await db.fetchval("SELECT count(*) FROM outbox")

        again = await client.put(url, json={"quantity": 5})

        assert again.status_code == 200
        assert await db.fetchval("SELECT count(*) FROM outbox") == events

    async def test_concurrent_puts_leave_one_of_the_written_values(
        self, client: httpx.AsyncClient, make_product: MakeProduct, db: Db
    ) -> None:
        product = await make_product()
        url = f"/v1/products/{product['id']}/inventory"

        responses = await asyncio.gather(
            *(client.put(url, json={"quantity": q}) for q in range(1, 9))
        )

        assert {r.status_code for r in responses} == {200}
        final = (await client.get(url)).json()["quantity"]
        # The last committed write wins, and every write that changed stock left one event.
        last_event = await db.fetchval(
            "SELECT payload FROM outbox WHERE subject = 'catalog.v1.inventory.updated' ORDER BY id DESC LIMIT 1"
        )
        assert f'"quantity":{final},'.encode() in last_event

    @pytest.mark.parametrize(
        ("body", "loc"),
        [
            ({"quantity": -1}, ["body", "quantity"]),
            ({"quantity": 1, "reserved": -1}, ["body", "reserved"]),
            ({"quantity": 1, "reserved": 2}, ["body"]),
            ({"quantity": 2**31}, ["body", "quantity"]),
            ({"quantity": "3"}, ["body", "quantity"]),
            ({}, ["body", "quantity"]),
        ],
    )
    async def test_invalid_stock_is_422_and_changes_nothing(
        self, client: httpx.AsyncClient, make_product: MakeProduct, body: Json, loc: list[str]
    ) -> None:
        product = await make_product()
        url = f"/v1/products/{product['id']}/inventory"
        await client.put(url, json={"quantity": 7, "reserved": 1})

        response = await client.put(url, json=body)

        assert response.status_code == 422
        assert loc in [e["loc"] for e in response.json()["errors"]]
        assert (await client.get(url)).json()["quantity"] == 7

    async def test_unknown_product_is_404(self, client: httpx.AsyncClient) -> None:
        url = f"/v1/products/{uuid.uuid4()}/inventory"

        assert (await client.get(url)).status_code == 404
        assert (await client.put(url, json={"quantity": 1})).status_code == 404
