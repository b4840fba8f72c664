"""Typed catalog calls through the real gateway: round trips, problems, preconditions."""

from __future__ import annotations

import uuid
from decimal import Decimal

import pytest
from tessera_client import NotModified, TesseraClient, TesseraError, TesseraSyncClient
from tessera_contracts import v1, v2

from .conftest import Stack, v1_product, v2_product


class TestV1RoundTrip:
    async def test_create_get_update_delete(self, client: TesseraClient) -> None:
        created = await client.v1.create_product(v1_product(price=10.0))

        fetched = await client.v1.get_product(created.id)
        updated = await client.v1.update_product(created.id, v1.ProductUpdate(price=12.5))
        await client.v1.delete_product(created.id)

        assert isinstance(created, v1.Product)
        assert fetched == created
        assert (updated.price, updated.version, updated.name) == (12.5, 2, created.name)
        with pytest.raises(TesseraError) as gone:
            await client.v1.get_product(created.id)
        assert gone.value.status == 404

    async def test_patch_sends_only_the_fields_set(self, client: TesseraClient) -> None:
        created = await client.v1.create_product(v1_product())

        cleared = await client.v1.update_product(created.id, v1.ProductUpdate(features=None))

        assert cleared.features is None
        assert (cleared.price, cleared.sku) == (created.price, created.sku)

    def test_sync_client_round_trip(self, sync_client: TesseraSyncClient) -> None:
        created = sync_client.v1.create_product(v1_product())

        assert sync_client.v1.get_product(created.id) == created
        sync_client.v1.delete_product(created.id)
        with pytest.raises(TesseraError) as gone:
            sync_client.v1.get_product(created.id)
        assert gone.value.status == 404


class TestV2RoundTrip:
    async def test_create_get_update_delete(self, client: TesseraClient) -> None:
        created = await client.v2.create_product(v2_product())

        fetched = await client.v2.get_product(created.id)
        price = v2.Money(amount=Decimal("21.00"), currency="EUR")
        updated = await client.v2.update_product(created.id, v2.ProductUpdate(price=price))
        await client.v2.delete_product(created.id)

        assert isinstance(created, v2.Product)
        assert fetched == created
        assert updated.price == price
        assert updated.version == 2


class TestProblems:
    async def test_invalid_body_is_422_naming_each_field(self, client: TesseraClient) -> None:
        # JSON sent as is: the typed facade would refuse to build this body.
        bad = {"sku": "", "name": "x", "category": "home", "price": -1}

        with pytest.raises(TesseraError) as raised:
            await client.call(v1.CREATE_PRODUCT, body=bad)

        error = raised.value
        assert error.status == 422
        assert {tuple(e.loc) for e in error.errors} >= {("body", "sku"), ("body", "price")}
        assert error.request_id

    async def test_unknown_product_is_404(self, client: TesseraClient) -> None:
        with pytest.raises(TesseraError) as raised:
            await client.v2.get_product(uuid.uuid4())

        assert raised.value.status == 404
        assert raised.value.problem.title
        assert raised.value.operation is v2.GET_PRODUCT

    async def test_missing_scope_is_403(self, stack: Stack) -> None:
        async with TesseraClient(stack.gateway, api_key=stack.reader) as reader:
            with pytest.raises(TesseraError) as raised:
                await reader.v1.create_product(v1_product())

        assert raised.value.status == 403


class TestPreconditions:
    async def test_stale_if_match_is_412(self, client: TesseraClient) -> None:
        created = await client.v1.create_product(v1_product())
        etag = (await client.send(v1.GET_PRODUCT, path={"product_id": created.id})).etag
        assert etag

        await client.v1.update_product(created.id, v1.ProductUpdate(name="Renamed"), if_match=etag)
        with pytest.raises(TesseraError) as raised:
            await client.v1.update_product(
                created.id, v1.ProductUpdate(name="Again"), if_match=etag
            )

        assert raised.value.status == 412
        assert raised.value.headers.get("etag") != etag

    async def test_current_if_none_match_raises_not_modified(self, client: TesseraClient) -> None:
        created = await client.v2.create_product(v2_product())
        etag = (await client.send(v2.GET_PRODUCT, path={"product_id": created.id})).etag
        assert etag

        with pytest.raises(NotModified) as raised:
            await client.v2.get_product(created.id, if_none_match=etag)

        assert raised.value.etag == etag

    async def test_idempotent_create_replays_and_refuses_another_body(
        self, client: TesseraClient
    ) -> None:
        key = uuid.uuid4().hex
        body = v1_product()

        first = await client.v1.create_product(body, idempotency_key=key)
        replay = await client.v1.create_product(body, idempotency_key=key)
        with pytest.raises(TesseraError) as conflict:
            await client.v1.create_product(v1_product(), idempotency_key=key)

        assert replay == first
        assert conflict.value.status == 409


class TestIterators:
    @pytest.mark.parametrize("version", ["v1", "v2"])
    async def test_products_over_several_pages(self, client: TesseraClient, version: str) -> None:
        # The same products either way: v1 pages by offset until `total`, v2
        # follows `next_cursor`.
        category = f"c{uuid.uuid4().hex[:12]}"
        created = [
            (await client.v1.create_product(v1_product(category=category))).id for _ in range(5)
        ]
        pages = client.v1.iter_products if version == "v1" else client.v2.iter_products

        seen = [p.id async for p in pages(category=category, limit=2)]

        assert seen == created

    async def test_v1_reviews_over_several_pages(self, client: TesseraClient) -> None:
        product = await client.v1.create_product(v1_product())
        for rating in (3, 4, 5):
            review = v1.ReviewCreate(rating=rating, title=f"{rating} stars", author="ada")
            await client.v1.create_review(product.id, review)

        ratings = [r.rating async for r in client.v1.iter_reviews(product.id, limit=2)]

        assert sorted(ratings) == [3, 4, 5]

    def test_sync_iterators(self, sync_client: TesseraSyncClient) -> None:
        category = f"c{uuid.uuid4().hex[:12]}"
        created = [
            sync_client.v2.create_product(v2_product(category=category)).id for _ in range(3)
        ]

        assert [p.id for p in sync_client.v2.iter_products(category=category, limit=2)] == created
        assert [p.id for p in sync_client.v1.iter_products(category=category, limit=2)] == created
