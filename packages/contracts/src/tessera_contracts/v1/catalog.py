"""v1 catalog resources: products (price as a float), reviews, inventory, enriched product."""

from __future__ import annotations

from typing import Literal, Self
from uuid import UUID

from pydantic import AwareDatetime, ConfigDict, Field, model_validator

from tessera_contracts._base import Contract
from tessera_contracts._patch import Patch
from tessera_contracts._types import (
    Category,
    Count,
    CurrencyCode,
    Description,
    FeatureVector,
    Price,
    ProductName,
    Rating,
    Sku,
)
from tessera_contracts.v1.inference import PredictionResponse

# Models a client writes are strict: a wrong JSON type (`"price": "9"`,
# `"rating": true`) is a 422 rather than a silent coercion. Strictness can be
# relaxed later without breaking anyone; the reverse could not be done within v1.
# Resources a service returns stay lax, so consumers are as tolerant as possible.
_STRICT = ConfigDict(strict=True)

DegradedPart = Literal["product", "reviews", "inventory", "prediction"]
"""A part of an enriched product that failed or timed out and was left out."""


class Product(Contract):
    """A product of the catalog."""

    id: UUID
    """Catalog identifier."""
    sku: Sku
    """Stock keeping unit, unique in the catalog."""
    name: ProductName
    """Display name."""
    description: Description
    """Free text; may be empty."""
    category: Category
    """Category name, e.g. `diagnostics`."""
    price: Price
    """Unit price in `currency`; v2 carries it as an exact decimal string."""
    currency: CurrencyCode
    """ISO 4217 code of `price`."""
    features: FeatureVector | None
    """Feature vector the inference service classifies, if the product has one."""
    version: int = Field(ge=1)
    """Incremented on every change; starts at 1."""
    created_at: AwareDatetime
    """When the product was created."""
    updated_at: AwareDatetime
    """When the product last changed."""


class ProductCreate(Contract):
    """Body of `POST /v1/products`."""

    model_config = _STRICT

    sku: Sku
    """Stock keeping unit, unique in the catalog (409 if taken)."""
    name: ProductName
    """Display name."""
    description: Description = ""
    """Free text."""
    category: Category
    """Category name."""
    price: Price
    """Unit price in `currency`; at most two decimals are kept (see docs/contracts.md)."""
    currency: CurrencyCode = "USD"
    """ISO 4217 code of `price`."""
    features: FeatureVector | None = None
    """Feature vector for predictions."""


class ProductUpdateBase(Patch):
    """The fields of `ProductUpdate` that every version shares; each adds its price."""

    nullable = frozenset({"features"})

    sku: Sku | None = None
    """New stock keeping unit."""
    name: ProductName | None = None
    """New display name."""
    description: Description | None = None
    """New description."""
    category: Category | None = None
    """New category."""


class ProductUpdate(ProductUpdateBase):
    """Body of `PATCH /v1/products/{id}`: only the fields present change.

    At least one field is required. `null` is accepted only for `features`,
    where it removes the feature vector.
    """

    price: Price | None = None
    """New unit price."""
    currency: CurrencyCode | None = None
    """New currency code."""
    features: FeatureVector | None = None
    """New feature vector; `null` removes it."""


class Review(Contract):
    """A customer review of a product."""

    id: UUID
    """Review identifier."""
    product_id: UUID
    """The reviewed product."""
    rating: Rating
    """1 to 5 stars."""
    title: str
    """Headline."""
    body: str
    """Review text; may be empty."""
    author: str
    """Display name of the reviewer."""
    created_at: AwareDatetime
    """When the review was posted."""


class ReviewCreate(Contract):
    """Body of `POST /v1/products/{id}/reviews`."""

    model_config = _STRICT

    rating: Rating
    """1 to 5 stars."""
    title: str = Field(min_length=1, max_length=200)
    """Headline."""
    body: str = Field(default="", max_length=5000)
    """Review text."""
    author: str = Field(min_length=1, max_length=100)
    """Display name of the reviewer."""


def _check_reserved(quantity: int, reserved: int) -> None:
    if reserved > quantity:
        raise ValueError(f"reserved ({reserved}) exceeds quantity ({quantity})")


class Inventory(Contract):
    """Stock of one product."""

    product_id: UUID
    """The product."""
    quantity: Count
    """Units on hand."""
    reserved: Count
    """Units on hand promised to orders; never more than `quantity`."""
    updated_at: AwareDatetime
    """When the stock last changed."""

    @model_validator(mode="after")
    def _reserved_within_quantity(self) -> Self:
        _check_reserved(self.quantity, self.reserved)
        return self


class InventoryUpdate(Contract):
    """Body of `PUT /v1/products/{id}/inventory`: the new absolute stock."""

    model_config = _STRICT

    quantity: Count
    """Units on hand."""
    reserved: Count = 0
    """Units promised to orders; never more than `quantity`."""

    @model_validator(mode="after")
    def _reserved_within_quantity(self) -> Self:
        _check_reserved(self.quantity, self.reserved)
        return self


class ProductPage(Contract):
    """One page of `GET /v1/products` (offset pagination)."""

    items: list[Product]
    """Products of this page, in listing order."""
    total: Count
    """Number of products matching the query, across all pages."""
    offset: Count
    """Index of the first item of this page."""
    limit: int = Field(ge=1)
    """Page size that was asked for."""


class ReviewPage(Contract):
    """One page of `GET /v1/products/{id}/reviews` (offset pagination)."""

    items: list[Review]
    """Reviews of this page, newest first."""
    total: Count
    """Number of reviews of the product, across all pages."""
    offset: Count
    """Index of the first item of this page."""
    limit: int = Field(ge=1)
    """Page size that was asked for."""


class ReviewSummary(Contract):
    """Aggregate of a product's reviews."""

    count: Count
    """Number of reviews."""
    average_rating: float | None = Field(default=None, ge=1, le=5)
    """Mean rating; null when there are no reviews."""


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
    prediction: PredictionResponse | None = None
    """Classification of the product's features; null without features or when degraded."""
    degraded: list[DegradedPart] = Field(default_factory=list)
    """Parts that failed or timed out and were left out."""
