"""Deterministic demo data: products with reviews, inventory and feature vectors.

Generated in code from a fixed seed rather than shipped as a file, so the data is
the same on every machine and stays in step with the schema it is written for.
Seeding is a bulk load, not API traffic: it writes no outbox events (subscribers
would otherwise receive hundreds of "created" events on a first `tessera up`).
"""

from __future__ import annotations

import math
import random
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import asyncpg

PRODUCT_COUNT = 240
SEED = 20250106
NAMESPACE = uuid.UUID("6f1c2b5e-3d4a-4e8f-9b0c-7a1d2e3f4a5b")
_EPOCH = datetime(2025, 1, 6, 9, 0, tzinfo=UTC)
# Separate from the migration lock: seeding waits for another seeder, not for migrations.
SEED_LOCK_KEY = 0x7465737365656421 & 0x7FFFFFFFFFFFFFFF

# category, sku prefix, price range in USD, then the nouns (comma-separated)
_CATEGORY_TABLE = """
home         HOM  12 180  Lamp, Throw Blanket, Vase, Wall Clock, Cushion, Mirror
kitchen      KIT   9 240  Chef's Knife, Skillet, Kettle, Cutting Board, Teapot, Dutch Oven
outdoor      OUT  19 420  Tent, Camping Chair, Lantern, Hammock, Cooler, Trekking Poles
electronics  ELE  15 350  Headphones, Bluetooth Speaker, Power Bank, Desk Charger, Webcam, E-Reader
office       OFF   5 460  Notebook, Desk Organizer, Fountain Pen, Monitor Stand, Desk Mat, Task Chair
garden       GAR   6  95  Planter, Watering Can, Pruning Shears, Garden Hose, Seed Tray, Trowel
sports       SPO   8 160  Yoga Mat, Water Bottle, Jump Rope, Kettlebell, Foam Roller, Running Vest
toys         TOY   7  85  Building Blocks, Puzzle, Kite, Wooden Train, Board Game, Plush Bear
"""


def _categories(table: str) -> list[tuple[str, str, list[str], tuple[int, int]]]:
    rows = []
    for line in table.strip().splitlines():
        category, prefix, low, high, nouns = line.split(maxsplit=4)
        rows.append((category, prefix, nouns.split(", "), (int(low), int(high))))
    return rows


_CATEGORIES = _categories(_CATEGORY_TABLE)
_ADJECTIVES = "Classic Compact Deluxe Everyday Nordic Urban Heritage Studio Trail Modern".split()
_MATERIALS = "Oak Linen Ceramic Steel Bamboo Recycled Walnut Cotton Aluminium Cork".split()
_COLORS = ["charcoal", "sand", "forest green", "navy", "terracotta", "ivory", "slate", "mustard"]
_FIRST = "Ana Ben Chloé Dev Emma Farid Grace Hiro Ines Jonas Kemi Luca Maya Nils Olu Priya".split()
_LAST = "ABCDEFGHJKLMNOPRSTVW"
_TITLES = {
    1: ["Disappointed", "Broke within a week", "Not as described"],
    2: ["Below expectations", "Okay-ish, but flimsy", "Would not buy again"],
    3: ["Does the job", "Average", "Fine for the price"],
    4: ["Very good", "Solid purchase", "Happy with it"],
    5: ["Excellent", "Love it", "Best I've owned", "Exactly what I wanted"],
}
_BODIES = {
    1: "The {noun} arrived scratched and stopped working properly after a few days.",
    2: "The {noun} works, but the {material} finish feels cheaper than the photos suggest.",
    3: "A reasonable {noun}. Nothing special, nothing wrong; the {color} looks nice.",
    4: "Well made {noun}. The {material} feels sturdy and it was easy to set up.",
    5: "Beautiful {noun}: the {color} {material} looks great and it has held up perfectly.",
}


@dataclass(frozen=True, slots=True)
class DemoData:
    products: list[tuple[object, ...]]
    reviews: list[tuple[object, ...]]
    inventory: list[tuple[object, ...]]

    @property
    def rows(self) -> int:
        return len(self.products) + len(self.reviews) + len(self.inventory)


PRODUCT_COLUMNS = (
    "id", "sku", "name", "description", "category", "price", "currency",
    "features", "created_at", "updated_at", "version",
)  # fmt: skip
REVIEW_COLUMNS = ("id", "product_id", "rating", "title", "body", "author", "created_at")
INVENTORY_COLUMNS = ("product_id", "quantity", "reserved", "updated_at")


def _clamp(value: float, low: float, high: float) -> float:
    return min(max(value, low), high)


def feature_vector(rng: random.Random, malignant: bool) -> list[float]:
    """Ten "mean" features shaped like the breast-cancer data set's, within its ranges
    (radius 6-28, texture 9-40, perimeter 43-190, area 143-2501, smoothness .05-.16,
    compactness .02-.35, concavity 0-.43, concave points 0-.2, symmetry .1-.3,
    fractal dimension .05-.1).

    Perimeter and area follow from the radius, as they do for real cells, so the
    vectors are plausible inputs for the model rather than uniform noise.
    """
    m = malignant
    radius = _clamp(rng.gauss(17.5 if m else 12.1, 3.2 if m else 1.8), 6.98, 28.0)
    texture = _clamp(rng.gauss(21.6 if m else 17.9, 3.8 if m else 4.0), 9.71, 39.3)
    perimeter = _clamp(radius * 6.55 * (1 + rng.gauss(0, 0.02)), 43.8, 188.5)
    area = _clamp(math.pi * radius**2 * (1 + rng.gauss(0, 0.04)), 143.5, 2501.0)
    smoothness = _clamp(rng.gauss(0.103 if m else 0.0925, 0.013), 0.0526, 0.16)
    compactness = _clamp(rng.gauss(0.145 if m else 0.080, 0.054 if m else 0.034), 0.02, 0.35)
    concavity = _clamp(rng.gauss(0.160 if m else 0.046, 0.075 if m else 0.044), 0.0, 0.4268)
    concave_points = _clamp(rng.gauss(0.088 if m else 0.0257, 0.034 if m else 0.016), 0.0, 0.2)
    symmetry = _clamp(rng.gauss(0.193 if m else 0.174, 0.028 if m else 0.025), 0.106, 0.3)
    fractal = _clamp(rng.gauss(0.0627 if m else 0.0629, 0.007), 0.05, 0.09744)
    values = [radius, texture, perimeter, area, smoothness, compactness, concavity]
    values += [concave_points, symmetry, fractal]
    return [round(v, 5) for v in values]


def demo_data(count: int = PRODUCT_COUNT) -> DemoData:
    """The demo catalog: the same rows for the same `count`, on every machine."""
    rng = random.Random(SEED)
    products: list[tuple[object, ...]] = []
    reviews: list[tuple[object, ...]] = []
    inventory: list[tuple[object, ...]] = []
    for index in range(count):
        category, prefix, nouns, (low, high) = _CATEGORIES[index % len(_CATEGORIES)]
        noun = rng.choice(nouns)
        material = rng.choice(_MATERIALS)
        color = rng.choice(_COLORS)
        name = f"{rng.choice(_ADJECTIVES)} {material} {noun}"
        sku = f"{prefix}-{index + 1:04d}"
        product_id = uuid.uuid5(NAMESPACE, f"product:{sku}")
        description = (
            f"{name} in {color}. Made from {material.lower()} for {category} use; "
            f"designed to last and backed by a two-year warranty."
        )
        # Prices end in .99 or .49, as shop prices do.
        price = Decimal(rng.randint(low, high)) + Decimal(rng.choice(["0.99", "0.49"]))
        # One product in ten has no feature vector: the enriched view then has no prediction.
        features = None if rng.random() < 0.1 else feature_vector(rng, rng.random() < 0.4)
        created = _EPOCH + timedelta(hours=3 * index, minutes=rng.randint(0, 179))
        products.append(
            (
                product_id,
                sku,
                name,
                description,
                category,
                price,
                "USD",
                features,
                created,
                created,
                1,
            )
        )
        for number in range(rng.choice([0, 1, 2, 3, 3, 4, 5, 6, 8])):
            rating = rng.choices([1, 2, 3, 4, 5], weights=[5, 8, 17, 35, 35])[0]
            reviews.append(
                (
                    uuid.uuid5(NAMESPACE, f"review:{sku}:{number}"),
                    product_id,
                    rating,
                    rng.choice(_TITLES[rating]),
                    _BODIES[rating].format(
                        noun=noun.lower(), material=material.lower(), color=color
                    ),
                    f"{rng.choice(_FIRST)} {rng.choice(_LAST)}.",
                    created + timedelta(days=rng.randint(1, 60), minutes=rng.randint(0, 1439)),
                )
            )
        quantity = 0 if rng.random() < 0.08 else rng.randint(1, 500)
        reserved = rng.randint(0, min(quantity, 20))
        inventory.append((product_id, quantity, reserved, created))
    return DemoData(products, reviews, inventory)


async def seed_if_empty(dsn: str) -> int:
    """Load the demo catalog into an empty database.

    Args:
        dsn: PostgreSQL connection string of a migrated catalog database.

    Returns:
        Rows inserted across products, reviews and inventory; 0 when the database
        already had products (nothing is touched then).
    """
    data = demo_data()
    connection = await asyncpg.connect(dsn)
    try:
        async with connection.transaction():
            # Two `tessera up` runs at once: the second waits, then sees products.
            await connection.execute("SELECT pg_advisory_xact_lock($1)", SEED_LOCK_KEY)
            if await connection.fetchval("SELECT EXISTS (SELECT 1 FROM products)"):
                return 0
            await connection.copy_records_to_table(
                "products", records=data.products, columns=PRODUCT_COLUMNS
            )
            await connection.copy_records_to_table(
                "reviews", records=data.reviews, columns=REVIEW_COLUMNS
            )
            await connection.copy_records_to_table(
                "inventory", records=data.inventory, columns=INVENTORY_COLUMNS
            )
        return data.rows
    finally:
        await connection.close()
