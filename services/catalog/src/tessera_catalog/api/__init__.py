"""HTTP API: v1 (offset pages, float prices) and v2 (keyset cursors, exact money)."""

from fastapi import APIRouter

from tessera_catalog.api.v1 import router as v1_router
from tessera_catalog.api.v2 import router as v2_router

router = APIRouter()
router.include_router(v1_router)
router.include_router(v2_router)
