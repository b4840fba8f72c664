"""`POST /v1/predict`: the seed contract, with batching on and off."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from tessera_contracts import v1
from tessera_inference.settings import Settings

PROBLEM = "application/problem+json"


async def probabilities(client: httpx.AsyncClient, features: list[float], version: str) -> float:
    """P(benign) of `features`, through the v2 API."""
    response = await client.post(
        f"/v2/models/breast-cancer/versions/{version}/infer",
        json={
            "inputs": [{"name": "features", "shape": [1, 10], "datatype": "FP32", "data": features}]
        },
    )
    benign: float = response.json()["outputs"][0]["data"][1]
    return benign


class TestPredict:
    async def test_a_benign_sample_is_class_1(
        self, client: httpx.AsyncClient, benign: list[float]
    ) -> None:
        response = await client.post("/v1/predict", json={"features": benign})

        assert response.status_code == 200
        body = v1.PredictionResponse.model_validate_json(response.content)
        assert (body.prediction, body.label, body.model_version) == (1, "benign", "v1.0")
        assert body.probabilities is not None
        assert body.confidence == body.probabilities["benign"] > 0.5
        assert sum(body.probabilities.values()) == pytest.approx(1.0, abs=1e-5)
        assert body.processing_time_ms > 0
        assert abs(body.timestamp - datetime.now(UTC)) < timedelta(seconds=5)

    async def test_a_malignant_sample_is_class_0(
        self, client: httpx.AsyncClient, malignant: list[float]
    ) -> None:
        response = await client.post("/v1/predict", json={"features": malignant})

        body = v1.PredictionResponse.model_validate_json(response.content)
        assert (body.prediction, body.label) == (0, "malignant")
        assert body.probabilities is not None
        assert body.confidence == body.probabilities["malignant"] > 0.5

    async def test_model_version_picks_the_model(
        self, client: httpx.AsyncClient, benign: list[float]
    ) -> None:
        old = await client.post("/v1/predict", json={"features": benign, "model_version": "v1.0"})
        new = await client.post("/v1/predict", json={"features": benign, "model_version": "v2.0"})

        assert old.json()["model_version"] == "v1.0"
        assert new.json()["model_version"] == "v2.0"
        assert old.json()["probabilities"] != new.json()["probabilities"]
        assert new.json()["probabilities"]["benign"] == pytest.approx(
            await probabilities(client, benign, "2.0")
        )

    async def test_the_threshold_decides_on_the_probability_of_benign(
        self, client: httpx.AsyncClient, benign: list[float]
    ) -> None:
        p = await probabilities(client, benign, "1.0")

        above = await client.post(
            "/v1/predict", json={"features": benign, "confidence_threshold": min(1.0, p + 0.001)}
        )
        below = await client.post(
            "/v1/predict", json={"features": benign, "confidence_threshold": max(0.0, p - 0.001)}
        )

        assert (above.json()["prediction"], above.json()["label"]) == (0, "malignant")
        assert above.json()["confidence"] == pytest.approx(1 - p, abs=1e-6)
        assert (below.json()["prediction"], below.json()["label"]) == (1, "benign")
        assert below.json()["confidence"] == pytest.approx(p, abs=1e-6)

    async def test_threshold_0_always_says_benign(
        self, client: httpx.AsyncClient, malignant: list[float]
    ) -> None:
        response = await client.post(
            "/v1/predict", json={"features": malignant, "confidence_threshold": 0}
        )

        assert response.json()["prediction"] == 1
        assert response.json()["confidence"] < 0.5  # the probability of the returned label

    async def test_concurrent_callers_each_get_their_own_answer(
        self, client: httpx.AsyncClient, benign: list[float], malignant: list[float]
    ) -> None:
        samples = [benign if i % 2 else malignant for i in range(40)]
        samples[7] = [*benign[:9], -1.0]  # one bad row among them

        responses = await asyncio.gather(
            *(client.post("/v1/predict", json={"features": s}) for s in samples)
        )

        assert responses[7].status_code == 422
        for i, response in enumerate(responses):
            if i != 7:
                assert response.status_code == 200
                assert response.json()["prediction"] == i % 2


class TestErrors:
    async def test_unknown_model_version_is_404(
        self, client: httpx.AsyncClient, benign: list[float]
    ) -> None:
        response = await client.post(
            "/v1/predict", json={"features": benign, "model_version": "v9.0"}
        )

        assert response.status_code == 404
        assert response.headers["content-type"] == PROBLEM
        assert response.json()["title"] == "ModelVersionNotFound"
        assert "v9.0" in response.json()["detail"]

    @pytest.mark.parametrize(
        ("body", "loc"),
        [
            ({"features": [1.0] * 9}, ["body", "features"]),
            ({"features": [1.0] * 11}, ["body", "features"]),
            ({"features": [1.0] * 9 + [-0.1]}, ["body", "features", 9]),
            ({"features": [1.0] * 9 + ["big"]}, ["body", "features", 9]),
            (
                {"features": [1.0] * 10, "confidence_threshold": 1.5},
                ["body", "confidence_threshold"],
            ),
            ({}, ["body", "features"]),
        ],
    )
    async def test_invalid_request_is_422_naming_the_field(
        self, client: httpx.AsyncClient, body: dict[str, object], loc: list[object]
    ) -> None:
        response = await client.post("/v1/predict", json=body)

        assert response.status_code == 422
        assert response.headers["content-type"] == PROBLEM
        assert loc in [e["loc"] for e in response.json()["errors"]]

    @pytest.mark.parametrize("value", [b"NaN", b"Infinity"])
    async def test_non_finite_features_are_422(
        self, client: httpx.AsyncClient, value: bytes
    ) -> None:
        body = b'{"features": [1, 1, 1, 1, 1, 1, 1, 1, 1, ' + value + b"]}"

        response = await client.post(
            "/v1/predict", content=body, headers={"content-type": "application/json"}
        )

        assert response.status_code == 422

    async def test_a_feature_too_large_for_the_model_is_422(
        self, client: httpx.AsyncClient
    ) -> None:
        # Finite as a float64 (the contract passes it), infinite as the model's float32.
        response = await client.post("/v1/predict", json={"features": [1.0] * 9 + [1e39]})

        assert response.status_code == 422
        assert response.json()["title"] == "InvalidInput"
        assert "column 9" in response.json()["detail"]

    async def test_a_body_that_is_not_json_is_422(self, client: httpx.AsyncClient) -> None:
        response = await client.post(
            "/v1/predict", content=b"{features", headers={"content-type": "application/json"}
        )

        assert response.status_code == 422
        assert response.headers["content-type"] == PROBLEM

    async def test_a_body_that_is_not_utf8_is_422_on_the_body(
        self, serve_http: Any, settings: Settings
    ) -> None:
        async with serve_http(settings) as client:
            response = await client.post(
                "/v1/predict", content=b"\xff", headers={"content-type": "application/json"}
            )

        assert response.status_code == 422
        assert response.headers["content-type"] == PROBLEM
        assert response.json()["errors"] == [
            {
                "loc": ["body"],
                "msg": "Invalid JSON: not UTF-8 text (invalid start byte at byte 0)",
                "type": "json_invalid",
            }
        ]
