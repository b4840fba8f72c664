"""RED metrics per contract operation, and the OpenMetrics exposition with exemplars."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import ClassVar
from uuid import UUID, uuid4

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import APIRouter, FastAPI
from fastapi.responses import Response
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as openmetrics_families,
)
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample
from tessera_contracts import v1
from tessera_runtime import ServiceError, create_service_app
from tessera_runtime.operations import implements
from tessera_runtime.tracing import configure_tracing
from tessera_stack.otlp_receiver import otlp_receiver

MISSING = UUID(int=404)
UNAVAILABLE = UUID(int=503)
BROKEN = UUID(int=500)
OPENMETRICS = "application/openmetrics-text; version=1.0.0"
# As Prometheus asks for it: OpenMetrics first, the classic format as a fallback.
PROMETHEUS_ACCEPT = (
    "application/openmetrics-text;version=1.0.0;q=0.5,text/plain;version=0.0.4;q=0.4,*/*;q=0.1"
)


class ProductNotFound(ServiceError):
    status_code: ClassVar[int] = 404


class StoreUnavailable(ServiceError):
    status_code: ClassVar[int] = 503


def operations_app(service: str | None = None) -> FastAPI:
    """An app serving two contract operations, and a plain route that serves none."""
    router = APIRouter()

    @implements(router, v1.GET_PRODUCT)
    async def get_product(product_id: UUID) -> Response:
        if product_id == MISSING:
            raise ProductNotFound(f"product {product_id} not found")
        if product_id == UNAVAILABLE:
            raise StoreUnavailable("the store is down")
        if product_id == BROKEN:
            raise RuntimeError("a bug")
        return Response("{}", media_type="application/json")

    @implements(router, v1.DELETE_PRODUCT)
    async def delete_product(product_id: UUID) -> Response:
        return Response(status_code=204)

    @router.get("/plain/{name}")
    async def plain(name: str) -> dict[str, str]:
        return {"name": name}

    return create_service_app(title="shop", version="0", routers=[router], service=service)


@asynccontextmanager
async def running(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with LifespanManager(app) as manager:
        # raise_app_exceptions=False: the bug's 500 reaches the client as a server sends it.
        transport = httpx.ASGITransport(app=manager.app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://shop") as client:
            yield client


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with running(operations_app()) as client:
        yield client


@pytest.fixture
def traced() -> Iterator[None]:
    """Tracing on (spans exported to a receiver of the test's own) for the test."""
    with otlp_receiver() as receiver:
        configure_tracing("shop", "0", environ={"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint})
        try:
            yield
        finally:
            configure_tracing("shop", "0", environ={})


def traceparent(trace_id: str, flags: str) -> dict[str, str]:
    return {"traceparent": f"00-{trace_id}-{'b' * 16}-{flags}"}


def classic_samples(text: str, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    """Values of one sample name, keyed by sorted label pairs (the classic text format)."""
    return {
        tuple(sorted(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name
    }


def openmetrics_samples(text: str, name: str) -> list[Sample]:
    """The samples of one name in an OpenMetrics exposition (which the parser checks)."""
    # prometheus_client leaves the OpenMetrics parser unannotated.
    families = openmetrics_families(text)  # type: ignore[no-untyped-call]
    return [sample for family in families for sample in family.samples if sample.name == name]


def op(
    operation: str, status: str | None = None, service: str = "shop"
) -> tuple[tuple[str, str], ...]:
    labels = {"service": service, "operation": operation}
    if status is not None:
        labels["status"] = status
    return tuple(sorted(labels.items()))


async def classic(client: httpx.AsyncClient) -> str:
    response = await client.get("/metrics")
    assert response.status_code == 200
    return response.text


class TestOperationCounts:
    async def test_every_answer_of_an_operation_is_counted_by_status(
        self, client: httpx.AsyncClient
    ) -> None:
        for product in (uuid4(), uuid4(), MISSING, UNAVAILABLE, BROKEN):
            await client.get(f"/v1/products/{product}")
        await client.get("/v1/products/not-a-uuid")  # 422
        await client.delete(f"/v1/products/{uuid4()}")

        text = await classic(client)

        assert classic_samples(text, "tessera_operation_requests_total") == {
            op("v1_get_product", "200"): 2,
            op("v1_get_product", "404"): 1,
            op("v1_get_product", "422"): 1,
            op("v1_get_product", "500"): 1,
            op("v1_get_product", "503"): 1,
            op("v1_delete_product", "204"): 1,
        }

    async def test_only_server_errors_are_errors(self, client: httpx.AsyncClient) -> None:
        for product in (uuid4(), MISSING, UNAVAILABLE, BROKEN):
            await client.get(f"/v1/products/{product}")
        await client.get("/v1/products/not-a-uuid")

        errors = classic_samples(await classic(client), "tessera_operation_errors_total")

        assert errors == {op("v1_get_product", "500"): 1, op("v1_get_product", "503"): 1}

    async def test_each_request_is_timed_once_per_operation(
        self, client: httpx.AsyncClient
    ) -> None:
        for product in (uuid4(), MISSING, BROKEN):
            await client.get(f"/v1/products/{product}")
        await client.delete(f"/v1/products/{uuid4()}")

        text = await classic(client)
        counts = classic_samples(text, "tessera_operation_duration_seconds_count")
        sums = classic_samples(text, "tessera_operation_duration_seconds_sum")

        assert counts == {op("v1_get_product"): 3, op("v1_delete_product"): 1}
        assert sums[op("v1_get_product")] > 0

    async def test_requests_that_are_no_operation_are_not_counted(
        self, client: httpx.AsyncClient
    ) -> None:
        for path in ("/plain/x", "/healthz", "/readyz", "/docs", "/openapi.json", "/nowhere"):
            await client.get(path)
        # A method the operation's path does not have: a 405 of no operation.
        await client.put(f"/v1/products/{uuid4()}")
        await client.get("/metrics")

        text = await classic(client)

        assert classic_samples(text, "tessera_operation_requests_total") == {}
        assert classic_samples(text, "tessera_operation_duration_seconds_count") == {}
        # The HTTP metrics still count them all.
        assert (
            classic_samples(text, "http_requests_total")[
                (("method", "PUT"), ("route", "/v1/products/{product_id}"), ("status", "405"))
            ]
            == 1
        )

    async def test_the_service_label_is_the_service_name(self) -> None:
        async with running(operations_app(service="gateway")) as client:
            await client.get(f"/v1/products/{uuid4()}")

            requests = classic_samples(await classic(client), "tessera_operation_requests_total")

            assert requests == {op("v1_get_product", "200", service="gateway"): 1}


class TestExposition:
    async def test_the_classic_text_format_is_the_default(self, client: httpx.AsyncClient) -> None:
        await client.get(f"/v1/products/{uuid4()}", headers=traceparent("a" * 32, "01"))

        response = await client.get("/metrics")

        assert response.headers["content-type"] == "text/plain; version=1.0.0; charset=utf-8"
        # The classic format has no exemplars, and the observation is there.
        assert 'trace_id="' not in response.text
        assert classic_samples(response.text, "tessera_operation_duration_seconds_count") == {
            op("v1_get_product"): 1
        }

    @pytest.mark.parametrize(
        "accept", [OPENMETRICS, PROMETHEUS_ACCEPT], ids=["plain", "prometheus"]
    )
    async def test_openmetrics_is_served_to_who_accepts_it(
        self, client: httpx.AsyncClient, accept: str
    ) -> None:
        response = await client.get("/metrics", headers={"Accept": accept})

        assert response.status_code == 200
        assert response.headers["content-type"] == (
            "application/openmetrics-text; version=1.0.0; charset=utf-8"
        )
        assert response.text.endswith("# EOF\n")

    @pytest.mark.usefixtures("traced")
    async def test_a_sampled_request_leaves_its_trace_id_as_exemplar(
        self, client: httpx.AsyncClient
    ) -> None:
        trace_id = uuid4().hex
        await client.get(f"/v1/products/{uuid4()}", headers=traceparent(trace_id, "01"))

        response = await client.get("/metrics", headers={"Accept": OPENMETRICS})
        buckets = openmetrics_samples(response.text, "tessera_operation_duration_seconds_bucket")

        exemplars = [sample.exemplar for sample in buckets if sample.exemplar is not None]
        assert [exemplar.labels for exemplar in exemplars] == [{"trace_id": trace_id}]
        # On the first bucket the duration falls in: its value is that duration.
        (exemplar,) = exemplars
        bucket = next(sample for sample in buckets if sample.exemplar is exemplar)
        assert 0 < exemplar.value <= float(bucket.labels["le"])

    @pytest.mark.usefixtures("traced")
    async def test_an_unsampled_request_leaves_no_exemplar(self, client: httpx.AsyncClient) -> None:
        await client.get(f"/v1/products/{uuid4()}", headers=traceparent(uuid4().hex, "00"))

        response = await client.get("/metrics", headers={"Accept": OPENMETRICS})
        buckets = openmetrics_samples(response.text, "tessera_operation_duration_seconds_bucket")

        assert buckets  # the request was observed ...
        assert [sample.exemplar for sample in buckets if sample.exemplar is not None] == []

    async def test_with_tracing_off_no_trace_is_claimed(self, client: httpx.AsyncClient) -> None:
        # A caller's sampled flag is no trace anyone recorded here.
        await client.get(f"/v1/products/{uuid4()}", headers=traceparent(uuid4().hex, "01"))
        await client.get(f"/v1/products/{uuid4()}")

        response = await client.get("/metrics", headers={"Accept": OPENMETRICS})
        buckets = openmetrics_samples(response.text, "tessera_operation_duration_seconds_bucket")

        assert buckets  # the requests were observed ...
        assert [sample.exemplar for sample in buckets if sample.exemplar is not None] == []

    async def test_the_openmetrics_exposition_counts_as_the_classic_one(
        self, client: httpx.AsyncClient
    ) -> None:
        for product in (uuid4(), BROKEN):
            await client.get(f"/v1/products/{product}")

        response = await client.get("/metrics", headers={"Accept": OPENMETRICS})
        requests = openmetrics_samples(response.text, "tessera_operation_requests_total")
        errors = openmetrics_samples(response.text, "tessera_operation_errors_total")

        assert {s.labels["status"]: s.value for s in requests} == {"200": 1, "500": 1}
        assert {s.labels["status"]: s.value for s in errors} == {"500": 1}
