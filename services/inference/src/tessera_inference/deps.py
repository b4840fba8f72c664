"""FastAPI dependencies: the lifespan state a route needs."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from tessera_inference.service import InferenceService


def get_service(request: Request) -> InferenceService:
    service: InferenceService = request.state.service
    return service


ServiceDep = Annotated[InferenceService, Depends(get_service)]
