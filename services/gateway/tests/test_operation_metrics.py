"""The gateway's proxied operations in the per-operation metrics, served by its ProxyRouter."""

from __future__ import annotations

import httpx
from prometheus_client.openmetrics.parser import text_string_to_metric_families
from tessera_stack.testing import MALIGNANT

from .conftest import Keys, MakeGateway

OPENMETRICS = {"Accept": "application/openmetrics-text; version=1.0.0"}


def operation_samples(page: str, name: str) -> dict[tuple[str, ...], float]:
    """(operation[, status]) -> value of one per-operation sample, from an OpenMetrics page
    (which the parser checks)."""
    families = text_string_to_metric_families(page)  # type: ignore[no-untyped-call]
    found: dict[tuple[str, ...], float] = {}
    for family in families:
        for sample in family.samples:
            if sample.name == name:
                labels = dict(sample.labels)
                assert labels.pop("service") == "gateway"
                key = (
                    labels.pop("operation"),
                    *([labels.pop("status")] if "status" in labels else []),
                )
                assert labels == {}
                found[key] = sample.value
    return found


async def test_proxied_operations_are_counted_by_operation_id(
    make_gateway: MakeGateway, keys: Keys
) -> None:
    # Both upstreams refuse connections (the default settings): every forward is a 503.
    async with make_gateway() as gateway:
        predictor = keys.bearer(keys.predictor)
        await gateway.post("/v1/predict", json={"features": MALIGNANT}, headers=predictor)
        await gateway.post("/v1/predict", json={"features": MALIGNANT})  # no key: 401
        await gateway.get("/v1/products", headers=keys.bearer(keys.reader))
        # HEAD is the GET operation without its body (a route of its own, same operation).
        await gateway.head("/v1/products", headers=keys.bearer(keys.reader))
        await gateway.get("/healthz")
        page = (await gateway.get("/metrics", headers=OPENMETRICS)).text

    assert operation_samples(page, "tessera_operation_requests_total") == {
        ("v1_predict", "503"): 1,
        ("v1_predict", "401"): 1,
        ("v1_list_products", "503"): 2,
    }
    assert operation_samples(page, "tessera_operation_errors_total") == {
        ("v1_predict", "503"): 1,
        ("v1_list_products", "503"): 2,
    }
    assert operation_samples(page, "tessera_operation_duration_seconds_count") == {
        ("v1_predict",): 2,
        ("v1_list_products",): 2,
    }


async def test_an_answered_operation_is_a_request_and_no_error(
    gateway: httpx.AsyncClient, keys: Keys
) -> None:
    response = await gateway.post(
        "/v1/predict", json={"features": MALIGNANT}, headers=keys.bearer(keys.predictor)
    )
    assert response.status_code == 200

    page = (await gateway.get("/metrics", headers=OPENMETRICS)).text

    assert operation_samples(page, "tessera_operation_requests_total") == {("v1_predict", "200"): 1}
    assert operation_samples(page, "tessera_operation_errors_total") == {}
