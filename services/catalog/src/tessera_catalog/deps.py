"""FastAPI dependencies: the lifespan state's services, typed.

They are `async def` on purpose: FastAPI runs a plain `def` dependency in a
worker thread, a hop per request that costs more than the lookup itself.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from tessera_catalog.domain.enriched import Enricher
from tessera_catalog.domain.inventory import Inventories
from tessera_catalog.domain.products import Products
from tessera_catalog.domain.reviews import Reviews


async def get_products(request: Request) -> Products:
    products: Products = request.state.products
    return products


async def get_reviews(request: Request) -> Reviews:
    reviews: Reviews = request.state.reviews
    return reviews


async def get_inventories(request: Request) -> Inventories:
    inventories: Inventories = request.state.inventories
    return inventories


async def get_enricher(request: Request) -> Enricher:
    enricher: Enricher = request.state.enricher
    return enricher


ProductsDep = Annotated[Products, Depends(get_products)]
ReviewsDep = Annotated[Reviews, Depends(get_reviews)]
InventoriesDep = Annotated[Inventories, Depends(get_inventories)]
EnricherDep = Annotated[Enricher, Depends(get_enricher)]
