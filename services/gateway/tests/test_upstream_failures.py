"""Upstream down, slow, failing or overloaded: timeouts, retries, breaker, load shedding."""

from __future__ import annotations

import asyncio
import socket
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from pydantic import HttpUrl
from tessera_catalog.app import create_app as create_catalog
from tessera_catalog.settings import Settings as CatalogSettings
from tessera_contracts.problem import Problem
from tessera_stack.testing import WaitUntil, product_body

from .conftest import Keys, MakeGateway, Tap, free_port, in_front_of, serve

PRODUCTS = "/v1/products"


def upstream_problem(response: httpx.Response, status: int) -> Problem:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = Problem.model_validate_json(response.content)
    assert problem.upstream == "catalog"
    return problem


def metric(text: str, name: str, **labels: str) -> float:
    """The value of one sample in a /metrics page (0 when it is absent)."""
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return sample.value
    return 0.0


@pytest.fixture
def full_accept_queue() -> Iterator[int]:
    """A port whose listener never accepts and whose accept queue is full: the kernel
    drops further SYNs, so a connect to it hangs until the client gives up (what
    an overloaded or wedged upstream looks like from the gateway)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port: int = listener.getsockname()[1]
    queued: list[socket.socket] = []
    try:
        while True:
            client = socket.socket()
            client.settimeout(0.3)
            try:
                client.connect(("127.0.0.1", port))
            except TimeoutError:
                client.close()
                break  # the queue is full
            queued.append(client)
            assert len(queued) < 100, "the accept queue never filled"
        yield port
    finally:
        for client in queued:
            client.close()
        listener.close()


class TestUpstreamDown:
    async def test_breaker_opens_fails_fast_and_recovers(
        self,
        make_gateway: MakeGateway,
        catalog_settings: CatalogSettings,
        wait_until: WaitUntil,
    ) -> None:
        port = free_port()  # nothing listens here yet: the catalog is down
        async with make_gateway(
            catalog_url=HttpUrl(f"http://127.0.0.1:{port}"),
            breaker_failure_threshold=3,
            breaker_open_s=0.5,
            retry_max_attempts=1,
        ) as gateway:
            refused = [await gateway.get(PRODUCTS) for _ in range(3)]
            started = time.perf_counter()
            open_circuit = await gateway.get(PRODUCTS)
            fast_fail_s = time.perf_counter() - started
            metrics_while_open = (await gateway.get("/metrics")).text

            async with serve(create_catalog(catalog_settings), port=port):

                async def recovered() -> bool:
                    return (await gateway.get(PRODUCTS)).status_code == 200

                await wait_until(recovered, timeout_s=5, what="the circuit to close")
                metrics_after = (await gateway.get("/metrics")).text

        for response in refused:
            assert "cannot connect to catalog" in (upstream_problem(response, 503).detail or "")
        assert "refused for now" in (upstream_problem(open_circuit, 503).detail or "")
        assert int(open_circuit.headers["retry-after"]) >= 1
        assert fast_fail_s < 0.1
        assert 'gateway_circuit_open{upstream="catalog"} 1.0' in metrics_while_open
        assert 'gateway_circuit_open{upstream="catalog"} 0.0' in metrics_after

    @pytest.mark.parametrize("client", ["aiohttp", "httpx"])
    async def test_a_connect_timeout_is_a_retried_503_not_a_deadline(
        self, make_gateway: MakeGateway, full_accept_queue: int, client: str
    ) -> None:
        async with make_gateway(
            catalog_url=HttpUrl(f"http://127.0.0.1:{full_accept_queue}"),
            upstream_client=client,
            connect_timeout_s=0.2,
            catalog_timeout_s=5.0,
            retry_max_attempts=3,
        ) as gateway:
            started = time.perf_counter()
            response = await gateway.get(f"{PRODUCTS}/00000000-0000-0000-0000-000000000001")
            elapsed = time.perf_counter() - started
            metrics = (await gateway.get("/metrics")).text

        problem = upstream_problem(response, 503)
        assert problem.detail == "cannot connect to catalog"
        # Each of the three attempts waited out its own connect timeout.
        assert elapsed >= 3 * 0.2
        failures = "gateway_upstream_failures_total"
        assert metric(metrics, failures, upstream="catalog", reason="connect") == 3
        assert metric(metrics, failures, upstream="catalog", reason="timeout") == 0
        assert metric(metrics, "gateway_upstream_retries_total", upstream="catalog") == 2


class TestSlowUpstream:
    async def test_deadline_gives_504(self, make_gateway: MakeGateway, catalog_url: str) -> None:
        tap = Tap(catalog_url, delay_s=2.0)
        async with in_front_of(tap, make_gateway, catalog_timeout_s=0.3) as gateway:
            started = time.perf_counter()
            response = await gateway.get(PRODUCTS)
            elapsed = time.perf_counter() - started

        problem = upstream_problem(response, 504)
        assert "0.3 s" in (problem.detail or "")
        assert 0.3 <= elapsed < 1.5

    async def test_waiting_for_a_busy_upstream_is_shed(
        self, make_gateway: MakeGateway, catalog_url: str
    ) -> None:
        tap = Tap(catalog_url, delay_s=1.0)
        async with in_front_of(
            tap, make_gateway, upstream_max_connections=1, upstream_queue_timeout_s=0.2
        ) as gateway:
            first, second = await asyncio.gather(gateway.get(PRODUCTS), gateway.get(PRODUCTS))

        statuses = sorted([first.status_code, second.status_code])
        assert statuses == [200, 503]
        shed = first if first.status_code == 503 else second
        assert "waiting" in (upstream_problem(shed, 503).detail or "")
        assert shed.headers["retry-after"] == "1"


class TestRetries:
    @pytest.mark.parametrize(
        ("method", "path", "body", "idempotency_key", "failure", "status", "attempts"),
        [
            # Safe to repeat: the GET goes again and succeeds.
            ("GET", PRODUCTS, None, None, 503, 200, 2),
            # A POST could create twice: never repeated without an Idempotency-Key...
            ("POST", PRODUCTS, product_body("RT-0001"), None, 503, 503, 1),
            # ...repeated with one, since the catalog replays its stored result.
            ("POST", PRODUCTS, product_body("RT-0002"), "rt-0002", 502, 201, 2),
            # The contract says a PATCH is never retried, key or not.
            ("PATCH", f"{PRODUCTS}/{uuid.UUID(int=0)}", {"price": 1.0}, "rt-0003", 503, 503, 1),
        ],
        ids=["get", "post", "post-with-idempotency-key", "patch"],
    )
    async def test_what_is_retried_after_an_unavailable_upstream(
        self,
        make_gateway: MakeGateway,
        catalog_url: str,
        keys: Keys,
        method: str,
        path: str,
        body: dict[str, Any] | None,
        idempotency_key: str | None,
        failure: int,
        status: int,
        attempts: int,
    ) -> None:
        tap = Tap(catalog_url, fail_next=[failure])
        headers = Keys.bearer(keys.writer)
        if idempotency_key is not None:
            headers["Idempotency-Key"] = idempotency_key
        async with in_front_of(tap, make_gateway) as gateway:
            response = await gateway.request(method, path, json=body, headers=headers)

        if status >= 500:
            upstream_problem(response, status)
        assert response.status_code == status, response.text
        assert len(tap.seen) == attempts

    async def test_an_empty_retry_budget_stops_retries(
        self, make_gateway: MakeGateway, catalog_url: str
    ) -> None:
        tap = Tap(catalog_url, fail_next=[503])
        async with in_front_of(
            tap, make_gateway, retry_budget_min=0, retry_budget_ratio=0.0
        ) as gateway:
            response = await gateway.get(PRODUCTS)

        upstream_problem(response, 503)
        assert len(tap.seen) == 1

    async def test_an_upstream_500_becomes_a_502_without_its_body(
        self, make_gateway: MakeGateway, catalog_url: str
    ) -> None:
        tap = Tap(catalog_url, fail_next=[500], fail_body=b"Traceback: secret internals")
        async with in_front_of(tap, make_gateway) as gateway:
            response = await gateway.get(PRODUCTS)

        upstream_problem(response, 502)
        assert "internals" not in response.text
        assert len(tap.seen) == 1  # a bug, not an outage: not retried


class TestLargeResponses:
    async def test_an_unsized_large_body_is_streamed_through_whole(
        self, make_gateway: MakeGateway, catalog_url: str
    ) -> None:
        body = bytes(range(256)) * 4096  # 1 MiB, sent chunked (no Content-Length)
        tap = Tap(catalog_url, fail_next=[200], fail_body=body)
        async with in_front_of(
            tap, make_gateway, upstream_max_connections=1, upstream_queue_timeout_s=0.5
        ) as gateway:
            response = await gateway.get(PRODUCTS)
            after = await gateway.get(PRODUCTS)  # the one upstream slot was released

        assert response.status_code == 200
        assert response.content == body
        assert after.status_code == 200

    async def test_a_prediction_is_retried_although_it_is_a_post(
        self, make_gateway: MakeGateway, inference_url: str, keys: Keys
    ) -> None:
        # An inference pod that shuts down closes the connection under a POST; the
        # prediction changes nothing, so repeating it is safe.
        tap = Tap(inference_url, fail_next=[503])
        features = [0.5] * 10
        async with serve(tap) as flaky, make_gateway(inference_url=HttpUrl(flaky)) as gateway:
            response = await gateway.post(
                "/v1/predict", json={"features": features}, headers=Keys.bearer(keys.predictor)
            )

        assert response.status_code == 200, response.text
        assert len(tap.seen) == 2
