"""Predictions through the real gateway: v1 predict and the Open Inference Protocol."""

from __future__ import annotations

import pytest
from tessera_client import TesseraClient, TesseraError
from tessera_contracts import v1, v2

from .conftest import MALIGNANT

MODEL = "breast-cancer"


def _rows(*rows: list[float]) -> v2.InferenceRequest:
    return v2.InferenceRequest.model_validate(
        {
            "inputs": [
                {
                    "name": "input-0",
                    "shape": [len(rows), len(rows[0])],
                    "datatype": "FP32",
                    "data": [value for row in rows for value in row],
                }
            ]
        }
    )


async def test_v1_predict(client: TesseraClient) -> None:
    answer = await client.v1.predict(v1.PredictionRequest(features=list(MALIGNANT)))

    assert isinstance(answer, v1.PredictionResponse)
    assert answer.label == "malignant"
    assert 0 <= answer.confidence <= 1


async def test_v2_infer_and_metadata(client: TesseraClient) -> None:
    live = await client.v2.server_live()

    answer = await client.v2.infer(MODEL, _rows(MALIGNANT, MALIGNANT))
    described = await client.v2.model_metadata(MODEL)

    assert live.live is True
    assert isinstance(answer, v2.InferenceResponse)
    assert answer.model_name == MODEL
    assert described.name == MODEL


async def test_unknown_model_is_404_with_the_oip_message(client: TesseraClient) -> None:
    with pytest.raises(TesseraError) as raised:
        await client.v2.infer("no-such-model", _rows(MALIGNANT))

    assert raised.value.status == 404
    assert raised.value.detail  # the `{"error": ...}` message
    assert "no-such-model" in (raised.value.detail or "")


async def test_bad_oip_request_is_400(client: TesseraClient) -> None:
    bad = {"inputs": [{"name": "input-0", "shape": [1, 3], "datatype": "FP32", "data": [1, 2, 3]}]}

    with pytest.raises(TesseraError) as raised:
        await client.call(v2.INFER, path={"name": MODEL}, body=bad)

    assert raised.value.status == 400
    assert raised.value.detail
