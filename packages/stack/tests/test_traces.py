"""One enriched product through the real system is one trace across the three services.

`tessera up` runs the services with an OTLP endpoint of the test's own and a
span directory; the test reads what the services exported over OTLP/HTTP and
what `tessera trace` prints from the directory.
"""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from tessera_stack.cli import main as tessera
from tessera_stack.otlp_receiver import OtlpReceiver, ReceivedSpan, otlp_receiver
from tessera_stack.process import free_port
from tessera_stack.testing import product_body

READY_LINE = "Press Ctrl-C to stop."
REQUEST_ID = "enriched-trace-1"
ENRICHED_ROUTE = "/v1/products/{product_id}/enriched"
CREATED = "catalog.v1.product.created"


class Stack:
    def __init__(self, process: subprocess.Popen[str], gateway: str, data_dir: Path) -> None:
        self.process = process
        self.gateway = gateway
        self.data_dir = data_dir
        self.key = (data_dir / "api-key").read_text().strip()


@pytest.fixture(scope="module")
def receiver() -> Iterator[OtlpReceiver]:
    with otlp_receiver() as running:
        yield running


@pytest.fixture(scope="module")
def stack(receiver: OtlpReceiver, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    data_dir = tmp_path_factory.mktemp("traced") / "data"
    ports = {"gateway": free_port(), "catalog": free_port(), "inference": free_port()}
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "NATS_URL")}
    env |= {
        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
        # Both exporters: the collector's view and the one `tessera trace` reads.
        "TESSERA_TRACE_DIR": str(data_dir / "traces"),
        "OTEL_BSP_SCHEDULE_DELAY": "100",
    }
    command = [sys.executable, "-m", "tessera_stack.cli", "up", "--data-dir", str(data_dir)]
    for name, port in ports.items():
        command += [f"--{name}-port", str(port)]
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    assert process.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + 120
    for line in process.stdout:
        lines.append(line.rstrip("\n"))
        if READY_LINE in line or time.monotonic() > deadline:
            break
    try:
        assert READY_LINE in lines[-1], "\n".join(lines)
        yield Stack(process, f"http://127.0.0.1:{ports['gateway']}", data_dir)
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        process.stdout.close()


@pytest.fixture(scope="module")
def enriched(stack: Stack, receiver: OtlpReceiver) -> tuple[httpx.Response, list[ReceivedSpan]]:
    auth = {"Authorization": f"Bearer {stack.key}"}
    with httpx.Client(base_url=stack.gateway, headers=auth, timeout=30) as client:
        listed = client.get("/v1/products", params={"limit": 1})
        assert listed.status_code == 200, listed.text
        product_id = listed.json()["items"][0]["id"]
        response = client.get(
            f"/v1/products/{product_id}/enriched", headers={"X-Request-ID": REQUEST_ID}
        )
    assert response.status_code == 200, response.text
    trace_id = response.headers["traceparent"].split("-")[1]

    def complete(spans: list[ReceivedSpan]) -> bool:
        # Each service exports on its own schedule (a server span ends after its
        # answer went out): wait for every span the test expects.
        mine = {(s.service, s.kind, s.name) for s in spans if s.trace_id == trace_id}
        queries = [s for s in spans if s.trace_id == trace_id and s.kind == "client"
                   and s.service == "catalog" and s.name.startswith("SELECT")]  # fmt: skip
        return (
            len(queries) >= 3
            and {
                ("gateway", "server", f"GET {ENRICHED_ROUTE}"),
                ("gateway", "client", "GET"),
                ("catalog", "server", f"GET {ENRICHED_ROUTE}"),
                ("catalog", "client", "send inference.v1.predict"),
                ("inference", "consumer", "process inference.v1.predict"),
                ("inference", "internal", "execute breast-cancer"),
            }
            <= mine
        )

    spans = receiver.wait_for(complete, timeout_s=15)
    return response, [s for s in spans if s.trace_id == trace_id]


def _one(spans: list[ReceivedSpan], service: str, kind: str, name: str) -> ReceivedSpan:
    found = [s for s in spans if (s.service, s.kind, s.name) == (service, kind, name)]
    assert len(found) == 1, [(s.service, s.kind, s.name) for s in spans]
    return found[0]


class TestEnrichedProductTrace:
    def test_the_gateway_answers_with_its_server_span_in_traceparent(
        self, enriched: tuple[httpx.Response, list[ReceivedSpan]]
    ) -> None:
        response, spans = enriched
        server = _one(spans, "gateway", "server", f"GET {ENRICHED_ROUTE}")
        _, trace_id, span_id, flags = response.headers["traceparent"].split("-")
        assert (trace_id, span_id, flags) == (server.trace_id, server.span_id, "01")
        # The client sent no traceparent: the gateway's span is the root.
        assert server.parent_span_id is None
        assert server.attributes["tessera.request_id"] == REQUEST_ID
        assert server.attributes["http.route"] == ENRICHED_ROUTE
        assert server.attributes["http.response.status_code"] == 200

    def test_the_spans_form_one_tree_across_the_three_services(
        self, enriched: tuple[httpx.Response, list[ReceivedSpan]]
    ) -> None:
        _, spans = enriched
        gateway = _one(spans, "gateway", "server", f"GET {ENRICHED_ROUTE}")
        upstream = _one(spans, "gateway", "client", "GET")
        assert upstream.parent_span_id == gateway.span_id
        assert upstream.attributes["server.address"] == "catalog"

        catalog = _one(spans, "catalog", "server", f"GET {ENRICHED_ROUTE}")
        assert catalog.parent_span_id == upstream.span_id
        assert catalog.attributes["tessera.request_id"] == REQUEST_ID

        # The product, its reviews and its inventory: one query span each at least.
        queries = [s for s in spans if s.attributes.get("db.system.name") == "postgresql"]
        assert len(queries) >= 3
        assert {q.parent_span_id for q in queries} == {catalog.span_id}
        assert all(q.kind == "client" and q.service == "catalog" for q in queries)
        assert {q.attributes["db.operation.name"] for q in queries} >= {"SELECT"}

        predict = _one(spans, "catalog", "client", "send inference.v1.predict")
        assert predict.parent_span_id == catalog.span_id
        assert predict.attributes["messaging.system"] == "nats"

        worker = _one(spans, "inference", "consumer", "process inference.v1.predict")
        assert worker.parent_span_id == predict.span_id
        assert worker.attributes["tessera.request_id"] == REQUEST_ID

        # Children start within their parents on the timeline (one clock: one
        # machine). A server span may end after its caller's: it still logs and
        # counts the request once the last byte of the answer is out.
        for child, parent in ((upstream, gateway), (catalog, upstream), (worker, predict)):
            assert parent.start_ns <= child.start_ns <= parent.end_ns

    def test_the_batch_span_links_to_the_request_it_served(
        self, enriched: tuple[httpx.Response, list[ReceivedSpan]]
    ) -> None:
        _, spans = enriched
        worker = _one(spans, "inference", "consumer", "process inference.v1.predict")
        batches = [s for s in spans if s.service == "inference" and s.links]
        assert len(batches) == 1
        batch = batches[0]
        # One model execution for the requests of a batch: it links to each of
        # them, and lies in the trace of the one that opened the batch.
        assert (worker.trace_id, worker.span_id) in {(k.trace_id, k.span_id) for k in batch.links}
        assert batch.parent_span_id == worker.span_id
        assert batch.attributes["inference.batch.size"] == len(batch.links)

    def test_tessera_trace_prints_the_waterfall(
        self,
        stack: Stack,
        enriched: tuple[httpx.Response, list[ReceivedSpan]],
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        _, spans = enriched
        trace_id = spans[0].trace_id
        # The file exporter flushes on its own schedule: poll until every span is there.
        deadline = time.monotonic() + 10
        while True:
            code = tessera(["trace", REQUEST_ID, "--data-dir", str(stack.data_dir)])
            printed = capsys.readouterr().out
            if code == 0 and f"{len(spans)} spans" in printed:
                break
            assert time.monotonic() < deadline, printed
            time.sleep(0.2)
        assert trace_id in printed
        for name in ("process inference.v1.predict", "send inference.v1.predict"):
            assert name in printed
        for service in ("gateway", "catalog", "inference"):
            assert service in printed


def test_an_event_keeps_the_trace_of_the_request_that_wrote_it(
    stack: Stack, receiver: OtlpReceiver
) -> None:
    auth = {"Authorization": f"Bearer {stack.key}"}
    lines: queue.Queue[str] = queue.Queue()

    def listen() -> None:
        # The gateway's SSE stream: its delivery of the event is a span too.
        with (
            httpx.Client(base_url=stack.gateway, headers=auth, timeout=30) as client,
            client.stream("GET", "/v1/events") as response,
        ):
            for line in response.iter_lines():
                lines.put(line)
                if line == f"event: {CREATED}":
                    return

    listener = threading.Thread(target=listen, daemon=True)
    listener.start()
    assert lines.get(timeout=15).startswith("id:")  # positioned: events from now on
    with httpx.Client(base_url=stack.gateway, headers=auth, timeout=30) as client:
        created = client.post(
            "/v1/products",
            json=product_body(sku="TRC-0001"),
            headers={"Idempotency-Key": "trace-event-1"},
        )
    assert created.status_code == 201, created.text
    listener.join(timeout=15)
    assert not listener.is_alive(), "the event never reached the SSE client"
    trace_id = created.headers["traceparent"].split("-")[1]

    def relayed(spans: list[ReceivedSpan]) -> bool:
        names = {(s.service, s.kind, s.name) for s in spans}
        return {
            ("catalog", "server", "POST /v1/products"),
            ("catalog", "producer", f"publish {CREATED}"),
            ("gateway", "consumer", f"process {CREATED}"),
            ("gateway", "server", "GET /v1/events"),
        } <= names

    spans = receiver.wait_for(relayed, timeout_s=15)
    writer = _one(
        [s for s in spans if s.trace_id == trace_id], "catalog", "server", "POST /v1/products"
    )
    writer_context = {(writer.trace_id, writer.span_id)}
    # The relay publishes later, in a trace of its own, linked to the writer
    # (whose context the outbox row kept), and under the writer's request id.
    publish = _one(spans, "catalog", "producer", f"publish {CREATED}")
    assert {(k.trace_id, k.span_id) for k in publish.links} == writer_context
    assert (publish.trace_id != trace_id, publish.parent_span_id) == (True, None)
    assert publish.attributes["tessera.request_id"] == writer.attributes["tessera.request_id"]
    # So does each SSE delivery, also linked to the stream's own request.
    delivery = _one(spans, "gateway", "consumer", f"process {CREATED}")
    assert delivery.parent_span_id is None
    stream = _one(spans, "gateway", "server", "GET /v1/events")
    assert {(k.trace_id, k.span_id) for k in delivery.links} == writer_context | {
        (stream.trace_id, stream.span_id)
    }
