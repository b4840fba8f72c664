"""A service with a slow route, run the way every service runs (``run_service``).

The shutdown tests start it as ``python slow_service.py --port N``; settings
come from ``SLOW_*`` variables, as a service's come from its prefix.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from fastapi import FastAPI
from fastapi.responses import StreamingResponse
from pydantic_settings import SettingsConfigDict
from tessera_runtime import create_service_app
from tessera_runtime.server import ServerSettings, run_service


class Settings(ServerSettings):
    model_config = SettingsConfigDict(env_prefix="SLOW_")


def create_app(settings: Settings | None = None) -> FastAPI:
    app = create_service_app(title="slow", version="0")

    @app.get("/slow")
    async def slow(seconds: float) -> StreamingResponse:
        async def body() -> AsyncIterator[bytes]:
            yield b"started\n"  # the client knows the request is in flight
            await asyncio.sleep(seconds)
            yield b"done\n"

        return StreamingResponse(body(), media_type="text/plain")

    return app


if __name__ == "__main__":
    run_service(create_app, Settings, prog="slow_service.py")
