"""Upstream down, slow, failing or overloaded: timeouts, retries, breaker, load shedding."""

from __future__ import annotations

import asyncio
import time

import httpx
from pydantic import HttpUrl
from tessera_catalog.app import create_app as create_catalog
from tessera_catalog.settings import Settings as CatalogSettings
from tessera_contracts.problem import Problem

from .conftest import Keys, MakeGateway, Tap, WaitUntil, free_port, product_body, serve

PRODUCTS = "/v1/products"


def upstream_problem(response: httpx.Response, status: int) -> Problem:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = Problem.model_validate_json(response.content)
    assert problem.upstream == "catalog"
    return problem


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
            assert "cannot be reached" in (upstream_problem(response, 503).detail or "")
        assert "refused for now" in (upstream_problem(open_circuit, 503).detail or "")
        assert int(open_circuit.headers["retry-after"]) >= 1
        assert fast_fail_s < 0.1
        assert 'gateway_circuit_open{upstream="catalog"} 1.0' in metrics_while_open
        assert 'gateway_circuit_open{upstream="catalog"} 0.0' in metrics_after


class TestSlowUpstream:
    async def test_deadline_gives_504(self, make_gateway: MakeGateway, catalog_url: str) -> None:
        tap = Tap(catalog_url, delay_s=2.0)
        async with (
            serve(tap) as slow,
            make_gateway(catalog_url=HttpUrl(slow), catalog_timeout_s=0.3) as gateway,
        ):
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
        async with (
            serve(tap) as slow,
            make_gateway(
                catalog_url=HttpUrl(slow), upstream_max_connections=1, upstream_queue_timeout_s=0.2
            ) as gateway,
        ):
            first, second = await asyncio.gather(gateway.get(PRODUCTS), gateway.get(PRODUCTS))

        statuses = sorted([first.status_code, second.status_code])
        assert statuses == [200, 503]
        shed = first if first.status_code == 503 else second
        assert "waiting" in (upstream_problem(shed, 503).detail or "")
        assert shed.headers["retry-after"] == "1"


class TestRetries:
    async def test_get_is_retried_after_a_503(
        self, make_gateway: MakeGateway, catalog_url: str
    ) -> None:
        tap = Tap(catalog_url, fail_next=[503])
        async with serve(tap) as flaky, make_gateway(catalog_url=HttpUrl(flaky)) as gateway:
            response = await gateway.get(PRODUCTS)

        assert response.status_code == 200
        assert len(tap.seen) == 2

    async def test_post_is_not_retried_without_an_idempotency_key(
        self, make_gateway: MakeGateway, catalog_url: str, keys: Keys
    ) -> None:
        tap = Tap(catalog_url, fail_next=[503])
        async with serve(tap) as flaky, make_gateway(catalog_url=HttpUrl(flaky)) as gateway:
            response = await gateway.post(
                PRODUCTS, json=product_body("RT-0001"), headers=Keys.bearer(keys.writer)
            )

        upstream_problem(response, 503)
        assert len(tap.seen) == 1

    async def test_post_with_an_idempotency_key_is_retried(
        self, make_gateway: MakeGateway, catalog_url: str, keys: Keys
    ) -> None:
        tap = Tap(catalog_url, fail_next=[502])
        async with serve(tap) as flaky, make_gateway(catalog_url=HttpUrl(flaky)) as gateway:
            response = await gateway.post(
                PRODUCTS,
                json=product_body("RT-0002"),
                headers=Keys.bearer(keys.writer) | {"Idempotency-Key": "rt-0002"},
            )

        assert response.status_code == 201
        assert len(tap.seen) == 2

    async def test_an_empty_retry_budget_stops_retries(
        self, make_gateway: MakeGateway, catalog_url: str
    ) -> None:
        tap = Tap(catalog_url, fail_next=[503])
        async with (
            serve(tap) as flaky,
            make_gateway(
                catalog_url=HttpUrl(flaky), retry_budget_min=0, retry_budget_ratio=0.0
            ) as gateway,
        ):
            response = await gateway.get(PRODUCTS)

        upstream_problem(response, 503)
        assert len(tap.seen) == 1

    async def test_an_upstream_500_becomes_a_502_without_its_body(
        self, make_gateway: MakeGateway, catalog_url: str
    ) -> None:
        tap = Tap(catalog_url, fail_next=[500], fail_body=b"Traceback: secret internals")
        async with serve(tap) as broken, make_gateway(catalog_url=HttpUrl(broken)) as gateway:
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
        async with (
            serve(tap) as big,
            make_gateway(
                catalog_url=HttpUrl(big), upstream_max_connections=1, upstream_queue_timeout_s=0.5
            ) as gateway,
        ):
            response = await gateway.get(PRODUCTS)
            after = await gateway.get(PRODUCTS)  # the one upstream slot was released

        assert response.status_code == 200
        assert response.content == body
        assert after.status_code == 200
