"""`python -m tessera_catalog`: serve the catalog service.

Settings come from `CATALOG_*` environment variables and `.env`; a command-line
flag (`--port 9000`, `--help` lists them) wins over both.
"""

from tessera_runtime.server import run_service

from tessera_catalog.app import create_app
from tessera_catalog.settings import Settings


def main() -> None:
    run_service(create_app, Settings, prog="python -m tessera_catalog")


if __name__ == "__main__":
    main()
