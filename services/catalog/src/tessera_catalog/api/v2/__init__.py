"""v2: `/v2/products` with keyset cursors, exact money and predictions with probabilities."""

from fastapi import APIRouter

from tessera_catalog.api.v2 import products

router = APIRouter(prefix="/v2")
router.include_router(products.router)
