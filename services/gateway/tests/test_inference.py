"""Inference operations through the gateway, answered by the real inference app."""

from __future__ import annotations

import httpx
import pytest
from tessera_contracts import v1, v2
from tessera_stack.testing import MALIGNANT

from .conftest import Keys

MODEL = "breast-cancer"


def rows(count: int) -> v2.InferenceRequest:
    return v2.InferenceRequest(
        id="req-1",
        inputs=[
            v2.RequestInput(
                name="input-0", shape=[count, 10], datatype="FP32", data=MALIGNANT * count
            )
        ],
    )


class TestPredictV1:
    async def test_predicts(self, gateway: httpx.AsyncClient, keys: Keys) -> None:
        response = await gateway.post(
            "/v1/predict", json={"features": MALIGNANT}, headers=keys.bearer(keys.predictor)
        )

        assert response.status_code == 200
        prediction = v1.PredictionResponse.model_validate_json(response.content)
        assert prediction.prediction == 0  # a malignant sample
        assert prediction.model_version == "v1.0"

    async def test_invalid_features_is_422_with_detail(
        self, gateway: httpx.AsyncClient, keys: Keys
    ) -> None:
        response = await gateway.post(
            "/v1/predict", json={"features": [1.0, 2.0]}, headers=keys.bearer(keys.predictor)
        )

        assert response.status_code == 422
        assert response.json()["errors"][0]["loc"][:2] == ["body", "features"]

    async def test_needs_the_predict_scope(self, gateway: httpx.AsyncClient, keys: Keys) -> None:
        response = await gateway.post(
            "/v1/predict", json={"features": MALIGNANT}, headers=keys.bearer(keys.reader)
        )

        assert response.status_code == 403


class TestOpenInferenceProtocol:
    async def test_metadata_is_open_to_anonymous_reads_and_inference_is_not(
        self, gateway: httpx.AsyncClient
    ) -> None:
        # The v2 GETs are declared `anonymous`: metadata and readiness, like catalog reads.
        metadata = await gateway.get(f"/v2/models/{MODEL}")
        ready = await gateway.get("/v2/health/ready")
        infer = await gateway.post(
            f"/v2/models/{MODEL}/infer", content=rows(1).model_dump_json(exclude_none=True)
        )

        assert metadata.status_code == 200
        assert v2.ModelMetadataResponse.model_validate_json(metadata.content).name == MODEL
        assert ready.status_code == 200
        assert infer.status_code == 401

    async def test_infer_a_batch(self, gateway: httpx.AsyncClient, keys: Keys) -> None:
        response = await gateway.post(
            f"/v2/models/{MODEL}/infer",
            content=rows(3).model_dump_json(exclude_none=True),
            headers=keys.bearer(keys.predictor) | {"Content-Type": "application/json"},
        )

        assert response.status_code == 200, response.text
        result = v2.InferenceResponse.model_validate_json(response.content)
        assert result.id == "req-1"
        assert result.outputs[0].shape == [3, 2]

    async def test_infer_a_version(self, gateway: httpx.AsyncClient, keys: Keys) -> None:
        metadata = await gateway.get(f"/v2/models/{MODEL}", headers=keys.bearer(keys.predictor))
        versions = v2.ModelMetadataResponse.model_validate_json(metadata.content).versions
        assert versions
        version = versions[0]

        response = await gateway.post(
            f"/v2/models/{MODEL}/versions/{version}/infer",
            content=rows(1).model_dump_json(exclude_none=True),
            headers=keys.bearer(keys.predictor) | {"Content-Type": "application/json"},
        )

        assert response.status_code == 200
        assert v2.InferenceResponse.model_validate_json(response.content).model_version == version

    @pytest.mark.parametrize(
        ("path", "model"),
        [
            ("/v2", v2.ServerMetadataResponse),
            ("/v2/health/live", v2.ServerLiveResponse),
            ("/v2/health/ready", v2.ServerReadyResponse),
            (f"/v2/models/{MODEL}", v2.ModelMetadataResponse),
            (f"/v2/models/{MODEL}/versions/2", v2.ModelMetadataResponse),
            (f"/v2/models/{MODEL}/ready", v2.ModelReadyResponse),
            (f"/v2/models/{MODEL}/versions/1/ready", v2.ModelReadyResponse),
        ],
    )
    async def test_metadata_and_health(
        self,
        gateway: httpx.AsyncClient,
        keys: Keys,
        path: str,
        model: type[v2.ServerMetadataResponse],
    ) -> None:
        response = await gateway.get(path, headers=keys.bearer(keys.predictor))

        assert response.status_code == 200, response.text
        model.model_validate_json(response.content)

    async def test_unknown_model_keeps_the_protocols_error(
        self, gateway: httpx.AsyncClient, keys: Keys
    ) -> None:
        response = await gateway.get("/v2/models/nope", headers=keys.bearer(keys.predictor))

        assert response.status_code == 404
        assert v2.InferenceErrorResponse.model_validate_json(response.content).error

    async def test_bad_tensor_is_400(self, gateway: httpx.AsyncClient, keys: Keys) -> None:
        body = rows(1).model_dump(exclude_none=True)
        body["inputs"][0]["shape"] = [1, 3]

        response = await gateway.post(
            f"/v2/models/{MODEL}/infer", json=body, headers=keys.bearer(keys.predictor)
        )

        assert response.status_code == 400
        assert "error" in response.json()
