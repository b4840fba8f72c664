"""A small demo service built with create_service_app, driven in memory over ASGI."""

from __future__ import annotations

import asyncio
import io
import logging
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Annotated, ClassVar, TypedDict

import httpx
import pytest
import uvicorn
from asgi_lifespan import LifespanManager
from fastapi import APIRouter, FastAPI, Query, Request
from pydantic import BaseModel, Field
from starlette.types import ASGIApp
from tessera_runtime import (
    PROBLEM_RESPONSES,
    ReadinessCheck,
    ServiceError,
    configure_logging,
    create_service_app,
    outgoing_headers,
    request_id,
)


@contextmanager
def in_thread(
    server: uvicorn.Server, sockets: list[socket.socket] | None = None
) -> Iterator[threading.Thread]:
    """Run `server` in a thread of its own for the block (no signal handlers there)."""
    thread = threading.Thread(target=server.run, kwargs={"sockets": sockets}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 15
        while not server.started:
            assert thread.is_alive(), "uvicorn stopped before it started"
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.01)
        yield thread
    finally:
        server.should_exit = True
        thread.join(15)


class DemoError(ServiceError):
    """The demo service's one error base, as each service has (CatalogError, ...)."""


class ProductNotFound(DemoError):
    status_code = 404

    def __init__(self, product_id: int) -> None:
        super().__init__(f"product {product_id} not found")


class UpstreamDown(DemoError):
    status_code = 503
    title: ClassVar[str | None] = "Upstream unavailable"
    type_uri: ClassVar[str | None] = "https://errors.tessera.example/upstream-unavailable"

    def __init__(self) -> None:
        super().__init__(
            "inference did not answer", upstream="inference", headers={"Retry-After": "3"}
        )


class PredictionRequest(BaseModel):
    features: list[Annotated[float, Field(ge=0)]] = Field(min_length=10, max_length=10)


class State(TypedDict):
    started: bool


class Probes:
    """Readiness probes whose outcome each test sets."""

    def __init__(self) -> None:
        self.postgres_error: Exception | None = None
        self.nats_delay_s = 0.0

    async def postgres(self, request: Request) -> None:
        # The lifespan state is reachable from a probe, as services need it to be.
        assert request.state.started is True
        if self.postgres_error is not None:
            raise self.postgres_error

    async def nats(self, request: Request) -> None:
        await asyncio.sleep(self.nats_delay_s)


def build_demo_app(probes: Probes | None = None, *, title: str = "demo") -> FastAPI:
    probes = probes or Probes()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[State]:
        yield {"started": True}

    # Nested routers, as services build /v1: the metrics route label must still
    # be the full template.
    products = APIRouter(prefix="/products", tags=["products"])

    @products.get("/{product_id}", responses=PROBLEM_RESPONSES)
    async def get_product(product_id: int) -> dict[str, object]:
        """Get one product."""
        if product_id == 404:
            raise ProductNotFound(product_id)
        if product_id == 503:
            raise UpstreamDown
        if product_id == 5031:
            raise UpstreamDown from ConnectionRefusedError("connect refused by 10.0.0.9")
        if product_id == 500:
            raise RuntimeError("db password=hunter2 leaked in a bug")
        return {"id": product_id, "request_id": request_id(), "outgoing": outgoing_headers()}

    @products.post("/predict")
    async def predict(
        body: PredictionRequest, limit: Annotated[int, Query(le=10)] = 1
    ) -> dict[str, float]:
        """Predict."""
        return {"sum": sum(body.features)}

    v1 = APIRouter(prefix="/v1")
    v1.include_router(products)
    top_level = APIRouter()

    @top_level.get("/top/{name}")
    async def top(name: str) -> dict[str, str]:
        """A route at the top level."""
        return {"name": name}

    app = create_service_app(
        title=title,
        version="1.2.3",
        lifespan=lifespan,
        routers=[v1, top_level],
        readiness_checks=[
            ReadinessCheck("postgres", probes.postgres),
            ReadinessCheck("nats", probes.nats, timeout_s=0.2),
        ],
    )
    return app


@pytest.fixture
def probes() -> Probes:
    return Probes()


@pytest.fixture
def demo_app(probes: Probes) -> FastAPI:
    return build_demo_app(probes)


@pytest.fixture
async def asgi_app(demo_app: FastAPI) -> AsyncIterator[ASGIApp]:
    async with LifespanManager(demo_app) as manager:
        yield manager.app


@pytest.fixture
async def client(asgi_app: ASGIApp) -> AsyncIterator[httpx.AsyncClient]:
    # raise_app_exceptions=False: an unhandled exception must reach the client as
    # the 500 response the server would send, not be re-raised into the test.
    transport = httpx.ASGITransport(app=asgi_app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://demo") as c:
        yield c


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """Put the root and uvicorn loggers back as they were, since configure_logging changes them."""
    names = ["", "uvicorn", "uvicorn.error", "uvicorn.access"]
    saved = {
        name: (
            list(logging.getLogger(name).handlers),
            list(logging.getLogger(name).filters),
            logging.getLogger(name).level,
            logging.getLogger(name).propagate,
        )
        for name in names
    }
    yield
    for name, (handlers, filters, level, propagate) in saved.items():
        logger = logging.getLogger(name)
        for handler in logger.handlers:
            if handler not in handlers:
                handler.close()
        logger.handlers[:] = handlers
        logger.filters[:] = filters
        logger.setLevel(level)
        logger.propagate = propagate


@pytest.fixture
def log_stream(restore_logging: None) -> io.StringIO:
    """JSON logs of the demo service, written to a buffer instead of stdout."""
    stream = io.StringIO()
    configure_logging("demo", "INFO", stream=stream)
    return stream
