"""v2 catalog resources: exact prices (`Money`), keyset pages, predictions with probabilities.

Only what changed from v1 is defined here; `tessera_contracts.v2` re-exports
the unchanged v1 names (reviews, inventory).
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Annotated, Any, Final
from uuid import UUID

from pydantic import (
    AwareDatetime,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    WithJsonSchema,
)

from tessera_contracts._base import Contract
from tessera_contracts._types import (
    Category,
    CurrencyCode,
    Description,
    FeatureVector,
    ProductName,
    Sku,
)
from tessera_contracts.v1.catalog import (
    DegradedPart,
    Inventory,
    ProductUpdateBase,
    Review,
    ReviewSummary,
)

_STRICT = ConfigDict(strict=True)

AMOUNT_PATTERN: Final = r"^(0|[1-9][0-9]{0,11})(\.[0-9]{1,2})?$"
"""A non-negative decimal with at most 12 integer digits and 2 decimals, e.g. `19.99`."""
_AMOUNT_RE: Final = re.compile(AMOUNT_PATTERN)


def _parse_amount(value: Any) -> Any:
    # Only a string (or a Decimal built in Python) is an amount: a JSON number
    # has already been through binary floating point, which money must avoid.
    if isinstance(value, Decimal):
        return value
    if isinstance(value, str):
        if not _AMOUNT_RE.fullmatch(value):
            raise ValueError(f"amount must be a decimal string matching {AMOUNT_PATTERN}")
        return Decimal(value)
    raise ValueError('amount must be a decimal string such as "19.99", not a JSON number')


Amount = Annotated[
    Decimal,
    # Constraints first: Pydantic < 2.10 cannot apply them on top of a validator.
    Field(ge=0, max_digits=14, decimal_places=2, allow_inf_nan=False),
    BeforeValidator(_parse_amount),
    # Fixed-point text, never exponent notation ("1E+1"), so clients can parse it.
    PlainSerializer(lambda amount: f"{amount:f}", return_type=str, when_used="json"),
    WithJsonSchema({"type": "string", "pattern": AMOUNT_PATTERN, "examples": ["19.99"]}),
]
"""An exact, non-negative money amount; a JSON string with at most two decimals."""


class Money(Contract):
    """An exact amount of money in one currency."""

    amount: Amount
    """Decimal string, e.g. `"19.99"`; never a JSON number."""
    currency: CurrencyCode
    """ISO 4217 code, e.g. `USD`."""


class Product(Contract):
    """A product of the catalog, priced exactly."""

    id: UUID
    """Catalog identifier."""
    sku: Sku
    """Stock keeping unit, unique in the catalog."""
    name: ProductName
    """Display name."""
    description: Description
    """Free text; may be empty."""
    category: Category
    """Category name."""
    price: Money
    """Unit price."""
    features: FeatureVector | None
    """Feature vector the inference service classifies, if the product has one."""
    version: int = Field(ge=1)
    """Incremented on every change; starts at 1."""
    created_at: AwareDatetime
    """When the product was created."""
    updated_at: AwareDatetime
    """When the product last changed."""


class ProductCreate(Contract):
    """Body of `POST /v2/products`."""

    model_config = _STRICT

    sku: Sku
    """Stock keeping unit, unique in the catalog (409 if taken)."""
    name: ProductName
    """Display name."""
    description: Description = ""
    """Free text."""
    category: Category
    """Category name."""
    price: Money
    """Unit price."""
    features: FeatureVector | None = None
    """Feature vector for predictions."""


class ProductUpdate(ProductUpdateBase):
    """Body of `PATCH /v2/products/{id}`: only the fields present change.

    At least one field is required. `null` is accepted only for `features`,
    where it removes the feature vector.
    """

    price: Money | None = None
    """New unit price (amount and currency together)."""
    features: FeatureVector | None = None
    """New feature vector; `null` removes it."""


class ProductPage(Contract):
    """One page of `GET /v2/products` (keyset pagination)."""

    items: list[Product]
    """Products of this page, in listing order."""
    next_cursor: str | None = None
    """Opaque; pass as `cursor` to get the next page. Null on the last page."""
    limit: int = Field(ge=1)
    """Page size that was asked for."""


class Prediction(Contract):
    """Classification of a product's features, with every class probability."""

    label: str
    """Name of the predicted class, e.g. `benign`."""
    prediction: int = Field(ge=0)
    """Index of the predicted class; 1 = benign, 0 = malignant."""
    confidence: float = Field(ge=0, le=1)
    """Probability of the predicted class."""
    probabilities: dict[str, float]
    """Probability of every class by name."""
    model_version: str
    """Version of the model that answered."""


class EnrichedProduct(Contract):
    """A product with everything known about it, gathered concurrently.

    A part that failed or timed out is left empty (null or `[]`) and named in
    `degraded`; the rest still answers.
    """

    product: Product
    """The product itself."""
    reviews: list[Review] = Field(default_factory=list)
    """Most recent reviews; empty when there are none or `reviews` is degraded."""
    review_summary: ReviewSummary | None = None
    """Aggregate of all reviews; null when `reviews` is degraded."""
    inventory: Inventory | None = None
    """Stock; null when unknown or `inventory` is degraded."""
    prediction: Prediction | None = None
    """Classification of the product's features; null without features or when degraded."""
    degraded: list[DegradedPart] = Field(default_factory=list)
    """Parts that failed or timed out and were left out."""
