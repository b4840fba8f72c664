"""`python -m tessera_gateway`: serve the gateway service.

Settings come from `GATEWAY_*` environment variables and `.env`; a command-line
flag (`--port 9000`, `--help` lists them) wins over both.
"""

from tessera_stack.web.server import serve

from tessera_gateway.app import create_app
from tessera_gateway.settings import Settings


def main() -> None:
    settings = Settings(_cli_parse_args=True, _cli_prog_name="python -m tessera_gateway")
    serve(create_app(settings), settings)


if __name__ == "__main__":
    main()
