"""`/asyncapi.json`: the AsyncAPI 3.0 document of the NATS subjects, from the contracts."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from tessera_contracts.asyncapi import asyncapi_document


def install_asyncapi(app: FastAPI, path: str = "/asyncapi.json") -> None:
    # Built once: the document is the contracts' and does not change while serving.
    document = asyncapi_document()

    @app.get(path, include_in_schema=False)
    async def asyncapi() -> JSONResponse:
        return JSONResponse(document)
