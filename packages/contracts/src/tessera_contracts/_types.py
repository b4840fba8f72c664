"""Constrained field types shared by several contracts."""

from __future__ import annotations

from typing import Annotated, Final

from pydantic import Field

FEATURE_COUNT: Final = 10
"""Length of a feature vector: the ten "mean" measurements of the breast-cancer data set."""

Feature = Annotated[float, Field(ge=0, allow_inf_nan=False)]
"""One measurement: finite and non-negative."""

FeatureVector = Annotated[list[Feature], Field(min_length=FEATURE_COUNT, max_length=FEATURE_COUNT)]
"""Exactly `FEATURE_COUNT` finite, non-negative measurements."""

CurrencyCode = Annotated[str, Field(pattern=r"^[A-Z]{3}$", examples=["USD", "EUR"])]
"""ISO 4217 alphabetic currency code: three upper-case letters."""

Sku = Annotated[
    str, Field(min_length=1, max_length=64, pattern=r"^[A-Z0-9][A-Z0-9-]*$", examples=["TSR-0001"])
]
"""Stock keeping unit: upper-case letters, digits and dashes, not starting with a dash."""

ProductName = Annotated[str, Field(min_length=1, max_length=200)]
Description = Annotated[str, Field(max_length=5000)]
Category = Annotated[str, Field(min_length=1, max_length=64)]
MAX_PRICE: Final = 999_999_999_999.99
"""Largest price: what a v2 amount (12 integer digits, 2 decimals) can hold."""
Price = Annotated[float, Field(ge=0, le=MAX_PRICE, allow_inf_nan=False)]
"""A v1 price: finite, non-negative, and within what v2 can express exactly."""
Rating = Annotated[int, Field(ge=1, le=5)]
"""Review rating: 1 (worst) to 5 (best) stars."""
Count = Annotated[int, Field(ge=0)]
