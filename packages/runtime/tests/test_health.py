"""Liveness, readiness checks and draining."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI, Request
from tessera_contracts.health import HealthReport
from tessera_contracts.problem import PROBLEM_MEDIA_TYPE, Problem
from tessera_runtime import ReadinessCheck, begin_draining, create_service_app, is_draining
from tessera_runtime.health import redact

from .conftest import Probes, build_demo_app


class TestHealthz:
    async def test_reports_service_and_version(self, client: httpx.AsyncClient) -> None:
        response = await client.get("/healthz")

        assert response.status_code == 200
        report = HealthReport.model_validate_json(response.content)
        assert report == HealthReport(status="ok", service="demo", version="1.2.3", checks={})

    @pytest.mark.parametrize("path", ["/healthz", "/readyz"])
    async def test_head_answers_the_status_and_headers_of_get(
        self, client: httpx.AsyncClient, path: str
    ) -> None:
        get = await client.get(path)
        head = await client.head(path)

        assert head.status_code == get.status_code == 200
        assert head.content == b""
        assert head.headers["content-type"] == get.headers["content-type"]

    async def test_stays_ok_while_a_dependency_is_down(
        self, client: httpx.AsyncClient, probes: Probes
    ) -> None:
        probes.postgres_error = ConnectionRefusedError("refused")

        response = await client.get("/healthz")

        assert response.status_code == 200

    async def test_service_name_can_differ_from_the_title(self) -> None:
        app = create_service_app(title="Tessera API", version="2", service="gateway")
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://t"
        ) as client:
            report = HealthReport.model_validate_json((await client.get("/healthz")).content)

        assert report.service == "gateway"
        assert app.title == "Tessera API"


class TestReadyz:
    async def test_all_checks_ok_is_200_naming_each(self, client: httpx.AsyncClient) -> None:
        response = await client.get("/readyz")

        assert response.status_code == 200
        assert response.headers["cache-control"] == "no-store"
        report = HealthReport.model_validate_json(response.content)
        assert report.checks == {"postgres": "ok", "nats": "ok"}
        assert report.service == "demo"

    async def test_failing_check_is_503_naming_it_without_secrets(
        self, client: httpx.AsyncClient, probes: Probes
    ) -> None:
        probes.postgres_error = OSError(
            "could not connect to postgresql://tessera:hunter2@db:5432/catalog\n  Traceback..."
        )

        response = await client.get("/readyz")

        assert response.status_code == 503
        assert response.headers["content-type"] == PROBLEM_MEDIA_TYPE
        problem = Problem.model_validate_json(response.content)
        assert problem.detail == "not ready: postgres"
        assert problem.checks is not None
        assert problem.checks["nats"] == "ok"
        reason = problem.checks["postgres"]
        assert reason.startswith("OSError: could not connect to postgresql://***@db:5432/catalog")
        assert "hunter2" not in response.text
        assert "\n" not in reason

    async def test_slow_check_times_out_as_down(
        self, client: httpx.AsyncClient, probes: Probes
    ) -> None:
        probes.nats_delay_s = 5.0

        started = time.perf_counter()
        response = await client.get("/readyz")
        elapsed = time.perf_counter() - started

        assert response.status_code == 503
        problem = Problem.model_validate_json(response.content)
        assert problem.detail == "not ready: nats"
        assert problem.checks == {"postgres": "ok", "nats": "timed out after 0.2s"}
        assert elapsed < 2.0  # the 0.2 s timeout, not the 5 s probe

    async def test_checks_run_concurrently(self) -> None:
        async def slow(request: Request) -> None:
            await asyncio.sleep(0.3)

        app = create_service_app(
            title="t",
            version="0",
            readiness_checks=[ReadinessCheck(name, slow) for name in ("a", "b", "c", "d")],
        )
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://t"
        ) as client:
            started = time.perf_counter()
            response = await client.get("/readyz")
            elapsed = time.perf_counter() - started

        assert response.status_code == 200
        assert elapsed < 0.9  # about one probe's time (0.3 s), not four (1.2 s)

    async def test_several_down_checks_are_all_named(
        self, client: httpx.AsyncClient, probes: Probes
    ) -> None:
        probes.postgres_error = RuntimeError()
        probes.nats_delay_s = 5.0

        response = await client.get("/readyz")

        problem = Problem.model_validate_json(response.content)
        assert problem.detail == "not ready: postgres, nats"
        assert problem.checks == {"postgres": "RuntimeError", "nats": "timed out after 0.2s"}

    async def test_probe_raising_its_own_timeout_is_reported_as_such(self) -> None:
        async def connect_timeout(request: Request) -> None:
            raise TimeoutError("connect timed out")

        app = create_service_app(
            title="t", version="0", readiness_checks=[ReadinessCheck("pg", connect_timeout)]
        )
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://t"
        ) as client:
            response = await client.get("/readyz")

        assert Problem.model_validate_json(response.content).checks == {
            "pg": "TimeoutError: connect timed out"
        }

    def test_duplicate_check_names_are_refused(self) -> None:
        async def ok(request: Request) -> None:
            return None

        with pytest.raises(ValueError, match="unique"):
            create_service_app(
                title="t", version="0", readiness_checks=[ReadinessCheck("x", ok)] * 2
            )


class TestDraining:
    async def test_begin_draining_makes_readyz_503(
        self, client: httpx.AsyncClient, demo_app: FastAPI
    ) -> None:
        assert (await client.get("/readyz")).status_code == 200

        begin_draining(demo_app)
        response = await client.get("/readyz")

        assert response.status_code == 503
        problem = Problem.model_validate_json(response.content)
        assert problem.detail == "draining"
        # Liveness is unaffected: the process must not be restarted while draining.
        assert (await client.get("/healthz")).status_code == 200

    async def test_lifespan_shutdown_drains_and_restart_undrains(self) -> None:
        app = build_demo_app()

        async with LifespanManager(app):
            assert not is_draining(app)
        assert is_draining(app)
        async with LifespanManager(app):
            assert not is_draining(app)

    async def test_readiness_is_false_before_the_service_cleans_up(self) -> None:
        seen: list[bool] = []

        @asynccontextmanager
        async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, object]]:
            yield {}
            seen.append(is_draining(app))

        app = create_service_app(title="t", version="0", lifespan=lifespan)
        async with LifespanManager(app):
            pass

        assert seen == [True]


class TestRedact:
    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("nats://user:pw@nats:4222 refused", "nats://***@nats:4222 refused"),
            ("dsn host=db password=hunter2 user=x", "dsn host=db password=*** user=x"),
            ("token: 'abc def' rejected", "token: *** rejected"),
            ("line one\nline two", "line one line two"),
        ],
    )
    def test_removes_credentials_and_newlines(self, text: str, expected: str) -> None:
        assert redact(text) == expected

    def test_truncates_long_reasons(self) -> None:
        assert len(redact("x" * 1000)) == 200


async def test_operational_endpoints_are_not_in_the_openapi_schema(
    client: httpx.AsyncClient,
) -> None:
    paths = (await client.get("/openapi.json")).json()["paths"]

    for hidden in ("/healthz", "/readyz", "/metrics", "/docs", "/redoc"):
        assert hidden not in paths
    assert "/v1/products/{product_id}" in paths
