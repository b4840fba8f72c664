"""HTTP API: v1 (offset pages, float prices) and v2 (keyset cursors, exact money).

Every route serves an operation of `tessera_contracts` (`v1.OPERATIONS`,
`v2.OPERATIONS`) whose owner is the catalog; the operations carry their paths.
"""

from fastapi import APIRouter

from tessera_catalog.api.v1 import inventory as inventory_v1
from tessera_catalog.api.v1 import products as products_v1
from tessera_catalog.api.v1 import reviews as reviews_v1
from tessera_catalog.api.v2 import products as products_v2

# Each resource router is included into the app directly (`create_service_app(routers=)`):
# FastAPI matches included routers level by level at request time, so a nested
# tree of routers costs every request a little more.
ROUTERS: tuple[APIRouter, ...] = (
    products_v1.router,
    reviews_v1.router,
    inventory_v1.router,
    products_v2.router,
)
