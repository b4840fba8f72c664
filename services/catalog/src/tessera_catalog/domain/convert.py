"""Between database records and the v1/v2 contract models.

Records are version-neutral; each API version is a rendering of them. A contract
model whose fields are a record's, by name, is read from the record's attributes
(`from_attributes`). Limits the database has and the contracts do not state (a
price's magnitude, an int4 quantity) are checked here so they come back as 422
with a field location.
"""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import Any, Final

from tessera_contracts import v1, v2
from tessera_contracts.conversions import CENT
from tessera_contracts.problem import FieldError

from tessera_catalog.db.inventory import InventoryRecord
from tessera_catalog.db.products import NewProduct, ProductRecord
from tessera_catalog.db.reviews import NewReview, ReviewRecord, ReviewSummary
from tessera_catalog.errors import InvalidValue

MAX_PRICE: Final = Decimal("999999999999.99")
"""Largest price `numeric(14, 2)` holds: v2's amount pattern allows 12 integer digits."""
MAX_COUNT: Final = 2**31 - 1
"""Inventory counts are PostgreSQL `integer`."""


def price_from_float(price: float, loc: tuple[str | int, ...] = ("body", "price")) -> Decimal:
    """A v1 float price as the exact amount stored: rounded half-to-even to cents,
    as `tessera_contracts.conversions` does."""
    try:
        # repr() gives the shortest decimal that round-trips, i.e. what the client wrote.
        amount = Decimal(repr(price)).quantize(CENT, rounding=ROUND_HALF_EVEN)
    except InvalidOperation:  # too many digits to quantize: far beyond MAX_PRICE
        amount = MAX_PRICE + 1
    if amount > MAX_PRICE:
        raise InvalidValue(
            "price is too large",
            [FieldError(loc=list(loc), msg=f"must be at most {MAX_PRICE}", type="less_than_equal")],
        )
    return amount


def check_count(value: int, name: str) -> int:
    if value > MAX_COUNT:
        raise InvalidValue(
            f"{name} is too large",
            [
                FieldError(
                    loc=["body", name], msg=f"must be at most {MAX_COUNT}", type="less_than_equal"
                )
            ],
        )
    return value


# --- v1 ---------------------------------------------------------------------------


def product_v1(record: ProductRecord) -> v1.Product:
    return v1.Product(
        id=record.id,
        sku=record.sku,
        name=record.name,
        description=record.description,
        category=record.category,
        price=float(record.price),
        currency=record.currency,
        features=record.features,
        version=record.version,
        created_at=record.created_at,
        updated_at=record.updated_at,
    )


def new_product_v1(body: v1.ProductCreate) -> NewProduct:
    return _new_product(body, price_from_float(body.price), body.currency)


def changes_v1(body: v1.ProductUpdate) -> dict[str, Any]:
    changes: dict[str, Any] = {name: getattr(body, name) for name in body.model_fields_set}
    if "price" in changes:
        changes["price"] = price_from_float(changes["price"])
    return changes


def review(record: ReviewRecord) -> v1.Review:
    return v1.Review.model_validate(record, from_attributes=True)


def new_review(body: v1.ReviewCreate) -> NewReview:
    return NewReview(rating=body.rating, title=body.title, body=body.body, author=body.author)


def review_summary(summary: ReviewSummary) -> v1.ReviewSummary:
    return v1.ReviewSummary.model_validate(summary, from_attributes=True)


def inventory(record: InventoryRecord) -> v1.Inventory:
    return v1.Inventory.model_validate(record, from_attributes=True)


# --- v2 ---------------------------------------------------------------------------


def product_v2(record: ProductRecord) -> v2.Product:
    return v2.Product(
        id=record.id,
        sku=record.sku,
        name=record.name,
        description=record.description,
        category=record.category,
        price=v2.Money(amount=record.price, currency=record.currency),
        features=record.features,
        version=record.version,
        created_at=record.created_at,
        updated_at=record.updated_at,
    )


def new_product_v2(body: v2.ProductCreate) -> NewProduct:
    return _new_product(body, body.price.amount, body.price.currency)


def _new_product(
    body: v1.ProductCreate | v2.ProductCreate, price: Decimal, currency: str
) -> NewProduct:
    """The product to insert: the fields both versions share, and the price as stored."""
    return NewProduct(
        sku=body.sku,
        name=body.name,
        description=body.description,
        category=body.category,
        price=price,
        currency=currency,
        features=body.features,
    )


def changes_v2(body: v2.ProductUpdate) -> dict[str, Any]:
    changes: dict[str, Any] = {
        name: getattr(body, name) for name in body.model_fields_set if name != "price"
    }
    if body.price is not None:
        changes["price"] = body.price.amount
        changes["currency"] = body.price.currency
    return changes
