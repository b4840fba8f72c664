"""Fixtures: the rendered objects of each overlay (rendered once per session), per service."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from deploy.tests.exported_metrics import exported_series
from deploy.tests.manifests import OVERLAYS, SERVICES, Manifest, render, service_deployment


@pytest.fixture(scope="session", params=OVERLAYS)
def overlay(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.fixture(scope="session")
def docs(overlay: str) -> tuple[Manifest, ...]:
    return render(overlay)


@pytest.fixture(params=SERVICES)
def service(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.fixture
def deployment(docs: tuple[Manifest, ...], service: str) -> Manifest:
    """The service's Deployment in the overlay."""
    return service_deployment(docs, service)


@pytest.fixture
def isolated_logging() -> Iterator[None]:
    # create_app configures logging for the process (JSON to stdout, uvicorn's
    # loggers rerouted); put it back so other tests see pytest's setup.
    loggers = [
        logging.getLogger(),
        *(logging.getLogger(n) for n in list(logging.root.manager.loggerDict)),
    ]
    saved = [(lg, lg.level, list(lg.handlers), list(lg.filters), lg.propagate) for lg in loggers]
    try:
        yield
    finally:
        for lg, level, handlers, filters, propagate in saved:
            for handler in lg.handlers:
                if handler not in handlers:
                    handler.close()
            lg.setLevel(level)
            lg.handlers[:] = handlers
            lg.filters[:] = filters
            lg.propagate = propagate


@pytest.fixture
async def exported(
    database_url: str, nats_url: str, isolated_logging: None
) -> dict[str, frozenset[str]]:
    """Service -> the metric series it exports (exported_metrics.py), each app started."""
    return {s: await exported_series(s, database_url, nats_url) for s in SERVICES}
