"""`python -m tessera_catalog`: serve the catalog, configured by `CATALOG_*` (see `run_service`)."""

from tessera_runtime.server import run_service

from tessera_catalog.app import create_app
from tessera_catalog.settings import Settings


def main() -> None:
    run_service(create_app, Settings, prog="python -m tessera_catalog")


if __name__ == "__main__":
    main()
