"""The smallest idiomatic FastAPI + asyncpg app doing the catalog's primary-key read.

The catalog's baseline in `bench/scenarios/catalog.py`: the same query on the same
database, answered through FastAPI's `response_model` validation, with no logs,
metrics, request ids, ETags or problem handling. What the catalog costs above it
is what those features (and its structure) cost.

    BARE_DATABASE_URL=postgresql://... uvicorn bench.bare_catalog:create_app --factory
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from uuid import UUID

import asyncpg
from fastapi import FastAPI, HTTPException, Request
from tessera_contracts import v1

QUERY = (
    "SELECT id, sku, name, description, category, price::float8 AS price, currency, "
    "features, version, created_at, updated_at FROM products WHERE id = $1"
)


def create_app() -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        pool = await asyncpg.create_pool(os.environ["BARE_DATABASE_URL"], min_size=1, max_size=10)
        try:
            yield {"pool": pool}
        finally:
            await pool.close()

    app = FastAPI(lifespan=lifespan)

    @app.get("/v1/products/{product_id}", response_model=v1.Product)
    async def get_product(product_id: UUID, request: Request) -> dict[str, Any]:
        pool: asyncpg.Pool = request.state.pool
        row = await pool.fetchrow(QUERY, product_id)
        if row is None:
            raise HTTPException(404, "product not found")
        return dict(row)

    @app.get("/readyz")
    async def ready() -> dict[str, str]:
        return {"status": "ok"}

    return app
