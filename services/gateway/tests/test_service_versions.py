"""Every service states its version one way: its distribution's, in docs and health."""

from __future__ import annotations

import importlib.metadata

import tessera_catalog
import tessera_gateway
import tessera_inference
from pydantic import PostgresDsn
from tessera_catalog.app import create_app as create_catalog
from tessera_catalog.settings import Settings as CatalogSettings
from tessera_gateway.app import create_app as create_gateway
from tessera_gateway.settings import Settings
from tessera_inference.app import create_app as create_inference
from tessera_inference.settings import Settings as InferenceSettings


def test_each_service_reports_its_distribution_version() -> None:
    apps = {
        "tessera-catalog": (
            tessera_catalog.__version__,
            create_catalog(CatalogSettings(database_url=PostgresDsn("postgresql://x@127.0.0.1/x"))),
        ),
        "tessera-gateway": (tessera_gateway.__version__, create_gateway(Settings())),
        "tessera-inference": (tessera_inference.__version__, create_inference(InferenceSettings())),
    }

    for distribution, (declared, app) in apps.items():
        installed = importlib.metadata.version(distribution)
        assert declared == installed, distribution
        assert app.openapi()["info"]["version"] == installed, distribution
