"""v1: `/v1/products` with offset pages and float prices, reviews, inventory, enriched."""

from fastapi import APIRouter

from tessera_catalog.api.v1 import inventory, products, reviews

router = APIRouter(prefix="/v1")
router.include_router(products.router)
router.include_router(reviews.router)
router.include_router(inventory.router)
