"""`python -m tessera_gateway`: serve the gateway, configured by `GATEWAY_*` (see `run_service`)."""

from tessera_runtime.server import run_service

from tessera_gateway.app import create_app
from tessera_gateway.settings import Settings


def main() -> None:
    run_service(create_app, Settings, prog="python -m tessera_gateway")


if __name__ == "__main__":
    main()
