"""v1 products over HTTP: get (ETag), list, patch (If-Match), delete and their error paths."""

from __future__ import annotations

import asyncio
import uuid

import httpx
import pytest
from tessera_contracts.parameters import MAX_LIMIT
from tessera_stack.testing import Json, assert_problem_body, error_locs

from .conftest import Db, MakeProduct


class TestGetProduct:
    async def test_returns_product_with_etag(
        self, client: httpx.AsyncClient, make_product: MakeProduct
    ) -> None:
        created = await make_product()

        response = await client.get(f"/v1/products/{created['id']}")

        assert response.status_code == 200
        assert response.json() == created
        assert response.headers["etag"] == '"1"'

    async def test_if_none_match_with_current_etag_is_304(
        self, client: httpx.AsyncClient, make_product: MakeProduct
    ) -> None:
        created = await make_product()

        response = await client.get(
            f"/v1/products/{created['id']}", headers={"If-None-Match": '"1"'}
        )
        stale = await client.get(f"/v1/products/{created['id']}", headers={"If-None-Match": '"0"'})

        assert response.status_code == 304
        assert response.content == b""
        assert stale.status_code == 200

    async def test_unknown_id_is_404(self, client: httpx.AsyncClient) -> None:
        response = await client.get(f"/v1/products/{uuid.uuid4()}")

        assert_problem_body(response, 404, "ProductNotFound")

    async def test_malformed_id_is_422_with_path_location(self, client: httpx.AsyncClient) -> None:
        response = await client.get("/v1/products/not-a-uuid")

        body = assert_problem_body(response, 422)
        assert error_locs(body) == [["path", "product_id"]]


class TestListProducts:
    async def test_offset_pages_with_total_in_creation_order(
        self, client: httpx.AsyncClient, make_product: MakeProduct
    ) -> None:
        created = [await make_product() for _ in range(5)]

        first = await client.get("/v1/products", params={"limit": 2})
        last = await client.get("/v1/products", params={"limit": 2, "offset": 4})
        beyond = await client.get("/v1/products", params={"offset": 10})

        assert first.json()["total"] == last.json()["total"] == beyond.json()["total"] == 5
        assert [p["id"] for p in first.json()["items"]] == [p["id"] for p in created[:2]]
        assert [p["id"] for p in last.json()["items"]] == [created[4]["id"]]
        assert beyond.json()["items"] == []
        assert (first.json()["offset"], first.json()["limit"]) == (0, 2)

    async def test_limit_above_the_cap_is_served_as_the_cap(
        self, client: httpx.AsyncClient, db: Db
    ) -> None:
        await db.execute(
            "INSERT INTO products (id, sku, name, category, price) "
            "SELECT gen_random_uuid(), 'BULK-' || i, 'Bulk ' || i, 'bulk', 1 "
            "FROM generate_series(1, $1) AS i",
            MAX_LIMIT + 5,
        )

        response = await client.get("/v1/products", params={"limit": 10**30})

        assert response.status_code == 200
        assert response.json()["limit"] == MAX_LIMIT
        assert len(response.json()["items"]) == MAX_LIMIT
        assert response.json()["total"] == MAX_LIMIT + 5

    async def test_text_search_matches_name_and_description(
        self, client: httpx.AsyncClient, make_product: MakeProduct
    ) -> None:
        lamp = await make_product(name="Walnut Desk Lamp", description="Warm light.")
        vase = await make_product(
            name="Ceramic Vase", description="Holds lamps of flowers? No: tulips."
        )
        await make_product(name="Steel Kettle", description="Boils water.")

        by_name = await client.get("/v1/products", params={"q": "lamp"})
        by_description = await client.get("/v1/products", params={"q": "tulips"})
        both_words = await client.get("/v1/products", params={"q": "walnut lamp"})

        assert {p["id"] for p in by_name.json()["items"]} == {lamp["id"], vase["id"]}
        assert by_name.json()["total"] == 2
        assert [p["id"] for p in by_description.json()["items"]] == [vase["id"]]
        assert [p["id"] for p in both_words.json()["items"]] == [lamp["id"]]

    async def test_category_filter_combines_with_search(
        self, client: httpx.AsyncClient, make_product: MakeProduct
    ) -> None:
        home = await make_product(name="Oak Lamp", category="home")
        await make_product(name="Camping Lamp", category="outdoor")

        response = await client.get("/v1/products", params={"q": "lamp", "category": "home"})

        assert [p["id"] for p in response.json()["items"]] == [home["id"]]
        assert response.json()["total"] == 1

    @pytest.mark.parametrize(
        ("params", "loc"),
        [
            ({"limit": 0}, ["query", "limit"]),
            ({"limit": "ten"}, ["query", "limit"]),
            ({"offset": -1}, ["query", "offset"]),
            ({"offset": 2**63}, ["query", "offset"]),
            ({"q": ""}, ["query", "q"]),
            ({"q": "x" * 201}, ["query", "q"]),
            ({"q": "nul\x00"}, ["query", "q"]),
            ({"category": "a\x00"}, ["query", "category"]),
        ],
    )
    async def test_bad_query_parameters_are_422_with_location(
        self, client: httpx.AsyncClient, params: Json, loc: list[str]
    ) -> None:
        response = await client.get("/v1/products", params=params)

        body = assert_problem_body(response, 422)
        assert loc in error_locs(body)

    @pytest.mark.parametrize("q", ['"unbalanced', "a & | ! ( )", "the", "-", "OR OR"])
    async def test_odd_search_syntax_never_fails(self, client: httpx.AsyncClient, q: str) -> None:
        response = await client.get("/v1/products", params={"q": q})

        assert response.status_code == 200
        assert response.json()["total"] == 0


class TestUpdateProduct:
    async def test_patch_changes_only_given_fields_and_bumps_version(
        self, client: httpx.AsyncClient, make_product: MakeProduct
    ) -> None:
        created = await make_product()

        response = await client.patch(
            f"/v1/products/{created['id']}", json={"name": "Renamed", "price": 5}
        )

        assert response.status_code == 200
        updated = response.json()
        assert (updated["name"], updated["price"], updated["version"]) == ("Renamed", 5.0, 2)
        assert updated["sku"] == created["sku"]
        assert updated["features"] == created["features"]
        assert updated["updated_at"] > created["updated_at"]
        assert response.headers["etag"] == '"2"'

    async def test_null_features_removes_the_vector(
        self, client: httpx.AsyncClient, make_product: MakeProduct
    ) -> None:
        created = await make_product()

        response = await client.patch(f"/v1/products/{created['id']}", json={"features": None})

        assert response.json()["features"] is None

    async def test_matching_if_match_succeeds_and_stale_one_is_412(
        self, client: httpx.AsyncClient, make_product: MakeProduct
    ) -> None:
        created = await make_product()
        url = f"/v1/products/{created['id']}"
        etag = (await client.get(url)).headers["etag"]
        first = await client.patch(url, json={"name": "First"}, headers={"If-Match": etag})

        second = await client.patch(url, json={"name": "Second"}, headers={"If-Match": etag})

        assert first.status_code == 200
        body = assert_problem_body(second, 412, "PreconditionFailed")
        assert second.headers["etag"] == '"2"'
        assert '"2"' in body["detail"]
        assert (await client.get(url)).json()["name"] == "First"

    @pytest.mark.parametrize(
        ("if_match", "status"),
        [("*", 200), ('"0", "1"', 200), ('W/"1"', 412), ("1", 412), ('"9"', 412)],
    )
    async def test_if_match_forms(
        self, client: httpx.AsyncClient, make_product: MakeProduct, if_match: str, status: int
    ) -> None:
        created = await make_product()

        response = await client.patch(
            f"/v1/products/{created['id']}", json={"name": "X"}, headers={"If-Match": if_match}
        )

        assert response.status_code == status

    async def test_concurrent_patches_with_one_etag_only_one_wins(
        self, client: httpx.AsyncClient, make_product: MakeProduct
    ) -> None:
        created = await make_product()
        url = f"/v1/products/{created['id']}"

        responses = await asyncio.gather(
            *(
                client.patch(url, json={"name": f"Writer {i}"}, headers={"If-Match": '"1"'})
                for i in range(6)
            )
        )

        assert sorted(r.status_code for r in responses) == [200] + [412] * 5
        assert (await client.get(url)).json()["version"] == 2

    async def test_patch_that_changes_nothing_keeps_the_version(
        self, client: httpx.AsyncClient, make_product: MakeProduct, db: Db
    ) -> None:
        created = await make_product()
        events = await db.fetchval("SELECT count(*) FROM outbox")

        response = await client.patch(
            f"/v1/products/{created['id']}", json={"name": created["name"]}
        )

        assert response.json()["version"] == 1
        assert await db.fetchval("SELECT count(*) FROM outbox") == events

    async def test_sku_taken_by_another_product_is_409(
        self, client: httpx.AsyncClient, make_product: MakeProduct
    ) -> None:
        await make_product(sku="ONE-1")
        other = await make_product(sku="TWO-2")

        response = await client.patch(f"/v1/products/{other['id']}", json={"sku": "ONE-1"})

        assert_problem_body(response, 409, "DuplicateSku")
        assert (await client.get(f"/v1/products/{other['id']}")).json()["sku"] == "TWO-2"

    @pytest.mark.parametrize(
        "body", [{}, {"name": None}, {"price": -1}, {"sku": "bad sku"}, {"name": "a\u0000b"}]
    )
    async def test_invalid_patch_is_422_and_changes_nothing(
        self, client: httpx.AsyncClient, make_product: MakeProduct, body: Json
    ) -> None:
        created = await make_product()

        response = await client.patch(f"/v1/products/{created['id']}", json=body)

        assert_problem_body(response, 422)
        assert (await client.get(f"/v1/products/{created['id']}")).json() == created

    async def test_unknown_id_is_404(self, client: httpx.AsyncClient) -> None:
        response = await client.patch(f"/v1/products/{uuid.uuid4()}", json={"name": "X"})

        assert_problem_body(response, 404, "ProductNotFound")


class TestDeleteProduct:
    async def test_delete_is_204_then_404(
        self, client: httpx.AsyncClient, make_product: MakeProduct
    ) -> None:
        created = await make_product()
        url = f"/v1/products/{created['id']}"

        response = await client.delete(url)

        assert response.status_code == 204
        assert response.content == b""
        assert_problem_body(await client.get(url), 404)
        assert_problem_body(await client.delete(url), 404)

    async def test_stale_if_match_is_412_and_keeps_the_product(
        self, client: httpx.AsyncClient, make_product: MakeProduct
    ) -> None:
        created = await make_product()
        url = f"/v1/products/{created['id']}"
        await client.patch(url, json={"name": "Changed"})

        response = await client.delete(url, headers={"If-Match": '"1"'})

        assert_problem_body(response, 412)
        assert (await client.get(url)).status_code == 200

    async def test_delete_removes_reviews_and_inventory(
        self, client: httpx.AsyncClient, make_product: MakeProduct, db: Db
    ) -> None:
        created = await make_product()
        url = f"/v1/products/{created['id']}"
        await client.post(f"{url}/reviews", json={"rating": 4, "title": "Good", "author": "Ben"})
        await client.put(f"{url}/inventory", json={"quantity": 3})

        await client.delete(url)

        assert await db.fetchval("SELECT count(*) FROM reviews") == 0
        assert await db.fetchval("SELECT count(*) FROM inventory") == 0
        assert_problem_body(await client.get(f"{url}/reviews"), 404)
        assert_problem_body(await client.get(f"{url}/inventory"), 404)
