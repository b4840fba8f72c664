"""The gateway's server bounds request headers (issue 9): 431 before any routing or proxying."""

from __future__ import annotations

from collections.abc import Callable

import httpx
from pydantic import HttpUrl
from tessera_contracts.problem import PROBLEM_MEDIA_TYPE
from tessera_gateway.app import create_app
from tessera_gateway.settings import Settings

from .conftest import Keys, Tap, serve


class TestHeaderLimits:
    async def test_headers_over_the_limit_get_431_problem(
        self, gateway_settings: Callable[..., Settings]
    ) -> None:
        settings = gateway_settings(max_header_bytes=4096)
        async with (
            serve(create_app(settings), settings=settings) as url,
            httpx.AsyncClient(base_url=url) as client,
        ):
            ok = await client.get("/healthz", headers={"X-Pad": "p" * 3000})
            refused = await client.get("/healthz", headers={"X-Pad": "p" * 5000})

        assert ok.status_code == 200
        assert refused.status_code == 431
        assert refused.headers["content-type"] == PROBLEM_MEDIA_TYPE
        assert refused.headers["connection"] == "close"
        assert "4096 bytes" in refused.json()["detail"]

    async def test_a_5_mb_header_on_a_proxied_route_never_reaches_the_catalog(
        self, gateway_settings: Callable[..., Settings], catalog_url: str, keys: Keys
    ) -> None:
        tap = Tap(catalog_url)
        async with serve(tap) as tapped:
            settings = gateway_settings(catalog_url=HttpUrl(tapped))
            async with (
                serve(create_app(settings), settings=settings) as url,
                httpx.AsyncClient(base_url=url, headers=keys.bearer(keys.reader)) as client,
            ):
                refused = await client.get("/v1/products", headers={"X-Big": "b" * 5_000_000})
                served = await client.get("/v1/products")

        assert refused.status_code == 431
        assert "61440 bytes" in refused.json()["detail"]
        assert served.status_code == 200
        assert [(method, path) for method, path, _ in tap.seen] == [("GET", "/v1/products")]
