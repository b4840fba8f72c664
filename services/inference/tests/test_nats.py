"""`inference.v1.predict` request-reply against a real nats-server."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import httpx
import nats
import pytest
from nats.aio.client import Client
from tessera_contracts import PROBLEM_HEADERS, RemoteProblem, v1
from tessera_contracts.v1.subjects import PREDICT
from tessera_inference.settings import Settings

Serve = Callable[[Settings], AbstractAsyncContextManager[httpx.AsyncClient]]
TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


async def wait_ready(client: httpx.AsyncClient, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while (await client.get("/readyz")).status_code != 200:
        assert time.monotonic() < deadline, (await client.get("/readyz")).json()
        await asyncio.sleep(0.05)


@pytest.fixture
def nats_settings(nats_url: str) -> Settings:
    return Settings(nats_url=nats_url, nats_reconnect_wait_s=0.1)


@pytest.fixture
async def service(serve: Serve, nats_settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with serve(nats_settings) as client:
        await wait_ready(client)
        yield client


@pytest.fixture
async def nc(nats_url: str) -> AsyncIterator[Client]:
    connection = await nats.connect(nats_url)
    yield connection
    await connection.close()


async def predict(nc: Client, payload: bytes, headers: dict[str, str] | None = None) -> Any:
    return await nc.request(PREDICT.name, payload, timeout=5, headers=headers)


class TestRequestReply:
    async def test_answers_like_http_v1(
        self, service: httpx.AsyncClient, nc: Client, benign: list[float]
    ) -> None:
        request = v1.PredictionRequest(features=benign, model_version="v2.0")

        reply = await predict(nc, PREDICT.encode_request(request))
        http = await service.post("/v1/predict", json=request.model_dump())

        answer = PREDICT.decode_reply(reply.data, reply.headers)
        assert (answer.prediction, answer.label, answer.model_version) == (1, "benign", "v2.0")
        assert answer.probabilities == http.json()["probabilities"]

    async def test_the_request_id_comes_back_in_the_reply(
        self, service: httpx.AsyncClient, nc: Client, malignant: list[float]
    ) -> None:
        request = PREDICT.encode_request(v1.PredictionRequest(features=malignant))

        reply = await predict(nc, request, {"X-Request-ID": "req-42", "traceparent": TRACEPARENT})
        anonymous = await predict(nc, request)

        assert reply.headers["X-Request-ID"] == "req-42"
        assert anonymous.headers["X-Request-ID"]  # one is generated when none is sent
        assert PREDICT.decode_reply(reply.data, reply.headers).prediction == 0

    async def test_concurrent_requests_share_onnx_calls_and_get_their_own_answers(
        self,
        serve: Serve,
        nats_settings: Settings,
        nc: Client,
        benign: list[float],
        malignant: list[float],
    ) -> None:
        samples = [benign if i % 2 else malignant for i in range(50)]
        async with serve(nats_settings.model_copy(update={"max_batch_wait_ms": 20})) as client:
            await wait_ready(client)
            replies = await asyncio.gather(
                *(
                    predict(nc, PREDICT.encode_request(v1.PredictionRequest(features=s)))
                    for s in samples
                )
            )
            metrics = (await client.get("/metrics")).text

        answers = [PREDICT.decode_reply(r.data, r.headers).prediction for r in replies]
        assert answers == [i % 2 for i in range(50)]
        calls = _sample(metrics, 'inference_batch_size_count{model="breast-cancer",version="1.0"}')
        rows = _sample(metrics, 'inference_batch_size_sum{model="breast-cancer",version="1.0"}')
        assert rows == 50
        assert calls < 50

    async def test_replicas_in_the_queue_group_answer_each_request_once(
        self, serve: Serve, nats_settings: Settings, nc: Client, benign: list[float]
    ) -> None:
        request = PREDICT.encode_request(v1.PredictionRequest(features=benign))
        async with serve(nats_settings) as first, serve(nats_settings) as second:
            await wait_ready(first)
            await wait_ready(second)
            await asyncio.gather(*(predict(nc, request) for _ in range(30)))
            handled = [_sample((await c.get("/metrics")).text, _NATS_OK) for c in (first, second)]

        assert sum(handled) == 30
        assert all(n > 0 for n in handled)


_NATS_OK = 'inference_requests_total{api="nats",model="breast-cancer",outcome="ok",version="1.0"}'


def _sample(metrics: str, name: str) -> float:
    for line in metrics.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    return 0.0


class TestShutdown:
    async def test_requests_in_flight_are_answered_before_the_worker_stops(
        self, serve: Serve, nats_settings: Settings, nc: Client, benign: list[float]
    ) -> None:
        request = PREDICT.encode_request(v1.PredictionRequest(features=benign))
        # A long batching wait keeps the request inside the service while it shuts down.
        async with serve(nats_settings.model_copy(update={"max_batch_wait_ms": 300})) as client:
            await wait_ready(client)
            in_flight = asyncio.create_task(predict(nc, request))
            await asyncio.sleep(0.1)

        reply = await in_flight
        assert PREDICT.decode_reply(reply.data, reply.headers).prediction == 1


class TestProblems:
    @pytest.mark.parametrize(
        ("payload", "status"),
        [
            (b"not json", 422),
            (b'{"features": [1, 2, 3]}', 422),
            (b'{"features": [1, 1, 1, 1, 1, 1, 1, 1, 1, -1]}', 422),
            (b'{"features": [1, 1, 1, 1, 1, 1, 1, 1, 1, 1e39]}', 422),
            (b'{"features": [1, 1, 1, 1, 1, 1, 1, 1, 1, 1], "model_version": "v7"}', 404),
        ],
    )
    async def test_a_bad_request_gets_a_problem_reply(
        self, service: httpx.AsyncClient, nc: Client, payload: bytes, status: int
    ) -> None:
        reply = await predict(nc, payload, {"X-Request-ID": "bad-1"})

        assert reply.headers["Content-Type"] == PROBLEM_HEADERS["Content-Type"]
        assert reply.headers["X-Request-ID"] == "bad-1"
        with pytest.raises(RemoteProblem) as error:
            PREDICT.decode_reply(reply.data, reply.headers)
        assert error.value.problem.status == status

    async def test_the_worker_keeps_serving_after_a_bad_request(
        self, service: httpx.AsyncClient, nc: Client, benign: list[float]
    ) -> None:
        await predict(nc, b"\xff\xfe")

        reply = await predict(nc, PREDICT.encode_request(v1.PredictionRequest(features=benign)))

        assert PREDICT.decode_reply(reply.data, reply.headers).prediction == 1


async def _access_lines(capsys: pytest.CaptureFixture[str], count: int) -> list[dict[str, Any]]:
    """The first `count` JSON access lines (logger tessera.access) the service writes to
    captured stdout; they arrive in batches (`INFERENCE_LOG_FLUSH_INTERVAL_S`)."""
    deadline = time.monotonic() + 5
    lines: list[dict[str, Any]] = []
    while len(lines) < count:
        assert time.monotonic() < deadline, f"{len(lines)} of {count} access lines"
        await asyncio.sleep(0.02)
        out = capsys.readouterr().out
        logged = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
        lines += [line for line in logged if line["logger"] == "tessera.access"]
    return lines


class TestAccessLog:
    async def test_each_nats_request_writes_one_json_line_with_its_request_id(
        self,
        capsys: pytest.CaptureFixture[str],
        serve: Serve,
        nats_settings: Settings,
        nc: Client,
        malignant: list[float],
    ) -> None:
        # The app is made inside the test, so its log handler writes to capsys.
        async with serve(nats_settings) as client:
            await wait_ready(client)
            capsys.readouterr()
            await predict(
                nc,
                PREDICT.encode_request(v1.PredictionRequest(features=malignant)),
                {"X-Request-ID": "trace-me-1", "traceparent": TRACEPARENT},
            )
            await predict(nc, b"not json", {"X-Request-ID": "trace-me-2"})
            lines = await _access_lines(capsys, 2)

        served, refused = (
            [line for line in lines if line["request_id"] == rid]
            for rid in ("trace-me-1", "trace-me-2")
        )
        assert len(served) == len(refused) == 1
        assert served[0]["service"] == "inference"
        assert served[0]["trace_id"] == TRACEPARENT.split("-")[1]
        assert served[0]["subject"] == PREDICT.name
        assert served[0]["model"] == "breast-cancer"
        assert served[0]["model_version"] == "v1.0"
        assert (served[0]["status"], served[0]["outcome"]) == (200, "ok")
        assert served[0]["duration_ms"] >= 0
        assert (refused[0]["status"], refused[0]["outcome"]) == (422, "invalid")

    async def test_a_warning_while_handling_carries_the_request_id(
        self,
        capsys: pytest.CaptureFixture[str],
        serve: Serve,
        nats_settings: Settings,
        nc: Client,
    ) -> None:
        async with serve(nats_settings) as client:
            await wait_ready(client)
            capsys.readouterr()
            # No reply subject: nothing to answer, so the worker warns and drops it.
            await nc.publish(PREDICT.name, b"{}", headers={"X-Request-ID": "no-reply-1"})
            await nc.flush()
            deadline = time.monotonic() + 5
            lines: list[dict[str, Any]] = []
            while not any(line["request_id"] == "no-reply-1" for line in lines):
                assert time.monotonic() < deadline, "no log line for no-reply-1"
                await asyncio.sleep(0.02)
                out = capsys.readouterr().out
                lines += [json.loads(line) for line in out.splitlines() if line.startswith("{")]

        [warning] = [line for line in lines if line["request_id"] == "no-reply-1"]
        assert warning["level"] == "WARNING"
        assert warning["logger"] == "tessera_inference.messaging.worker"


@pytest.mark.embedded_nats
class TestNatsOutage:
    async def test_the_service_starts_without_nats_and_subscribes_when_it_comes(
        self, serve: Serve, nats_server: Any, nats_settings: Settings, benign: list[float]
    ) -> None:
        nats_server.stop()
        async with serve(nats_settings) as client:
            not_ready = await client.get("/readyz")
            http = await client.post("/v1/predict", json={"features": benign})

            nats_server.start()
            await wait_ready(client)
            nc = await nats.connect(nats_server.url)
            try:
                request = PREDICT.encode_request(v1.PredictionRequest(features=benign))
                reply = await predict(nc, request)
            finally:
                await nc.close()

        assert not_ready.status_code == 503
        assert not_ready.json()["checks"]["nats"] != "ok"
        assert not_ready.json()["checks"]["models"] == "ok"
        assert http.status_code == 200  # HTTP serves while NATS is away
        assert PREDICT.decode_reply(reply.data, reply.headers).prediction == 1

    async def test_readiness_can_ignore_nats(
        self, serve: Serve, nats_server: Any, nats_settings: Settings
    ) -> None:
        nats_server.stop()
        settings = nats_settings.model_copy(update={"nats_required_for_readiness": False})
        async with serve(settings) as client:
            response = await client.get("/readyz")

        assert response.status_code == 200
        assert "nats" not in response.json()["checks"]

    async def test_readiness_follows_a_nats_outage(
        self, serve: Serve, nats_server: Any, nats_settings: Settings
    ) -> None:
        async with serve(nats_settings) as client:
            await wait_ready(client)
            nats_server.stop()
            deadline = time.monotonic() + 10
            while (await client.get("/readyz")).status_code == 200:
                assert time.monotonic() < deadline
                await asyncio.sleep(0.05)
            nats_server.start()
            await wait_ready(client)
