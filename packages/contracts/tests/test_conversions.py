"""Conversions between versions, each checked as a round trip."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from tessera_contracts import conversions, v1, v2

from .conftest import FEATURES


class TestPrice:
    @pytest.mark.parametrize(
        ("price", "amount"),
        [
            (19.99, "19.99"),
            (0.1 + 0.2, "0.30"),
            (10, "10.00"),
            (0.0, "0.00"),
            (2.675, "2.68"),
            (0.125, "0.12"),
        ],
    )
    def test_float_becomes_cents(self, price: float, amount: str) -> None:
        assert conversions.price_to_money(price, "USD").amount == Decimal(amount)

    @pytest.mark.parametrize("amount", ["0.01", "19.99", "999999999999.99", "123456789.10"])
    def test_money_survives_a_trip_through_float(self, amount: str) -> None:
        money = v2.Money(amount=Decimal(amount), currency="EUR")

        assert conversions.price_to_money(conversions.money_to_price(money), "EUR") == money


class TestProduct:
    def test_v1_v2_v1(self, product: v1.Product) -> None:
        converted = conversions.product_v1_to_v2(product)

        assert converted.price == v2.Money(amount=Decimal("129.99"), currency="USD")
        assert conversions.product_v2_to_v1(converted) == product

    def test_v2_v1_v2(self, product_v2: v2.Product) -> None:
        assert conversions.product_v1_to_v2(conversions.product_v2_to_v1(product_v2)) == product_v2

    def test_create_round_trips(self) -> None:
        create = v1.ProductCreate(
            sku="A-1", name="n", category="c", price=5.5, currency="EUR", features=FEATURES
        )

        converted = conversions.product_create_v1_to_v2(create)

        assert converted.price == v2.Money(amount=Decimal("5.50"), currency="EUR")
        assert conversions.product_create_v2_to_v1(converted) == create


class TestProductUpdate:
    def test_v2_price_sets_v1_price_and_currency(self) -> None:
        update = v2.ProductUpdate(price=v2.Money(amount=Decimal("3.10"), currency="GBP"))

        converted = conversions.product_update_v2_to_v1(update)

        assert converted.model_dump() == {"price": 3.1, "currency": "GBP"}
        assert conversions.product_update_v1_to_v2(converted, current_currency="USD") == update

    def test_v1_price_alone_keeps_the_current_currency(self) -> None:
        converted = conversions.product_update_v1_to_v2(
            v1.ProductUpdate(price=2.0), current_currency="JPY"
        )

        assert converted.price == v2.Money(amount=Decimal("2.00"), currency="JPY")

    def test_absent_and_null_stay_distinct(self) -> None:
        update = v1.ProductUpdate(name="new", features=None)

        converted = conversions.product_update_v1_to_v2(update, current_currency="USD")

        assert converted.model_fields_set == {"name", "features"}
        assert conversions.product_update_v2_to_v1(converted) == update

    def test_currency_alone_has_no_v2_equivalent(self) -> None:
        with pytest.raises(ValueError, match="currency without price"):
            conversions.product_update_v1_to_v2(
                v1.ProductUpdate(currency="EUR"), current_currency="USD"
            )


class TestPredictOverOpenInference:
    def response(
        self, probabilities: list[float], version: str | None = "v1.0"
    ) -> v2.InferenceResponse:
        return v2.InferenceResponse(
            model_name="breast-cancer",
            model_version=version,
            outputs=[
                v2.ResponseOutput(name="label", shape=[1], datatype="INT64", data=[0]),
                v2.ResponseOutput(
                    name="probabilities", shape=[1, 2], datatype="FP32", data=probabilities
                ),
            ],
        )

    def test_request_is_one_fp32_row(self) -> None:
        request = v1.PredictionRequest(features=FEATURES)

        infer = conversions.prediction_request_v1_to_infer(request, request_id="r1")

        assert infer.id == "r1"
        assert [(i.name, i.shape, i.datatype, i.data) for i in infer.inputs] == [
            ("features", [1, 10], "FP32", FEATURES)
        ]

    @pytest.mark.parametrize(
        ("threshold", "prediction", "confidence"), [(0.5, 1, 0.75), (0.75, 1, 0.75), (0.8, 0, 0.25)]
    )
    def test_threshold_decides_on_class_one(
        self, threshold: float, prediction: int, confidence: float
    ) -> None:
        request = v1.PredictionRequest(features=FEATURES, confidence_threshold=threshold)
        now = datetime(2025, 1, 1, tzinfo=UTC)

        response = conversions.infer_response_to_prediction(
            request, self.response([0.25, 0.75]), processing_time_ms=1.5, timestamp=now
        )

        assert response == v1.PredictionResponse(
            prediction=prediction,
            confidence=confidence,
            model_version="v1.0",
            timestamp=now,
            processing_time_ms=1.5,
            label=v1.BREAST_CANCER_LABELS[prediction],
            probabilities={"malignant": 0.25, "benign": 0.75},
        )

    def test_nested_row_and_missing_version(self) -> None:
        request = v1.PredictionRequest(features=FEATURES, model_version="v1.3")
        infer = self.response([0.9, 0.1], version=None)
        nested = infer.model_copy(
            update={
                "outputs": [
                    v2.ResponseOutput(
                        name="probabilities", shape=[1, 2], datatype="FP32", data=[[0.9, 0.1]]
                    )
                ]
            }
        )

        response = conversions.infer_response_to_prediction(request, nested, processing_time_ms=0.1)

        assert (response.prediction, response.model_version) == (0, "v1.3")

    def test_missing_output_is_an_error(self) -> None:
        response = v2.InferenceResponse(model_name="m", outputs=[])

        with pytest.raises(ValueError, match="no output 'probabilities'"):
            conversions.infer_response_to_prediction(
                v1.PredictionRequest(features=FEATURES), response, processing_time_ms=0
            )

    def test_wrong_number_of_probabilities_is_an_error(self) -> None:
        with pytest.raises(ValueError, match="not one row of 2 probabilities"):
            conversions.infer_response_to_prediction(
                v1.PredictionRequest(features=FEATURES),
                v2.InferenceResponse(
                    model_name="m",
                    outputs=[
                        v2.ResponseOutput(
                            name="probabilities", shape=[3], datatype="FP32", data=[0.2, 0.3, 0.5]
                        )
                    ],
                ),
                processing_time_ms=0,
            )

    def test_more_than_two_classes_take_the_most_probable(self) -> None:
        assert conversions.classify([0.2, 0.3, 0.5], confidence_threshold=0.9) == (2, 0.5)


class TestEnriched:
    def test_prediction_with_probabilities_converts(
        self, prediction: v1.PredictionResponse
    ) -> None:
        converted = conversions.prediction_v1_to_v2(prediction)

        assert converted == v2.Prediction(
            label="malignant",
            prediction=0,
            confidence=0.9873,
            probabilities={"malignant": 0.9873, "benign": 0.0127},
            model_version="v1.0",
        )

    def test_enriched_converts_every_part(
        self,
        product: v1.Product,
        review: v1.Review,
        inventory: v1.Inventory,
        prediction: v1.PredictionResponse,
    ) -> None:
        enriched = v1.EnrichedProduct(
            product=product,
            reviews=[review],
            review_summary=v1.ReviewSummary(count=1, average_rating=4),
            inventory=inventory,
            prediction=prediction,
        )

        converted = conversions.enriched_v1_to_v2(enriched)

        assert conversions.product_v2_to_v1(converted.product) == product
        assert (converted.reviews, converted.inventory, converted.degraded) == (
            [review],
            inventory,
            [],
        )
        assert converted.prediction == conversions.prediction_v1_to_v2(prediction)

    def test_seed_prediction_without_probabilities_is_degraded(
        self, product: v1.Product, prediction: v1.PredictionResponse
    ) -> None:
        seed = prediction.model_copy(update={"label": None, "probabilities": None})
        enriched = v1.EnrichedProduct(product=product, prediction=seed, degraded=["reviews"])

        converted = conversions.enriched_v1_to_v2(enriched)

        assert converted.prediction is None
        assert converted.degraded == ["reviews", "prediction"]
