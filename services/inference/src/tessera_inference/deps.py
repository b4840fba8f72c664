"""FastAPI dependencies: the lifespan state a route needs."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from tessera_inference.domain.service import InferenceService


async def get_service(request: Request) -> InferenceService:
    # async: FastAPI runs a plain `def` dependency on its thread pool, a thread hop per request.
    service: InferenceService = request.state.service
    return service


ServiceDep = Annotated[InferenceService, Depends(get_service)]
