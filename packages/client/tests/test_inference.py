"""Predictions through the real gateway: v1 predict and the Open Inference Protocol."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from tessera_client import TesseraClient, TesseraError
from tessera_contracts import v1, v2
from tessera_stack.testing import MALIGNANT

from .conftest import Stack
from .servers import Forwarder, forwarder

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


@pytest.fixture
def flaky(stack: Stack) -> Iterator[Forwarder]:
    with forwarder(stack.gateway) as server:
        yield server


async def test_a_declared_answer_is_the_value_and_not_retried(
    flaky: Forwarder, stack: Stack
) -> None:
    # What the inference service answers while it cannot infer (asked directly).
    not_ready = (503, {"Content-Type": "application/json"}, b'{"ready":false}')
    flaky.fail_next = [not_ready]
    async with TesseraClient(flaky.url, api_key=stack.key, retry_backoff_s=0.01) as client:
        answer = await client.v2.server_ready()

    assert answer == v2.ServerReadyResponse(ready=False)
    assert len(flaky.seen) == 1


async def test_a_gateway_problem_with_a_declared_status_stays_an_error(
    flaky: Forwarder, stack: Stack
) -> None:
    flaky.fail_next = [(503, {}), (503, {})]
    async with TesseraClient(flaky.url, api_key=stack.key, retry_backoff_s=0.01) as client:
        retried = await client.v2.server_ready()  # the second 503 is retried too
        async with TesseraClient(flaky.url, api_key=stack.key, max_retries=0) as once:
            flaky.fail_next = [(503, {})]
            with pytest.raises(TesseraError) as raised:
                await once.v2.server_ready()

    assert retried.ready is True  # the real inference service's answer
    assert len(flaky.seen) == 4
    assert raised.value.status == 503
    assert raised.value.title == "Service Unavailable"


async def test_a_dot_segment_does_not_reach_another_operation(
    client: TesseraClient, flaky: Forwarder, stack: Stack
) -> None:
    assert (await client.v2.model_ready(MODEL)).ready is True
    async with TesseraClient(flaky.url, api_key=stack.key) as through:
        with pytest.raises(TesseraError) as raised:
            await through.v2.model_version_ready(MODEL, "..")

    assert flaky.seen[0].path == f"/v2/models/{MODEL}/versions/%2E%2E/ready"
    assert raised.value.status == 404
