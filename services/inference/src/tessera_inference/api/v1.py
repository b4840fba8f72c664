"""v1: `POST /v1/predict`, the seed contract."""

from __future__ import annotations

from fastapi import APIRouter
from tessera_contracts import v1
from tessera_stack.web import problem_responses

from tessera_inference.deps import ServiceDep

router = APIRouter(prefix="/v1", tags=["v1"])


@router.post("/predict", responses=problem_responses(404, 422, 503))
async def predict(body: v1.PredictionRequest, service: ServiceDep) -> v1.PredictionResponse:
    """Classify one sample with the default model at `model_version` (404 if unknown)."""
    return await service.predict_v1(body, "v1")
