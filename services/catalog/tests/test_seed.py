"""Demo data: realistic, deterministic, loaded only into an empty catalog."""

from __future__ import annotations

import asyncio
import hashlib

from tessera_catalog.db.seed import demo_data, seed_if_empty
from tessera_contracts import v1

from .conftest import Db

# Ranges of the breast-cancer data set's "mean" features, in vector order.
RANGES = [
    (6, 28), (9, 40), (43, 190), (143, 2501), (0.05, 0.16),
    (0.02, 0.35), (0, 0.43), (0, 0.2), (0.1, 0.3), (0.05, 0.1),
]  # fmt: skip


async def test_loads_products_reviews_and_inventory_into_an_empty_database(
    database_url: str, db: Db
) -> None:
    inserted = await seed_if_empty(database_url)

    products = await db.fetchval("SELECT count(*) FROM products")
    reviews = await db.fetchval("SELECT count(*) FROM reviews")
    stock = await db.fetchval("SELECT count(*) FROM inventory")
    assert products >= 200
    assert reviews >= products  # a few per product on average
    assert stock == products
    assert inserted == products + reviews + stock
    assert await db.fetchval("SELECT count(DISTINCT category) FROM products") >= 5


async def test_second_call_inserts_nothing(database_url: str, db: Db) -> None:
    await seed_if_empty(database_url)
    before = await db.fetchval("SELECT count(*) FROM products")

    assert await seed_if_empty(database_url) == 0
    assert await db.fetchval("SELECT count(*) FROM products") == before


async def test_concurrent_seeders_load_the_data_once(database_url: str, db: Db) -> None:
    results = await asyncio.gather(seed_if_empty(database_url), seed_if_empty(database_url))

    assert sorted(results)[0] == 0
    assert await db.fetchval("SELECT count(*) FROM products") == len(demo_data().products)


async def test_does_not_touch_a_catalog_that_has_products(database_url: str, db: Db) -> None:
    await db.execute(
        "INSERT INTO products (id, sku, name, category, price) "
        "VALUES (gen_random_uuid(), 'MINE-1', 'Mine', 'home', 1)"
    )

    assert await seed_if_empty(database_url) == 0
    assert await db.fetchval("SELECT count(*) FROM products") == 1
    assert await db.fetchval("SELECT count(*) FROM reviews") == 0


def _fingerprint(data: object) -> str:
    return hashlib.sha256(repr(data).encode()).hexdigest()


def test_demo_data_is_deterministic() -> None:
    assert _fingerprint(demo_data()) == _fingerprint(demo_data())


async def test_every_row_is_a_valid_contract_with_realistic_features(
    database_url: str, db: Db
) -> None:
    await seed_if_empty(database_url)
    rows = await db.fetch("SELECT * FROM products")

    with_features = 0
    for row in rows:
        product = v1.Product.model_validate({**dict(row), "price": float(row["price"])})
        if product.features is not None:
            with_features += 1
            for value, (low, high) in zip(product.features, RANGES, strict=True):
                assert low <= value <= high, (product.sku, product.features)
    # Most products can be classified; some have no vector (prediction null).
    assert len(rows) * 0.8 <= with_features < len(rows)
    for row in await db.fetch("SELECT * FROM reviews"):
        v1.Review.model_validate(dict(row))
    for row in await db.fetch("SELECT * FROM inventory"):
        v1.Inventory.model_validate(dict(row))
