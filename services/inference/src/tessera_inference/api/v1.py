"""v1: `POST /v1/predict`, the seed contract (`v1.PREDICT_OPERATION`)."""

from __future__ import annotations

from fastapi import APIRouter, Response
from tessera_contracts import v1
from tessera_runtime.operations import implements

from tessera_inference.deps import ServiceDep

router = APIRouter()


@implements(router, v1.PREDICT_OPERATION)
async def predict(body: v1.PredictionRequest, service: ServiceDep) -> Response:
    answer = await service.predict_v1(body, "v1")
    # Serialised here rather than returned: FastAPI would validate the model it
    # was just built from a second time, a measurable share of a prediction.
    return Response(answer.model_dump_json(), media_type="application/json")
