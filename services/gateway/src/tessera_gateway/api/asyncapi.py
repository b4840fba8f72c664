"""`/asyncapi.json`: the AsyncAPI 3.0 document of the NATS subjects, from the contracts."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from tessera_contracts.asyncapi import asyncapi_document


def asyncapi_router(path: str = "/asyncapi.json") -> APIRouter:
    router = APIRouter()
    # Built once: the document is the contracts' and does not change while serving.
    document = asyncapi_document()

    @router.get(path, include_in_schema=False)
    async def asyncapi() -> JSONResponse:
        return JSONResponse(document)

    return router
