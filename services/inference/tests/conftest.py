"""Fixtures: the app in memory over ASGI, with the packaged models (or a copy to break)."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path

import httpx
import pytest
from tessera_inference.app import create_app
from tessera_inference.settings import PACKAGED_MODELS, Settings
from tessera_runtime.server import server_config
from tessera_stack.testing import BENIGN, MALIGNANT, asgi_client, serving

Serve = Callable[[Settings], AbstractAsyncContextManager[httpx.AsyncClient]]


@pytest.fixture
def malignant() -> list[float]:
    return list(MALIGNANT)


@pytest.fixture
def benign() -> list[float]:
    return list(BENIGN)


@pytest.fixture
def settings() -> Settings:
    return Settings(nats_enabled=False)


@pytest.fixture
def serve() -> Serve:
    """Run an app with `settings` for the `async with` block; yields a client to it."""

    def running(settings: Settings) -> AbstractAsyncContextManager[httpx.AsyncClient]:
        return asgi_client(create_app(settings), "http://inference")

    return running


@pytest.fixture
def serve_http() -> Serve:
    """Like `serve`, but under uvicorn as `python -m tessera_inference` runs, on a real socket."""

    @asynccontextmanager
    async def running(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
        local = settings.model_copy(update={"host": "127.0.0.1", "port": 0})
        async with (
            serving(server_config(create_app(local), local)) as port,
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client,
        ):
            yield client

    return running


@pytest.fixture(params=[True, False], ids=["batching", "no-batching"])
async def client(
    request: pytest.FixtureRequest, serve: Serve, settings: Settings
) -> AsyncIterator[httpx.AsyncClient]:
    """Every API test runs with batching on and off: the answers must not differ."""
    async with serve(settings.model_copy(update={"batching_enabled": request.param})) as c:
        yield c


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    """A writable copy of the packaged models, to add broken ones next to them."""
    target = tmp_path / "models"
    shutil.copytree(PACKAGED_MODELS, target)
    return target
