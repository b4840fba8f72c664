"""Every catalog operation through the gateway, answered by the real catalog."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from uuid import uuid4

import httpx
import pytest
from pydantic import HttpUrl
from tessera_contracts import v1, v2
from tessera_contracts.problem import Problem
from tessera_stack.testing import Json, product_body

from .conftest import Keys, MakeGateway


async def create(gateway: httpx.AsyncClient, keys: Keys, sku: str, **overrides: object) -> Json:
    response = await gateway.post(
        "/v1/products", json=product_body(sku, **overrides), headers=keys.bearer(keys.writer)
    )
    assert response.status_code == 201, response.text
    created: Json = response.json()
    return created


async def raw_exchange(gateway: httpx.AsyncClient, request: bytes) -> bytes:
    """Send one raw HTTP/1.1 request (with `Connection: close`); the bytes until EOF."""
    url = httpx.URL(str(gateway.base_url))
    assert url.port is not None
    reader, writer = await asyncio.open_connection(url.host, url.port)
    try:
        writer.write(request)
        await writer.drain()
        return await asyncio.wait_for(reader.read(), 5)
    finally:
        writer.close()


class TestHead:
    async def test_head_is_get_without_the_body(
        self, make_gateway: MakeGateway, catalog_url: str, keys: Keys
    ) -> None:
        async with make_gateway(catalog_url=HttpUrl(catalog_url)) as gateway:
            created = await create(gateway, keys, "HD-1")
            path = f"/v1/products/{created['id']}"
            got = await gateway.get(path)
            head = await gateway.head(path)
            missing = f"/v2/products/{uuid4()}"
            missing_get = await gateway.get(missing)
            missing_head = await gateway.head(missing)
            wire = await raw_exchange(
                gateway, f"HEAD {path} HTTP/1.1\r\nHost: g\r\nConnection: close\r\n\r\n".encode()
            )
            post_only = await gateway.head("/v1/predict")

        assert (got.status_code, head.status_code) == (200, 200)
        assert head.content == b""
        for name in ("content-length", "content-type", "etag", "ratelimit-limit"):
            assert head.headers[name] == got.headers[name]
        assert (missing_get.status_code, missing_head.status_code) == (404, 404)
        assert missing_head.headers["content-length"] == missing_get.headers["content-length"]
        assert missing_head.content == b""
        # Nothing follows the header block on the wire.
        assert wire.startswith(b"HTTP/1.1 200")
        assert wire.endswith(b"\r\n\r\n")
        assert wire.count(b"\r\n\r\n") == 1
        assert post_only.status_code == 405


class TestProductsV1:
    async def test_create_then_get_with_etag(self, gateway: httpx.AsyncClient, keys: Keys) -> None:
        created = await create(gateway, keys, "GW-0001")

        response = await gateway.get(f"/v1/products/{created['id']}")

        assert response.status_code == 200
        product = v1.Product.model_validate_json(response.content)
        assert product.sku == "GW-0001"
        assert response.headers["etag"]
        assert response.headers["content-type"] == "application/json"
        # The gateway's own headers are added, the upstream's hop headers are not doubled.
        assert response.headers["ratelimit-limit"]
        assert len(response.headers.get_list("x-request-id")) == 1
        assert len(response.headers.get_list("date")) == 1

    async def test_if_none_match_is_304(self, gateway: httpx.AsyncClient, keys: Keys) -> None:
        created = await create(gateway, keys, "GW-0002")
        first = await gateway.get(f"/v1/products/{created['id']}")

        response = await gateway.get(
            f"/v1/products/{created['id']}", headers={"If-None-Match": first.headers["etag"]}
        )

        assert response.status_code == 304
        assert response.content == b""

    async def test_list_with_query(self, gateway: httpx.AsyncClient, keys: Keys) -> None:
        await create(gateway, keys, "GW-0003", category="garden")
        await create(gateway, keys, "GW-0004", category="kitchen")

        response = await gateway.get("/v1/products", params={"category": "garden", "limit": 5})

        assert response.status_code == 200
        page = v1.ProductPage.model_validate_json(response.content)
        assert [p.sku for p in page.items] == ["GW-0003"]
        assert (page.total, page.limit) == (1, 5)

    async def test_idempotent_create_replays(self, gateway: httpx.AsyncClient, keys: Keys) -> None:
        headers = keys.bearer(keys.writer) | {"Idempotency-Key": "create-gw-5"}
        body = product_body("GW-0005")

        first = await gateway.post("/v1/products", json=body, headers=headers)
        second = await gateway.post("/v1/products", json=body, headers=headers)

        assert (first.status_code, second.status_code) == (201, 201)
        assert first.json()["id"] == second.json()["id"]
        assert second.headers["idempotent-replayed"] == "true"
        assert second.headers["location"] == f"/v1/products/{first.json()['id']}"

    async def test_patch_with_stale_if_match_is_412_from_catalog(
        self, gateway: httpx.AsyncClient, keys: Keys
    ) -> None:
        created = await create(gateway, keys, "GW-0006")
        url = f"/v1/products/{created['id']}"
        writer = keys.bearer(keys.writer)
        etag = (await gateway.get(url)).headers["etag"]
        updated = await gateway.patch(
            url, json={"price": 10.5}, headers=writer | {"If-Match": etag}
        )

        stale = await gateway.patch(url, json={"price": 11.5}, headers=writer | {"If-Match": etag})

        assert updated.status_code == 200
        assert updated.json()["price"] == 10.5
        assert stale.status_code == 412
        assert stale.headers["content-type"] == "application/problem+json"
        assert Problem.model_validate_json(stale.content).title == "PreconditionFailed"

    async def test_delete(self, gateway: httpx.AsyncClient, keys: Keys) -> None:
        created = await create(gateway, keys, "GW-0007")
        url = f"/v1/products/{created['id']}"

        deleted = await gateway.delete(url, headers=keys.bearer(keys.writer))
        after = await gateway.get(url)

        assert deleted.status_code == 204
        assert after.status_code == 404
        assert after.json()["title"] == "ProductNotFound"

    async def test_validation_detail_passes_through(
        self, gateway: httpx.AsyncClient, keys: Keys
    ) -> None:
        body = product_body("GW-0008", price=-1, features=[1.0, 2.0])

        response = await gateway.post("/v1/products", json=body, headers=keys.bearer(keys.writer))

        assert response.status_code == 422
        assert response.headers["content-type"] == "application/problem+json"
        problem = Problem.model_validate_json(response.content)
        locations = {tuple(error.loc) for error in problem.errors or []}
        assert ("body", "price") in locations
        assert ("body", "features") in locations

    async def test_malformed_id_is_the_catalogs_422(self, gateway: httpx.AsyncClient) -> None:
        response = await gateway.get("/v1/products/not-a-uuid")

        assert response.status_code == 422
        problem = Problem.model_validate_json(response.content)
        assert problem.errors is not None
        assert problem.errors[0].loc == ["path", "product_id"]

    @pytest.mark.parametrize("path", ["/v1/products", "/v2/products"])
    async def test_bad_query_is_the_catalogs_422(
        self, gateway: httpx.AsyncClient, catalog_url: str, path: str
    ) -> None:
        # The gateway declares the contract's parameters but does not check them: a
        # NUL byte (which PostgreSQL text cannot hold) is refused by the catalog.
        response = await gateway.get(f"{path}?q=%00")
        async with httpx.AsyncClient(base_url=catalog_url) as catalog:
            direct = await catalog.get(f"{path}?q=%00")

        assert response.status_code == 422
        assert response.headers["content-type"] == "application/problem+json"
        problem = Problem.model_validate_json(response.content)
        assert problem.errors is not None
        assert [error.loc for error in problem.errors] == [["query", "q"]]
        assert problem == Problem.model_validate_json(direct.content)


class TestReviewsAndInventory:
    async def test_reviews(self, gateway: httpx.AsyncClient, keys: Keys) -> None:
        created = await create(gateway, keys, "GW-0101")
        url = f"/v1/products/{created['id']}/reviews"
        review = {"rating": 4, "title": "Good", "author": "ada"}

        posted = await gateway.post(url, json=review, headers=keys.bearer(keys.writer))
        listed = await gateway.get(url, headers=keys.bearer(keys.reader))

        assert posted.status_code == 201
        assert v1.Review.model_validate_json(posted.content).rating == 4
        page = v1.ReviewPage.model_validate_json(listed.content)
        assert [r.title for r in page.items] == ["Good"]

    async def test_inventory(self, gateway: httpx.AsyncClient, keys: Keys) -> None:
        created = await create(gateway, keys, "GW-0102")
        url = f"/v1/products/{created['id']}/inventory"

        put = await gateway.put(
            url, json={"quantity": 12, "reserved": 2}, headers=keys.bearer(keys.writer)
        )
        got = await gateway.get(url)

        assert put.status_code == 200
        inventory = v1.Inventory.model_validate_json(got.content)
        assert (inventory.quantity, inventory.reserved) == (12, 2)

    async def test_reviews_of_unknown_product_is_404(self, gateway: httpx.AsyncClient) -> None:
        response = await gateway.get(f"/v1/products/{uuid4()}/reviews")

        assert response.status_code == 404

    async def test_enriched_v1(self, gateway: httpx.AsyncClient, keys: Keys) -> None:
        created = await create(gateway, keys, "GW-0103")

        response = await gateway.get(f"/v1/products/{created['id']}/enriched")

        assert response.status_code == 200
        enriched = v1.EnrichedProduct.model_validate_json(response.content)
        assert enriched.product.sku == "GW-0103"
        assert enriched.inventory is not None


class TestProductsV2:
    async def test_create_get_patch_delete(self, gateway: httpx.AsyncClient, keys: Keys) -> None:
        writer = keys.bearer(keys.writer)
        body = {
            "sku": "GW-0201",
            "name": "Walnut Shelf",
            "category": "home",
            "price": {"amount": "19.99", "currency": "EUR"},
        }
        created = await gateway.post("/v2/products", json=body, headers=writer)
        assert created.status_code == 201, created.text
        url = f"/v2/products/{created.json()['id']}"

        got = await gateway.get(url)
        patched = await gateway.patch(
            url, json={"price": {"amount": "17.50", "currency": "EUR"}}, headers=writer
        )
        deleted = await gateway.delete(url, headers=writer)

        assert v2.Product.model_validate_json(got.content).price.amount == Decimal("19.99")
        assert patched.json()["price"] == {"amount": "17.50", "currency": "EUR"}
        assert deleted.status_code == 204

    async def test_cursor_pages(self, gateway: httpx.AsyncClient, keys: Keys) -> None:
        for n in range(3):
            await create(gateway, keys, f"GW-03{n:02d}")

        first = v2.ProductPage.model_validate_json(
            (await gateway.get("/v2/products?limit=2")).content
        )
        second_response = await gateway.get(
            "/v2/products", params={"limit": 2, "cursor": first.next_cursor}
        )
        second = v2.ProductPage.model_validate_json(second_response.content)

        assert len(first.items) == 2
        assert first.next_cursor is not None
        assert [p.sku for p in second.items] == ["GW-0302"]
        assert second.next_cursor is None

    async def test_bad_cursor_is_400(self, gateway: httpx.AsyncClient) -> None:
        response = await gateway.get("/v2/products", params={"cursor": "bogus"})

        assert response.status_code == 400
        assert response.json()["title"] == "InvalidCursor"

    async def test_enriched_v2(self, gateway: httpx.AsyncClient, keys: Keys) -> None:
        created = await create(gateway, keys, "GW-0401")

        response = await gateway.get(f"/v2/products/{created['id']}/enriched")

        assert response.status_code == 200
        enriched = v2.EnrichedProduct.model_validate_json(response.content)
        assert str(enriched.product.id) == created["id"]
