"""FastAPI dependencies: the lifespan state a route needs."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends
from tessera_runtime.deps import from_state

from tessera_inference.domain.service import InferenceService

get_service = from_state("service", InferenceService)

ServiceDep = Annotated[InferenceService, Depends(get_service)]
