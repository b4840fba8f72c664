"""v1 inventory of a product: read and set the stock."""

from __future__ import annotations

from uuid import UUID

from fastapi import APIRouter
from fastapi.responses import Response
from tessera_contracts import v1
from tessera_runtime.operations import implements

from tessera_catalog.api.common import json_response
from tessera_catalog.deps import InventoriesDep
from tessera_catalog.domain import convert

router = APIRouter()


@implements(router, v1.GET_INVENTORY)
async def get_inventory(product_id: UUID, inventories: InventoriesDep) -> Response:
    return json_response(convert.inventory(await inventories.get(product_id)))


@implements(router, v1.SET_INVENTORY)
async def set_inventory(
    product_id: UUID, body: v1.InventoryUpdate, inventories: InventoriesDep
) -> Response:
    quantity = convert.check_count(body.quantity, "quantity")
    reserved = convert.check_count(body.reserved, "reserved")
    return json_response(convert.inventory(await inventories.set(product_id, quantity, reserved)))
