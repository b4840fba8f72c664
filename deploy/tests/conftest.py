"""Fixtures: the rendered objects of each overlay (rendered once per session), per service."""

from __future__ import annotations

import pytest

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
