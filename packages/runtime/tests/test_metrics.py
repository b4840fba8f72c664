"""Prometheus metrics labelled by route template, one registry per app."""

from __future__ import annotations

import httpx
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


class TestRouteLabels:
    async def test_nested_router_route_is_labelled_by_full_template(
        self, client: httpx.AsyncClient
    ) -> None:
        await client.get("/v1/products/1234567")
        await client.get("/v1/products/7654321")

        text = await scrape(client)

        assert requests_total(text, "GET", "/v1/products/{product_id}", "200") == 2
        assert "1234567" not in text
        assert "7654321" not in text
        durations = samples(text, "http_request_duration_seconds_count")
        assert durations[(("method", "GET"), ("route", "/v1/products/{product_id}"))] == 2

    async def test_app_route_is_labelled_by_template(self, client: httpx.AsyncClient) -> None:
        await client.get("/top/alice")

        text = await scrape(client)

        assert requests_total(text, "GET", "/top/{name}", "200") == 1
        assert "alice" not in text

    async def test_plain_starlette_routes_and_mounts_are_labelled(
        self, client: httpx.AsyncClient
    ) -> None:
        await client.get("/openapi.json")
        await client.get("/static/docs/favicon.png")

        text = await scrape(client)

        assert requests_total(text, "GET", "/openapi.json", "200") == 1
        assert requests_total(text, "GET", "/static/docs/{path}", "200") == 1
        assert "favicon" not in text

    async def test_unmatched_paths_share_one_label(self, client: httpx.AsyncClient) -> None:
        await client.get("/random/abc")
        await client.get("/random/def")

        text = await scrape(client)

        assert requests_total(text, "GET", "<unmatched>", "404") == 2
        assert "/random" not in text

    async def test_status_of_errors_and_405_is_recorded(self, client: httpx.AsyncClient) -> None:
        await client.get("/v1/products/404")
        await client.get("/v1/products/500")
        await client.delete("/v1/products/1")

        text = await scrape(client)

        route = "/v1/products/{product_id}"
        assert requests_total(text, "GET", route, "404") == 1
        assert requests_total(text, "GET", route, "500") == 1
        assert requests_total(text, "DELETE", route, "405") == 1

    async def test_unknown_methods_are_folded(self, client: httpx.AsyncClient) -> None:
        await client.request("BREW", "/v1/products/1")

        text = await scrape(client)

        assert requests_total(text, "OTHER", "/v1/products/{product_id}", "405") == 1
        assert "BREW" not in text


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
