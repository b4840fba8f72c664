"""The Open Inference Protocol (KServe v2) REST API."""

from __future__ import annotations

import json
from typing import Any

import httpx
import numpy as np
import pytest
from tessera_contracts import v2
from tessera_inference.settings import Settings

INFER = "/v2/models/breast-cancer/infer"


def tensor(
    data: list[Any], shape: list[int], datatype: str = "FP32", **extra: Any
) -> dict[str, Any]:
    return {
        "inputs": [{"name": "input-0", "shape": shape, "datatype": datatype, "data": data, **extra}]
    }


def assert_oip_error(response: httpx.Response, status: int, *fragments: str) -> None:
    assert response.status_code == status
    assert response.headers["content-type"] == "application/json"
    error = v2.InferenceErrorResponse.model_validate_json(response.content).error
    for fragment in fragments:
        assert fragment in error


class TestServer:
    async def test_metadata(self, client: httpx.AsyncClient) -> None:
        response = await client.get("/v2")

        assert response.status_code == 200
        body = v2.ServerMetadataResponse.model_validate_json(response.content)
        assert body.name == "tessera-inference"
        assert body.version

    async def test_live_and_ready(self, client: httpx.AsyncClient) -> None:
        live = await client.get("/v2/health/live")
        ready = await client.get("/v2/health/ready")

        assert (live.status_code, live.json()) == (200, {"live": True})
        assert (ready.status_code, ready.json()) == (200, {"ready": True})


class TestModelMetadata:
    async def test_describes_inputs_outputs_and_versions(self, client: httpx.AsyncClient) -> None:
        response = await client.get("/v2/models/breast-cancer")

        assert response.status_code == 200
        assert response.json() == {
            "name": "breast-cancer",
            "versions": ["1.0", "2.0"],
            "platform": "onnxruntime_onnx",
            "inputs": [{"name": "features", "datatype": "FP32", "shape": [-1, 10]}],
            "outputs": [{"name": "probabilities", "datatype": "FP32", "shape": [-1, 2]}],
        }

    @pytest.mark.parametrize("version", ["1.0", "1", "v1.0", "2.0", "2"])
    async def test_a_version_by_any_spelling(self, client: httpx.AsyncClient, version: str) -> None:
        response = await client.get(f"/v2/models/breast-cancer/versions/{version}")

        assert response.status_code == 200
        assert response.json()["name"] == "breast-cancer"

    async def test_ready(self, client: httpx.AsyncClient) -> None:
        model = await client.get("/v2/models/breast-cancer/ready")
        version = await client.get("/v2/models/breast-cancer/versions/1/ready")

        assert model.json() == {"name": "breast-cancer", "ready": True}
        assert version.json() == {"name": "breast-cancer", "ready": True}

    @pytest.mark.parametrize(
        "path",
        [
            "/v2/models/iris",
            "/v2/models/iris/ready",
            "/v2/models/iris/versions/1",
            "/v2/models/breast-cancer/versions/7",
            "/v2/models/breast-cancer/versions/7/ready",
        ],
    )
    async def test_unknown_model_or_version_is_404(
        self, client: httpx.AsyncClient, path: str
    ) -> None:
        assert_oip_error(
            await client.get(path), 404, "not found" if "iris" in path else "no version"
        )


class TestInfer:
    async def test_a_batch_of_rows_gets_a_probability_row_each(
        self, client: httpx.AsyncClient, benign: list[float], malignant: list[float]
    ) -> None:
        response = await client.post(
            INFER, json={"id": "req-1", **tensor(benign + malignant, [2, 10])}
        )

        assert response.status_code == 200
        body = response.json()
        assert (body["model_name"], body["model_version"], body["id"]) == (
            "breast-cancer",
            "2.0",
            "req-1",
        )
        assert "parameters" not in body  # null maps trip some OIP clients
        (output,) = body["outputs"]
        assert (output["name"], output["shape"], output["datatype"]) == (
            "probabilities",
            [2, 2],
            "FP32",
        )
        rows = np.array(output["data"]).reshape(2, 2)
        np.testing.assert_allclose(rows.sum(1), 1.0, atol=1e-5)
        assert list(rows.argmax(1)) == [1, 0]  # benign, malignant

    async def test_nested_fp64_data_gives_the_same_answer_as_flat_fp32(
        self, client: httpx.AsyncClient, benign: list[float], malignant: list[float]
    ) -> None:
        flat = await client.post(INFER, json=tensor(benign + malignant, [2, 10]))
        nested = await client.post(INFER, json=tensor([benign, malignant], [2, 10], "FP64"))

        assert nested.status_code == 200
        assert nested.json()["outputs"] == flat.json()["outputs"]

    async def test_agrees_with_v1_for_the_same_version(
        self, client: httpx.AsyncClient, benign: list[float]
    ) -> None:
        oip = await client.post(
            "/v2/models/breast-cancer/versions/1/infer", json=tensor(benign, [1, 10])
        )
        seed = await client.post("/v1/predict", json={"features": benign, "model_version": "v1.0"})

        assert oip.json()["model_version"] == "1"  # as the URL spelled it
        assert oip.json()["outputs"][0]["data"] == pytest.approx(
            list(seed.json()["probabilities"].values())
        )

    async def test_a_v1_request_converted_to_the_protocol_gets_a_v1_answer(
        self, client: httpx.AsyncClient, benign: list[float]
    ) -> None:
        from tessera_contracts import conversions, v1

        request = v1.PredictionRequest(features=benign, model_version="v2.0")
        body = conversions.prediction_request_v1_to_infer(request, request_id="r1")

        response = await client.post(
            f"/v2/models/breast-cancer/versions/{request.model_version}/infer",
            content=body.model_dump_json(),
            headers={"content-type": "application/json"},
        )
        answer = conversions.infer_response_to_prediction(
            request,
            v2.InferenceResponse.model_validate_json(response.content),
            processing_time_ms=1.0,
        )
        direct = await client.post("/v1/predict", json=request.model_dump())

        assert answer.model_version == "v2.0"
        assert (answer.prediction, answer.label) == (1, "benign")
        assert answer.probabilities == direct.json()["probabilities"]

    async def test_a_body_without_content_type_is_read_as_json(
        self, client: httpx.AsyncClient, benign: list[float]
    ) -> None:
        body = json.dumps(tensor(benign, [1, 10])).encode()

        response = await client.post(INFER, content=body)  # as some OIP clients send it

        assert response.status_code == 200

    async def test_asking_for_the_probabilities_output_by_name(
        self, client: httpx.AsyncClient, benign: list[float]
    ) -> None:
        response = await client.post(
            INFER, json={**tensor(benign, [1, 10]), "outputs": [{"name": "probabilities"}]}
        )

        assert response.status_code == 200
        assert response.json()["outputs"][0]["name"] == "probabilities"


class TestInferErrors:
    @pytest.mark.parametrize(
        ("body", "fragment"),
        [
            (tensor([1] * 10, [1, 10], "INT32"), "datatype INT32 is not supported"),
            (tensor(["a"] * 10, [1, 10], "BYTES"), "datatype BYTES is not supported"),
            (tensor([1.0] * 9, [1, 9]), "shape must be [N, 10]"),
            (tensor([1.0] * 10, [10]), "shape must be [N, 10]"),
            (tensor([1.0] * 10, [2, 10]), "needs 20 elements, got 10"),
            (tensor([1.0] * 9 + [-2.0], [1, 10]), "row 0, column 9 is -2.0"),
            (tensor(["1"] * 10, [1, 10]), "only numbers"),
            (tensor([[1.0] * 10, [1.0] * 9 + [[1.0]]], [2, 10]), "nested like the shape"),
            (tensor([1.0] * 10, [1, 10], parameters={"binary_data_size": 40}), "binary"),
            ({"inputs": []}, "inputs"),
            ({"inputs": tensor([1.0] * 10, [1, 10])["inputs"] * 2}, "takes 1 input"),
            (
                {**tensor([1.0] * 10, [1, 10]), "outputs": [{"name": "label"}]},
                "unknown output 'label'",
            ),
            ({"id": "no inputs"}, "inputs"),
        ],
    )
    async def test_a_bad_tensor_is_400(
        self, client: httpx.AsyncClient, body: dict[str, Any], fragment: str
    ) -> None:
        assert_oip_error(await client.post(INFER, json=body), 400, fragment)

    async def test_malformed_json_is_400(self, client: httpx.AsyncClient) -> None:
        response = await client.post(
            INFER, content=b'{"inputs": [', headers={"content-type": "application/json"}
        )

        assert_oip_error(
            response, 400, "invalid request: Invalid JSON: Expecting value at character 12"
        )

    @pytest.mark.parametrize("path", [INFER, "/v2/models/breast-cancer/versions/1.0/infer"])
    @pytest.mark.parametrize("content_type", ["application/json", None])
    async def test_a_body_that_is_not_utf8_is_400(
        self, serve_http: Any, settings: Settings, path: str, content_type: str | None
    ) -> None:
        # Without Content-Type the body is read as JSON too (the router is not strict).
        headers = {"content-type": content_type} if content_type else {}
        async with serve_http(settings) as client:
            response = await client.post(path, content=b"\xff", headers=headers)

        assert_oip_error(
            response, 400, "invalid request: Invalid JSON: not UTF-8 text (invalid start byte"
        )

    async def test_binary_tensor_data_is_400(self, client: httpx.AsyncClient) -> None:
        response = await client.post(
            INFER, content=b"\0" * 40, headers={"content-type": "application/octet-stream"}
        )

        assert_oip_error(response, 400, "must be a JSON inference request")

    async def test_too_many_rows_is_400(self, serve: Any, settings: Any) -> None:
        async with serve(settings.model_copy(update={"max_rows_per_request": 3})) as client:
            response = await client.post(INFER, json=tensor([1.0] * 40, [4, 10]))

        assert_oip_error(response, 400, "at most 3 rows")

    async def test_unknown_model_is_404(self, client: httpx.AsyncClient) -> None:
        response = await client.post("/v2/models/iris/infer", json=tensor([1.0] * 10, [1, 10]))

        assert_oip_error(response, 404, "model 'iris' not found")

    async def test_unknown_version_is_404(self, client: httpx.AsyncClient) -> None:
        response = await client.post(
            "/v2/models/breast-cancer/versions/3.0/infer", json=tensor([1.0] * 10, [1, 10])
        )

        assert_oip_error(response, 404, "no version '3.0'")
