"""The enriched product: concurrent parts, each with its own timeout, degraded when one fails."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import Request
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from tessera_catalog.app import create_app
from tessera_catalog.deps import get_enricher
from tessera_catalog.domain.enriched import Enricher
from tessera_catalog.settings import Settings
from tessera_contracts import PROBLEM_HEADERS, v1
from tessera_contracts.problem import Problem
from tessera_inference.app import create_app as create_inference_app
from tessera_inference.settings import Settings as InferenceSettings
from tessera_stack.testing import Json, NatsServer, WaitUntil, product_body

from .conftest import MakeProduct, Serve, db_connection
from .outbox import wait_nats_connected

Reply = Callable[[v1.PredictionRequest], Awaitable[v1.PredictionResponse | Problem]]
Responder = Callable[[Reply], Awaitable[list[Msg]]]
"""The `responder` fixture: installs a reply, returns the requests it gets."""


def prediction(label_probabilities: bool = True) -> v1.PredictionResponse:
    return v1.PredictionResponse(
        prediction=1,
        confidence=0.9,
        model_version="v1.0",
        timestamp=datetime.now(UTC),
        processing_time_ms=0.1,
        label="benign" if label_probabilities else None,
        probabilities={"malignant": 0.1, "benign": 0.9} if label_probabilities else None,
    )


@pytest.fixture
def responder(nc: NATS) -> Responder:
    """Answer `inference.v1.predict` with `reply`; returns the requests received."""

    async def install(reply: Reply) -> list[Msg]:
        received: list[Msg] = []

        async def handle(msg: Msg) -> None:
            received.append(msg)
            answer = await reply(v1.PREDICT.decode_request(msg.data))
            if isinstance(answer, Problem):
                await nc.publish(
                    msg.reply, v1.PREDICT.encode_problem(answer), headers=dict(PROBLEM_HEADERS)
                )
            else:
                await msg.respond(v1.PREDICT.encode_reply(answer))

        await nc.subscribe(v1.PREDICT.name, cb=handle)
        await nc.flush()
        return received

    return install


@asynccontextmanager
async def table_locked(
    dsn: str, table: str, release_after_s: float | None = None
) -> AsyncIterator[None]:
    """Hold an exclusive lock on `table` (readers block) until the block ends or the delay passes."""
    async with db_connection(dsn) as conn:
        transaction = conn.transaction()
        await transaction.start()
        await conn.execute(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE")

        async def release() -> None:
            if release_after_s is not None:
                await asyncio.sleep(release_after_s)
            await transaction.rollback()

        releaser = asyncio.create_task(release()) if release_after_s is not None else None
        try:
            yield
        finally:
            if releaser is not None:
                await releaser
            else:
                await transaction.rollback()


async def enriched(
    client: httpx.AsyncClient, product_id: str, version: str = "v1"
) -> tuple[Json, float]:
    started = time.perf_counter()
    response = await client.get(f"/{version}/products/{product_id}/enriched")
    elapsed = time.perf_counter() - started
    assert response.status_code == 200, response.text
    body: Json = response.json()
    return body, elapsed


@pytest.fixture
async def connected(client: httpx.AsyncClient, wait_until: WaitUntil) -> httpx.AsyncClient:
    """The client, once the catalog's NATS connection is up (metrics say so)."""
    await wait_nats_connected(client, wait_until)
    return client


class TestEnrichedHappyPath:
    async def test_real_inference_answers_with_everything(
        self,
        connected: httpx.AsyncClient,
        make_product: MakeProduct,
        nats_url: str,
        wait_until: WaitUntil,
    ) -> None:
        client = connected
        product = await make_product()
        url = f"/v1/products/{product['id']}"
        await client.post(f"{url}/reviews", json={"rating": 5, "title": "Great", "author": "Ana"})
        await client.post(f"{url}/reviews", json={"rating": 2, "title": "Meh", "author": "Ben"})
        await client.put(f"{url}/inventory", json={"quantity": 9, "reserved": 1})
        inference_app = create_inference_app(InferenceSettings(nats_url=nats_url))

        async with LifespanManager(inference_app, startup_timeout=30) as manager:
            inference = httpx.AsyncClient(
                transport=httpx.ASGITransport(app=manager.app), base_url="http://inference"
            )

            async def inference_ready() -> bool:
                return (await inference.get("/readyz")).status_code == 200

            await wait_until(inference_ready, what="inference subscribed to NATS")
            body, _ = await enriched(client, product["id"])
            body_v2, _ = await enriched(client, product["id"], "v2")
            await inference.aclose()

        result = v1.EnrichedProduct.model_validate(body)
        assert result.degraded == []
        assert result.product.id == uuid.UUID(product["id"])
        assert [r.title for r in result.reviews] == ["Meh", "Great"]
        assert result.review_summary == v1.ReviewSummary(count=2, average_rating=3.5)
        assert result.inventory is not None
        assert result.inventory.quantity == 9
        assert result.prediction is not None
        # The features are a malignant sample of the training data.
        assert (result.prediction.prediction, result.prediction.label) == (0, "malignant")
        assert body_v2["degraded"] == []
        assert body_v2["product"]["price"] == {"amount": "49.99", "currency": "USD"}
        probabilities = body_v2["prediction"]["probabilities"]
        assert set(probabilities) == {"malignant", "benign"}
        assert probabilities["malignant"] > 0.5
        assert abs(sum(probabilities.values()) - 1) < 1e-6

    async def test_product_without_features_has_no_prediction_and_is_not_degraded(
        self, connected: httpx.AsyncClient, make_product: MakeProduct
    ) -> None:
        product = await make_product(features=None)

        body, _ = await enriched(connected, product["id"])

        assert body["prediction"] is None
        assert body["degraded"] == []
        assert body["review_summary"] == {"count": 0, "average_rating": None}

    async def test_unknown_product_is_404(self, client: httpx.AsyncClient) -> None:
        for version in ("v1", "v2"):
            response = await client.get(f"/{version}/products/{uuid.uuid4()}/enriched")

            assert response.status_code == 404
            assert response.json()["title"] == "ProductNotFound"

    async def test_request_id_and_traceparent_reach_inference(
        self, connected: httpx.AsyncClient, make_product: MakeProduct, responder: Responder
    ) -> None:
        async def answer(_: v1.PredictionRequest) -> v1.PredictionResponse:
            return prediction()

        received = await responder(answer)
        product = await make_product()
        trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"

        response = await connected.get(
            f"/v1/products/{product['id']}/enriched",
            headers={"X-Request-ID": "req-42", "traceparent": f"00-{trace_id}-00f067aa0ba902b7-01"},
        )

        assert response.json()["degraded"] == []
        assert len(received) == 1
        headers = received[0].headers or {}
        assert headers["X-Request-ID"] == "req-42"
        version, forwarded_trace, parent, flags = headers["traceparent"].split("-")
        assert (version, forwarded_trace, flags) == ("00", trace_id, "01")
        assert parent != "00f067aa0ba902b7"  # the catalog's own span is the parent now
        assert v1.PREDICT.decode_request(received[0].data).features == product["features"]


class TestEnrichedDegraded:
    @pytest.fixture
    def settings(self, settings: Settings) -> Settings:
        # Tight budgets, which these tests time against; the pool opens all the
        # connections the three parts need up front, so no budget pays for a connect.
        return settings.model_copy(
            update={
                "pool_min_size": 3,
                "part_timeout_s": 0.5,
                "product_timeout_s": 0.5,
                "prediction_timeout_s": 0.5,
            }
        )

    async def test_slow_inference_is_left_out_after_its_timeout(
        self,
        connected: httpx.AsyncClient,
        make_product: MakeProduct,
        responder: Responder,
        settings: Settings,
    ) -> None:
        async def slow(_: v1.PredictionRequest) -> v1.PredictionResponse:
            await asyncio.sleep(settings.prediction_timeout_s * 3)
            return prediction()

        await responder(slow)
        product = await make_product()
        await connected.put(f"/v1/products/{product['id']}/inventory", json={"quantity": 4})

        body, elapsed = await enriched(connected, product["id"])

        assert body["degraded"] == ["prediction"]
        assert body["prediction"] is None
        assert body["inventory"]["quantity"] == 4
        assert body["review_summary"] == {"count": 0, "average_rating": None}
        assert settings.prediction_timeout_s <= elapsed < settings.prediction_timeout_s * 2.5

    async def test_dead_inference_fails_fast(
        self, connected: httpx.AsyncClient, make_product: MakeProduct, settings: Settings
    ) -> None:
        product = await make_product()  # nobody subscribes to the subject

        body, elapsed = await enriched(connected, product["id"])

        assert body["degraded"] == ["prediction"]
        assert body["product"]["id"] == product["id"]
        assert body["inventory"] is not None
        # No responders is known at once: no need to wait for the timeout.
        assert elapsed < settings.prediction_timeout_s

    async def test_inference_problem_reply_degrades_the_prediction(
        self, connected: httpx.AsyncClient, make_product: MakeProduct, responder: Responder
    ) -> None:
        async def refuse(_: v1.PredictionRequest) -> Problem:
            return Problem(title="ModelNotFound", status=404, detail="no such model")

        await responder(refuse)
        product = await make_product()

        body, _ = await enriched(connected, product["id"])

        assert body["degraded"] == ["prediction"]

    async def test_nats_down_degrades_only_the_prediction(
        self,
        connected: httpx.AsyncClient,
        make_product: MakeProduct,
        nats_server: NatsServer,
        settings: Settings,
    ) -> None:
        product = await make_product()
        nats_server.stop()

        body, elapsed = await enriched(connected, product["id"])

        assert body["degraded"] == ["prediction"]
        assert body["inventory"] is not None
        assert body["review_summary"] is not None
        assert elapsed < settings.prediction_timeout_s

    async def test_v2_needs_class_probabilities(
        self, connected: httpx.AsyncClient, make_product: MakeProduct, responder: Responder
    ) -> None:
        async def old_service(_: v1.PredictionRequest) -> v1.PredictionResponse:
            return prediction(label_probabilities=False)

        await responder(old_service)
        product = await make_product()

        v1_body, _ = await enriched(connected, product["id"], "v1")
        v2_body, _ = await enriched(connected, product["id"], "v2")

        assert v1_body["degraded"] == []
        assert v1_body["prediction"]["confidence"] == 0.9
        assert v2_body["degraded"] == ["prediction"]
        assert v2_body["prediction"] is None

    async def test_slow_reviews_are_left_out_and_the_rest_answers(
        self,
        client: httpx.AsyncClient,
        make_product: MakeProduct,
        migrated_url: str,
        settings: Settings,
    ) -> None:
        product = await make_product(features=None)

        async with table_locked(migrated_url, "reviews"):
            body, elapsed = await enriched(client, product["id"])

        assert body["degraded"] == ["reviews"]
        assert body["reviews"] == []
        assert body["review_summary"] is None
        assert body["inventory"] is not None
        assert settings.part_timeout_s <= elapsed < settings.part_timeout_s * 2.5

    async def test_slow_inventory_is_left_out(
        self, client: httpx.AsyncClient, make_product: MakeProduct, migrated_url: str
    ) -> None:
        product = await make_product(features=None)

        async with table_locked(migrated_url, "inventory"):
            body, _ = await enriched(client, product["id"])

        assert body["degraded"] == ["inventory"]
        assert body["inventory"] is None
        assert body["review_summary"] is not None

    async def test_unreadable_product_is_503(
        self, client: httpx.AsyncClient, make_product: MakeProduct, migrated_url: str
    ) -> None:
        product = await make_product()

        async with table_locked(migrated_url, "products"):
            response = await client.get(f"/v1/products/{product['id']}/enriched")

        assert response.status_code == 503
        assert response.json()["title"] == "ProductUnavailable"
        assert response.headers["retry-after"] == "1"

    async def test_pool_recovers_after_timed_out_parts(
        self, client: httpx.AsyncClient, make_product: MakeProduct, migrated_url: str
    ) -> None:
        product = await make_product(features=None)
        async with table_locked(migrated_url, "reviews"):
            for _ in range(3):
                await enriched(client, product["id"])

        body, _ = await enriched(client, product["id"])

        # The cancelled queries gave their connections back in a usable state.
        assert body["degraded"] == []


class TestLatencyFollowsTheSlowestPart:
    async def test_three_delayed_parts_cost_one_delay_not_three(
        self,
        serve: Serve,
        settings: Settings,
        responder: Responder,
        migrated_url: str,
        wait_until: WaitUntil,
    ) -> None:
        delay = 0.4

        async def slow(_: v1.PredictionRequest) -> v1.PredictionResponse:
            await asyncio.sleep(delay)
            return prediction()

        await responder(slow)
        # The budgets (generous in `settings`) stay out of the way; the pool opens the
        # three parts' connections up front, so the elapsed time is the delays' alone.
        warm_pool = settings.model_copy(update={"pool_min_size": 3})
        async with serve(warm_pool) as client:
            await wait_nats_connected(client, wait_until)
            created = await client.post("/v1/products", json=product_body(sku="SLOW-1"))
            product_id = created.json()["id"]

            # Reviews and inventory each wait `delay` for a lock; inference sleeps `delay`.
            async with (
                table_locked(migrated_url, "reviews", release_after_s=delay),
                table_locked(migrated_url, "inventory", release_after_s=delay),
            ):
                body, elapsed = await enriched(client, product_id)

        assert body["degraded"] == []
        assert body["prediction"] is not None
        assert delay <= elapsed < 2 * delay, f"{elapsed:.3f}s: the parts did not overlap"


async def test_the_enricher_is_a_dependency_a_test_can_override(settings: Settings) -> None:
    # `get_enricher` is an ordinary FastAPI dependency: this app's enriched route
    # gets an Enricher whose part budget nothing meets, the same route otherwise.
    app = create_app(settings)

    async def impatient_enricher(request: Request) -> Enricher:
        real: Enricher = request.state.enricher
        budget = real.settings.model_copy(update={"part_timeout_s": 1e-6})
        return Enricher(real.pool, real.inference, budget, real.metrics)

    async with (
        LifespanManager(app, startup_timeout=10, shutdown_timeout=10) as manager,
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=manager.app), base_url="http://catalog"
        ) as client,
    ):
        created = await client.post(
            "/v1/products", json=product_body("TSR-OVERRIDE", features=None)
        )
        url = f"/v1/products/{created.json()['id']}/enriched"
        app.dependency_overrides[get_enricher] = impatient_enricher
        overridden = (await client.get(url)).json()
        app.dependency_overrides.clear()
        normal = (await client.get(url)).json()

    assert created.status_code == 201
    assert {"reviews", "inventory"} <= set(overridden["degraded"])
    assert normal["degraded"] == []
