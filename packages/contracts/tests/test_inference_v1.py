"""The seed contract: `PredictionRequest` validation and `PredictionResponse` fields."""

from __future__ import annotations

import pytest
from pydantic import ValidationError
from tessera_contracts import v1

from .conftest import FEATURES


def errors_of(payload: dict[str, object]) -> list[tuple[tuple[str | int, ...], str]]:
    with pytest.raises(ValidationError) as caught:
        v1.PredictionRequest.model_validate(payload)
    return [(tuple(e["loc"]), e["type"]) for e in caught.value.errors()]


class TestPredictionRequest:
    def test_defaults_match_the_seed(self) -> None:
        request = v1.PredictionRequest(features=FEATURES)

        assert request.model_version == "v1.0"
        assert request.confidence_threshold == 0.5

    @pytest.mark.parametrize("count", [0, 9, 11])
    def test_needs_exactly_ten_features(self, count: int) -> None:
        errors = errors_of({"features": [1.0] * count})

        assert errors == [(("features",), "too_short" if count < 10 else "too_long")]

    def test_negative_feature_is_rejected_at_its_index(self) -> None:
        errors = errors_of({"features": [*FEATURES[:3], -0.1, *FEATURES[4:]]})

        assert errors == [(("features", 3), "greater_than_equal")]

    @pytest.mark.parametrize("raw", ["NaN", "Infinity"])
    def test_non_finite_feature_is_rejected(self, raw: str) -> None:
        body = f'{{"features": [{raw}, 1, 1, 1, 1, 1, 1, 1, 1, 1]}}'

        with pytest.raises(ValidationError) as caught:
            v1.PredictionRequest.model_validate_json(body)

        assert [e["loc"] for e in caught.value.errors()] == [("features", 0)]

    def test_zero_features_are_allowed(self) -> None:
        assert v1.PredictionRequest(features=[0.0] * 10).features == [0.0] * 10

    @pytest.mark.parametrize(
        ("threshold", "kind"), [(-0.01, "greater_than_equal"), (1.01, "less_than_equal")]
    )
    def test_threshold_outside_unit_interval_is_rejected(self, threshold: float, kind: str) -> None:
        errors = errors_of({"features": FEATURES, "confidence_threshold": threshold})

        assert errors == [(("confidence_threshold",), kind)]

    @pytest.mark.parametrize("threshold", [0, 1])
    def test_threshold_bounds_are_inclusive(self, threshold: float) -> None:
        request = v1.PredictionRequest(features=FEATURES, confidence_threshold=threshold)

        assert request.confidence_threshold == threshold

    def test_text_instead_of_list_is_rejected(self) -> None:
        assert errors_of({"features": "1,2,3"}) == [(("features",), "list_type")]

    def test_requests_are_immutable(self) -> None:
        request = v1.PredictionRequest(features=FEATURES)

        with pytest.raises(ValidationError):
            request.model_version = "v2"  # type: ignore[misc]


def test_response_optional_fields_default_to_absent() -> None:
    response = v1.PredictionResponse.model_validate(
        {
            "prediction": 1,
            "confidence": 0.8,
            "model_version": "v1.0",
            "timestamp": "2025-01-01T00:00:00Z",
            "processing_time_ms": 1.0,
        }
    )

    assert (response.label, response.probabilities) == (None, None)


def test_field_docstrings_reach_the_json_schema() -> None:
    properties = v1.PredictionRequest.model_json_schema()["properties"]

    assert "benign" in properties["confidence_threshold"]["description"]
