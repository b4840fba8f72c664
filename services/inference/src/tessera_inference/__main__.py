"""`python -m tessera_inference`: serve the inference, configured by `INFERENCE_*` (see `run_service`)."""

from tessera_runtime.server import run_service

from tessera_inference.app import create_app
from tessera_inference.settings import Settings


def main() -> None:
    run_service(create_app, Settings, prog="python -m tessera_inference")


if __name__ == "__main__":
    main()
