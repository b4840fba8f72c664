"""Validation rules of the catalog contracts, v1 and v2."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError
from tessera_contracts import v1, v2

from .conftest import CREATED, FEATURES, PRODUCT_ID

CREATE = {"sku": "TSR-0001", "name": "Panel", "category": "diagnostics", "price": 10.5}


def error_types(model: type[BaseModel], payload: Any) -> list[tuple[tuple[str | int, ...], str]]:
    with pytest.raises(ValidationError) as caught:
        model.model_validate(payload)
    return [(tuple(e["loc"]), e["type"]) for e in caught.value.errors()]


class TestProductCreate:
    def test_defaults(self) -> None:
        create = v1.ProductCreate.model_validate(CREATE)

        assert (create.description, create.currency, create.features) == ("", "USD", None)

    @pytest.mark.parametrize("sku", ["", "-TSR", "tsr-1", "TSR_1", "T" * 65])
    def test_bad_sku_is_rejected(self, sku: str) -> None:
        errors = error_types(v1.ProductCreate, {**CREATE, "sku": sku})

        assert [loc for loc, _ in errors] == [("sku",)]

    @pytest.mark.parametrize("sku", ["A", "0", "TSR-0001-B", "X" * 64])
    def test_good_sku_is_accepted(self, sku: str) -> None:
        assert v1.ProductCreate.model_validate({**CREATE, "sku": sku}).sku == sku

    @pytest.mark.parametrize(
        ("field", "value"),
        [
            ("name", ""),
            ("name", "n" * 201),
            ("description", "d" * 5001),
            ("category", ""),
            ("category", "c" * 65),
            ("price", -0.01),
            ("price", float("inf")),
            ("price", 1e12),
            ("currency", "usd"),
            ("currency", "EURO"),
            ("features", [1.0] * 9),
        ],
    )
    def test_out_of_range_field_is_rejected(self, field: str, value: Any) -> None:
        errors = error_types(v1.ProductCreate, {**CREATE, field: value})

        assert errors[0][0][0] == field

    @pytest.mark.parametrize(("field", "value"), [("price", "10.5"), ("price", True), ("name", 7)])
    def test_wrong_json_type_is_rejected_not_coerced(self, field: str, value: Any) -> None:
        body = json.dumps({**CREATE, field: value})

        with pytest.raises(ValidationError) as caught:
            v1.ProductCreate.model_validate_json(body)

        assert [e["loc"] for e in caught.value.errors()] == [(field,)]

    def test_integer_price_is_a_number(self) -> None:
        assert (
            v1.ProductCreate.model_validate_json(
                '{"sku": "A", "name": "n", "category": "c", "price": 12}'
            ).price
            == 12.0
        )

    def test_missing_required_fields_are_each_reported(self) -> None:
        errors = error_types(v1.ProductCreate, {})

        assert sorted(loc[0] for loc, kind in errors if kind == "missing") == [
            "category",
            "name",
            "price",
            "sku",
        ]


class TestProductUpdate:
    @pytest.mark.parametrize("model", [v1.ProductUpdate, v2.ProductUpdate])
    @pytest.mark.parametrize("payload", [{}, {"unknown": 1}])
    def test_empty_patch_is_rejected(self, model: type[BaseModel], payload: dict[str, Any]) -> None:
        with pytest.raises(ValidationError, match="at least one field is required"):
            model.model_validate(payload)

    @pytest.mark.parametrize("model", [v1.ProductUpdate, v2.ProductUpdate])
    def test_null_for_required_column_is_rejected(self, model: type[BaseModel]) -> None:
        with pytest.raises(ValidationError, match="may not be null: name, sku"):
            model.model_validate({"sku": None, "name": None})

    def test_null_features_clears_them(self) -> None:
        update = v1.ProductUpdate.model_validate({"features": None})

        assert update.model_fields_set == {"features"}
        assert update.features is None

    def test_serializes_only_fields_present(self) -> None:
        update = v1.ProductUpdate.model_validate({"price": 3.5, "features": None})

        assert update.model_dump() == {"price": 3.5, "features": None}
        assert v1.ProductUpdate.model_validate_json(update.model_dump_json()) == update

    def test_constraints_still_apply(self) -> None:
        assert error_types(v1.ProductUpdate, {"currency": "usd"})[0][0] == ("currency",)

    def test_schema_lists_the_fields_in_both_modes(self) -> None:
        serialization = v1.ProductUpdate.model_json_schema(mode="serialization")

        assert serialization == v1.ProductUpdate.model_json_schema(mode="validation")
        assert "price" in serialization["properties"]


class TestInventory:
    def test_reserved_may_equal_quantity(self) -> None:
        assert v1.InventoryUpdate(quantity=3, reserved=3).reserved == 3

    @pytest.mark.parametrize("model", [v1.Inventory, v1.InventoryUpdate])
    def test_reserved_above_quantity_is_rejected(self, model: type[BaseModel]) -> None:
        payload = {
            "product_id": str(PRODUCT_ID),
            "updated_at": CREATED.isoformat(),
            "quantity": 2,
            "reserved": 3,
        }

        with pytest.raises(ValidationError, match=r"reserved \(3\) exceeds quantity \(2\)"):
            model.model_validate(payload)

    def test_negative_quantity_is_rejected(self) -> None:
        assert error_types(v1.InventoryUpdate, {"quantity": -1}) == [
            (("quantity",), "greater_than_equal")
        ]

    def test_quantity_as_text_is_rejected(self) -> None:
        assert error_types(v1.InventoryUpdate, {"quantity": "5"}) == [(("quantity",), "int_type")]


class TestReviewCreate:
    @pytest.mark.parametrize("rating", [0, 6])
    def test_rating_outside_one_to_five_is_rejected(self, rating: int) -> None:
        errors = error_types(v1.ReviewCreate, {"rating": rating, "title": "t", "author": "a"})

        assert [loc for loc, _ in errors] == [("rating",)]

    @pytest.mark.parametrize("rating", [True, 4.0, "4"])
    def test_rating_must_be_an_integer(self, rating: Any) -> None:
        errors = error_types(v1.ReviewCreate, {"rating": rating, "title": "t", "author": "a"})

        assert [loc for loc, _ in errors] == [("rating",)]

    def test_body_defaults_to_empty(self) -> None:
        assert v1.ReviewCreate(rating=5, title="t", author="a").body == ""


class TestMoney:
    @pytest.mark.parametrize("amount", ["0", "19.99", "19.9", "999999999999.99"])
    def test_decimal_strings_are_accepted_exactly(self, amount: str) -> None:
        money = v2.Money.model_validate({"amount": amount, "currency": "USD"})

        assert money.amount == Decimal(amount)
        assert money.model_dump(mode="json")["amount"] == amount

    @pytest.mark.parametrize(
        "amount", ["-1", "1.999", "1e3", "01.5", " 1", "NaN", "", "1000000000000"]
    )
    def test_malformed_amounts_are_rejected(self, amount: str) -> None:
        with pytest.raises(ValidationError):
            v2.Money.model_validate({"amount": amount, "currency": "USD"})

    @pytest.mark.parametrize("amount", [19.99, 20])
    def test_json_numbers_are_rejected(self, amount: float) -> None:
        with pytest.raises(ValidationError, match="not a JSON number"):
            v2.Money.model_validate_json(f'{{"amount": {amount}, "currency": "USD"}}')

    def test_serialized_without_exponent(self) -> None:
        money = v2.Money(amount=Decimal("1E+1"), currency="EUR")

        assert money.model_dump_json() == '{"amount":"10","currency":"EUR"}'

    def test_decimal_with_too_many_places_is_rejected(self) -> None:
        with pytest.raises(ValidationError):
            v2.Money(amount=Decimal("1.005"), currency="EUR")

    def test_python_mode_keeps_the_decimal(self) -> None:
        assert v2.Money(amount=Decimal("2.50"), currency="EUR").model_dump()["amount"] == Decimal(
            "2.50"
        )


class TestV2:
    def test_unchanged_models_are_the_v1_classes(self) -> None:
        assert v2.Review is v1.Review
        assert v2.Inventory is v1.Inventory
        assert v2.Product.__module__ != v1.Product.__module__

    def test_enriched_product_defaults_to_nothing_degraded(self, product_v2: v2.Product) -> None:
        enriched = v2.EnrichedProduct(product=product_v2)

        assert (enriched.reviews, enriched.prediction, enriched.degraded) == ([], None, [])

    def test_unknown_degraded_part_is_rejected(self, product_v2: v2.Product) -> None:
        with pytest.raises(ValidationError):
            v2.EnrichedProduct.model_validate(
                {"product": product_v2.model_dump(), "degraded": ["shipping"]}
            )

    def test_page_cursor_is_optional(self) -> None:
        assert v2.ProductPage(items=[], limit=10).next_cursor is None


def test_naive_timestamps_are_rejected_for_catalog_resources() -> None:
    with pytest.raises(ValidationError, match="timezone"):
        v1.Inventory.model_validate(
            {
                "product_id": str(PRODUCT_ID),
                "quantity": 1,
                "reserved": 0,
                "updated_at": "2025-01-01T00:00:00",
            }
        )


def test_product_features_follow_the_prediction_rules(product: v1.Product) -> None:
    with pytest.raises(ValidationError):
        v1.Product.model_validate({**product.model_dump(), "features": [*FEATURES[:9], -1.0]})
