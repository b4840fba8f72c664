"""What the shared plumbing gives the inference app: docs, health, request ids."""

from __future__ import annotations

import httpx


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
