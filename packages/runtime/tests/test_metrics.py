"""Prometheus metrics labelled by route template, one registry per app."""

from __future__ import annotations

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from prometheus_client import CollectorRegistry, Counter
from prometheus_client.parser import text_string_to_metric_families
from tessera_runtime import create_service_app

from .conftest import build_demo_app


def samples(text: str, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    """Values of one sample name, keyed by sorted label pairs."""
    found: dict[tuple[tuple[str, str], ...], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name:
                found[tuple(sorted(sample.labels.items()))] = sample.value
    return found


def requests_total(text: str, method: str, route: str, status: str) -> float:
    key = (("method", method), ("route", route), ("status", status))
    return samples(text, "http_requests_total").get(key, 0.0)


async def scrape(client: httpx.AsyncClient) -> str:
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return response.text


Request = tuple[str, str]
Key = tuple[str, str, str]
"""Method, route label and status of `http_requests_total`."""

LABELS = [
    pytest.param(
        [("GET", "/v1/products/1234567"), ("GET", "/v1/products/7654321")],
        {("GET", "/v1/products/{product_id}", "200"): 2},
        ["1234567", "7654321"],
        id="nested-router-route-by-full-template",
    ),
    pytest.param(
        [("GET", "/top/alice")],
        {("GET", "/top/{name}", "200"): 1},
        ["alice"],
        id="app-route-by-template",
    ),
    pytest.param(
        [("GET", "/openapi.json"), ("GET", "/static/docs/favicon.png")],
        {("GET", "/openapi.json", "200"): 1, ("GET", "/static/docs/{path}", "200"): 1},
        ["favicon"],
        id="plain-starlette-routes-and-mounts",
    ),
    pytest.param(
        [("GET", "/random/abc"), ("GET", "/random/def")],
        {("GET", "<unmatched>", "404"): 2},
        ["/random"],
        id="unmatched-paths-share-one-label",
    ),
    pytest.param(
        [("GET", "/v1/products/404"), ("GET", "/v1/products/500"), ("DELETE", "/v1/products/1")],
        {
            ("GET", "/v1/products/{product_id}", "404"): 1,
            ("GET", "/v1/products/{product_id}", "500"): 1,
            ("DELETE", "/v1/products/{product_id}", "405"): 1,
        },
        [],
        id="status-of-errors-and-405",
    ),
    pytest.param(
        [("BREW", "/v1/products/1")],
        {("OTHER", "/v1/products/{product_id}", "405"): 1},
        ["BREW"],
        id="unknown-methods-are-folded",
    ),
]


class TestRouteLabels:
    @pytest.mark.parametrize(("requests", "counts", "absent"), LABELS)
    async def test_requests_are_counted_by_method_route_template_and_status(
        self,
        client: httpx.AsyncClient,
        requests: list[Request],
        counts: dict[Key, float],
        absent: list[str],
    ) -> None:
        for method, path in requests:
            await client.request(method, path)

        text = await scrape(client)

        assert {key: requests_total(text, *key) for key in counts} == counts
        # No raw path, parameter or method reaches a label.
        assert [fragment for fragment in absent if fragment in text] == []

    async def test_durations_are_labelled_by_full_template(self, client: httpx.AsyncClient) -> None:
        await client.get("/v1/products/1234567")
        await client.get("/v1/products/7654321")

        durations = samples(await scrape(client), "http_request_duration_seconds_count")

        assert durations[(("method", "GET"), ("route", "/v1/products/{product_id}"))] == 2


class TestRegistry:
    async def test_two_apps_in_one_process_do_not_share_metrics(self) -> None:
        first, second = build_demo_app(title="first"), build_demo_app(title="second")
        assert first.state.metrics_registry is not second.state.metrics_registry

        async with (
            LifespanManager(first) as m1,
            LifespanManager(second) as m2,
            httpx.AsyncClient(transport=httpx.ASGITransport(app=m1.app), base_url="http://a") as c1,
            httpx.AsyncClient(transport=httpx.ASGITransport(app=m2.app), base_url="http://b") as c2,
        ):
            for _ in range(3):
                await c1.get("/top/x")
            await c2.get("/top/x")

            assert requests_total(await scrape(c1), "GET", "/top/{name}", "200") == 3
            assert requests_total(await scrape(c2), "GET", "/top/{name}", "200") == 1

    async def test_service_metrics_added_to_the_registry_are_exported(
        self, demo_app: FastAPI, client: httpx.AsyncClient
    ) -> None:
        registry: CollectorRegistry = demo_app.state.metrics_registry
        predictions = Counter("predictions_total", "Predictions served.", registry=registry)
        predictions.inc(5)

        text = await scrape(client)

        assert samples(text, "predictions_total") == {(): 5.0}

    def test_creating_many_apps_does_not_collide(self) -> None:
        # The global registry would raise "Duplicated timeseries" on the second app.
        apps = [create_service_app(title=f"s{i}", version="0") for i in range(3)]

        assert len({id(app.state.metrics_registry) for app in apps}) == 3
