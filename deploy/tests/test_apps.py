"""The probes and ports in the manifests exist in the services themselves.

Each app is built with the Settings the dev overlay gives it; building one opens
no connection (that happens in the lifespan), so no server is needed.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
from fastapi import FastAPI

from deploy.tests.manifests import (
    SERVICES,
    environment,
    iter_probes,
    main_container,
    render,
    service_deployment,
)
from deploy.tests.service_settings import load_settings, settings_class


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


def _app(service: str, monkeypatch: pytest.MonkeyPatch) -> FastAPI:
    docs = render("dev")
    env = environment(docs, main_container(service_deployment(docs, service)))
    settings = load_settings(settings_class(service), env, monkeypatch)
    module = importlib.import_module(f"tessera_{service}.app")
    app = module.create_app(settings)
    assert isinstance(app, FastAPI)
    return app


@pytest.mark.usefixtures("isolated_logging")
@pytest.mark.parametrize("service", SERVICES)
def test_probe_paths_are_routes_of_the_service(
    service: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = _app(service, monkeypatch)
    routes = {getattr(route, "path", None) for route in app.routes}
    container = main_container(service_deployment(render("dev"), service))
    probe_paths = {urlsplit(probe["httpGet"]["path"]).path for _, probe in iter_probes(container)}

    assert probe_paths == {"/healthz", "/readyz"}
    assert probe_paths <= routes
    # Prometheus scrapes the same port.
    assert "/metrics" in routes
