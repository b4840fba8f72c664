"""The metric series each service really exports, read from its own /metrics.

Each app is built and started (its lifespan opens the catalog's pool, whose
gauges exist only then) on the test's PostgreSQL and NATS, and scraped once the
way Prometheus scrapes it. A metric with labels but no series yet still shows
its family (HELP and TYPE lines), so the names do not depend on traffic.
"""

from __future__ import annotations

from collections.abc import Iterable

from fastapi import FastAPI
from prometheus_client.metrics_core import Metric
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as openmetrics_families,
)
from prometheus_client.parser import text_string_to_metric_families as text_families
from pydantic import PostgresDsn
from tessera_catalog.app import create_app as create_catalog
from tessera_catalog.db.migrate import apply_migrations
from tessera_catalog.settings import Settings as CatalogSettings
from tessera_gateway.app import create_app as create_gateway
from tessera_gateway.settings import Settings as GatewaySettings
from tessera_inference.app import create_app as create_inference
from tessera_inference.settings import Settings as InferenceSettings
from tessera_stack.testing import asgi_client

# What Prometheus sends when it scrapes (its default scrape protocols, in order).
PROMETHEUS_ACCEPT = (
    "application/openmetrics-text;version=1.0.0,application/openmetrics-text;"
    "version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
)

# The series names a family of each type is stored under in Prometheus. The
# `_created` samples are left out: Prometheus drops them unless told otherwise.
_SUFFIXES = {
    "counter": ("_total",),
    "gauge": ("",),
    "histogram": ("_bucket", "_count", "_sum"),
    "gaugehistogram": ("_bucket", "_gcount", "_gsum"),
    "summary": ("", "_count", "_sum"),
    "info": ("_info",),
    "stateset": ("",),
    "unknown": ("",),
    "untyped": ("",),
}


def series_names(families: Iterable[Metric]) -> frozenset[str]:
    names: set[str] = set()
    for family in families:
        names.update(family.name + suffix for suffix in _SUFFIXES[family.type])
        names.update(s.name for s in family.samples if not s.name.endswith("_created"))
    return frozenset(names)


async def _app(service: str, database_url: str, nats_url: str) -> FastAPI:
    if service == "gateway":
        return create_gateway(GatewaySettings(nats_url=nats_url))
    if service == "catalog":
        await apply_migrations(database_url)
        return create_catalog(
            CatalogSettings(database_url=PostgresDsn(database_url), nats_url=nats_url)
        )
    if service == "inference":
        return create_inference(InferenceSettings(nats_url=nats_url))
    raise AssertionError(f"unknown service {service}")


async def exported_series(service: str, database_url: str, nats_url: str) -> frozenset[str]:
    """The series names `service` exports at /metrics once started."""
    app = await _app(service, database_url, nats_url)
    async with asgi_client(app, f"http://{service}", lifespan_timeout_s=30) as client:
        response = await client.get("/metrics", headers={"Accept": PROMETHEUS_ACCEPT})
    assert response.status_code == 200, response.text
    if response.headers["content-type"].startswith("application/openmetrics-text"):
        # prometheus_client's OpenMetrics parser has no type annotations.
        return series_names(openmetrics_families(response.text))  # type: ignore[no-untyped-call]
    return series_names(text_families(response.text))
