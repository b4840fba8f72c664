"""Fixtures: the rendered objects of each overlay (rendered once per session)."""

from __future__ import annotations

import pytest

from deploy.tests.manifests import OVERLAYS, Manifest, render


@pytest.fixture(scope="session", params=OVERLAYS)
def overlay(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.fixture(scope="session")
def docs(overlay: str) -> tuple[Manifest, ...]:
    return render(overlay)
