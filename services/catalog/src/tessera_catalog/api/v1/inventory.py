"""v1 inventory of a product: read and set the stock."""

from __future__ import annotations

from uuid import UUID

from fastapi import APIRouter
from fastapi.responses import Response
from tessera_contracts import v1
from tessera_stack.web import problem_responses

from tessera_catalog import convert
from tessera_catalog.api.common import json_response
from tessera_catalog.deps import InventoriesDep

router = APIRouter(prefix="/products/{product_id}/inventory", tags=["inventory v1"])


@router.get("", response_model=v1.Inventory, responses=problem_responses(404, 422))
async def get_inventory(product_id: UUID, inventories: InventoriesDep) -> Response:
    """A product's stock (zero until it is first set)."""
    return json_response(convert.inventory(await inventories.get(product_id)))


@router.put("", response_model=v1.Inventory, responses=problem_responses(404, 422))
async def set_inventory(
    product_id: UUID, body: v1.InventoryUpdate, inventories: InventoriesDep
) -> Response:
    """Set a product's stock (absolute values; `reserved` may not exceed `quantity`)."""
    quantity = convert.check_count(body.quantity, "quantity")
    reserved = convert.check_count(body.reserved, "reserved")
    return json_response(convert.inventory(await inventories.set(product_id, quantity, reserved)))
