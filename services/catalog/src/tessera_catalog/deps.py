"""FastAPI dependencies: the lifespan state's services, typed (`tessera_runtime.deps`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends
from tessera_runtime.deps import from_state

from tessera_catalog.domain.enriched import Enricher
from tessera_catalog.domain.inventory import Inventories
from tessera_catalog.domain.products import Products
from tessera_catalog.domain.reviews import Reviews

get_products = from_state("products", Products)
get_reviews = from_state("reviews", Reviews)
get_inventories = from_state("inventories", Inventories)
get_enricher = from_state("enricher", Enricher)

ProductsDep = Annotated[Products, Depends(get_products)]
ReviewsDep = Annotated[Reviews, Depends(get_reviews)]
InventoriesDep = Annotated[Inventories, Depends(get_inventories)]
EnricherDep = Annotated[Enricher, Depends(get_enricher)]
