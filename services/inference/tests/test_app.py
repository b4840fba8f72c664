"""What the shared plumbing gives the inference app: docs, health, request ids."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import httpx
from asgi_lifespan import LifespanManager
from prometheus_client import CollectorRegistry
from pydantic import BaseModel
from tessera_contracts import v2
from tessera_contracts.problem import PROBLEM_MEDIA_TYPE, Problem
from tessera_inference.app import create_app
from tessera_inference.deps import get_service
from tessera_inference.domain.registry import ModelRegistry
from tessera_inference.domain.service import InferenceService
from tessera_inference.metrics import InferenceMetrics
from tessera_inference.settings import PACKAGED_MODELS, Settings

# What each documented error schema is, to check an answer against its document.
MODELS: dict[str, type[BaseModel]] = {
    "#/components/schemas/Problem": Problem,
    "#/components/schemas/InferenceErrorResponse": v2.InferenceErrorResponse,
}


async def test_openapi_documents_both_api_versions(client: httpx.AsyncClient) -> None:
    response = await client.get("/openapi.json")

    paths = response.json()["paths"]
    assert "/v1/predict" in paths
    assert "/v2/models/{name}/versions/{version}/infer" in paths
    v1_ok = paths["/v1/predict"]["post"]["responses"]["200"]["content"]["application/json"]
    assert v1_ok["schema"]["$ref"].endswith("/PredictionResponse")


async def test_docs_and_liveness(client: httpx.AsyncClient) -> None:
    assert (await client.get("/docs")).status_code == 200
    assert (await client.get("/healthz")).json()["service"] == "inference"


async def test_the_request_id_is_returned(client: httpx.AsyncClient, benign: list[float]) -> None:
    response = await client.post(
        "/v1/predict", json={"features": benign}, headers={"X-Request-ID": "abc-123"}
    )

    assert response.headers["X-Request-ID"] == "abc-123"


async def test_readiness_lists_the_models_check(client: httpx.AsyncClient) -> None:
    response = await client.get("/readyz")

    assert response.status_code == 200
    assert response.json()["checks"] == {"models": "ok"}


async def test_the_oip_operations_document_only_the_protocol_s_errors(
    client: httpx.AsyncClient,
) -> None:
    paths = (await client.get("/openapi.json")).json()["paths"]

    oip = [
        (path, operation)
        for path, item in paths.items()
        if path.startswith("/v2/models/")
        for operation in item.values()
    ]
    assert len(oip) == 6
    for path, operation in oip:
        errors = {code: r for code, r in operation["responses"].items() if int(code) >= 400}
        assert set(errors) == {"400", "404", "503"}, path  # no 422: OIP has 400 for those
        for response in errors.values():
            assert response["content"] == {
                "application/json": {
                    "schema": {"$ref": "#/components/schemas/InferenceErrorResponse"}
                }
            }


async def test_a_body_that_is_not_utf8_gets_the_documented_answer_on_every_operation(
    serve_http: Any, settings: Settings
) -> None:
    async with serve_http(settings) as client:
        paths = (await client.get("/openapi.json")).json()["paths"]
        operations = [
            (method, path, operation)
            for path, item in paths.items()
            for method, operation in item.items()
            if "requestBody" in operation
        ]
        assert len(operations) == 3  # /v1/predict and the two /v2 infers
        for method, path, operation in operations:
            url = path.format(name="breast-cancer", version="1.0")
            response = await client.request(
                method, url, content=b"\xff", headers={"content-type": "application/json"}
            )

            status = str(response.status_code)
            assert status in operation["responses"], f"{method} {path}: {status} undocumented"
            [(media_type, content)] = operation["responses"][status]["content"].items()
            assert response.headers["content-type"] == media_type
            MODELS[content["schema"]["$ref"]].model_validate_json(response.content)
            assert status == ("400" if path.startswith("/v2/") else "422")
            assert media_type == (
                "application/json" if path.startswith("/v2/") else PROBLEM_MEDIA_TYPE
            )


async def test_routes_get_their_service_from_a_dependency_a_test_can_override(
    tmp_path: Path,
) -> None:
    # Another service (a model directory with version 1.0 only) behind the same routes:
    # `get_service` is an ordinary FastAPI dependency, so `dependency_overrides` swaps it.
    only_v1 = tmp_path / "models"
    for model in PACKAGED_MODELS.iterdir():
        if model.is_dir():
            shutil.copytree(model / "1.0", only_v1 / model.name / "1.0")
    settings = Settings(nats_enabled=False, model_dir=only_v1)
    other = InferenceService(
        ModelRegistry.load(only_v1), settings, InferenceMetrics(CollectorRegistry())
    )

    async def other_service() -> InferenceService:
        return other

    app = create_app(Settings(nats_enabled=False))
    try:
        async with LifespanManager(app) as manager:
            transport = httpx.ASGITransport(app=manager.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://x") as client:
                app.dependency_overrides[get_service] = other_service
                overridden = await client.get("/v2/models/breast-cancer")
                app.dependency_overrides.clear()
                packaged = await client.get("/v2/models/breast-cancer")
    finally:
        await other.close()

    assert overridden.json()["versions"] == ["1.0"]
    assert packaged.json()["versions"] == ["1.0", "2.0"]
