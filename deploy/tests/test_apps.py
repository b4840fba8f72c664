"""The probes and ports in the manifests exist in the services themselves.

Each app is built with the Settings the dev overlay gives it; building one opens
no connection (that happens in the lifespan), so no server is needed.
"""

from __future__ import annotations

import importlib
from urllib.parse import urlsplit

import httpx
import pytest
from fastapi import FastAPI
from tessera_contracts.problem import Problem
from tessera_runtime import ProbeServer

from deploy.tests.manifests import (
    SERVICES,
    environment,
    iter_probes,
    main_container,
    render,
    service_deployment,
)
from deploy.tests.service_settings import load_settings, settings_class


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
def test_probe_paths_are_served_on_the_probe_port_and_the_api_port(
    service: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = _app(service, monkeypatch)
    routes = {getattr(route, "path", None) for route in app.routes}
    container = main_container(service_deployment(render("dev"), service))
    probe_paths = {urlsplit(probe["httpGet"]["path"]).path for _, probe in iter_probes(container)}
    with ProbeServer(app, "127.0.0.1", 0) as probes:
        answers = {
            path: httpx.get(f"http://127.0.0.1:{probes.port}{path}", timeout=5)
            for path in sorted(probe_paths)
        }

    assert probe_paths == {"/healthz", "/readyz"}
    for path, answer in answers.items():
        # Served (not a 404): "starting", as the lifespan has not run here.
        assert answer.status_code == 503, path
        assert (Problem.model_validate_json(answer.content).detail or "").startswith("starting")
    # The API port keeps them for people and `tessera up`; Prometheus scrapes it.
    assert probe_paths <= routes
    assert "/metrics" in routes
