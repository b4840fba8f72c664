"""tessera-client stands alone: few dependencies, a typed facade, a current generated file."""

from __future__ import annotations

import inspect
import subprocess
import sys
from importlib.metadata import requires
from pathlib import Path

from mypy import api as mypy_api
from packaging.requirements import Requirement
from tessera_client import TesseraClient, TesseraSyncClient, generate

ROOT = Path(__file__).resolve().parents[3]


def test_generated_facade_is_current() -> None:
    current = generate.TARGET.read_text()

    assert current == generate.render(), f"_generated.py is stale: run `{generate.COMMAND}`"


def test_every_operation_has_a_method() -> None:
    from tessera_contracts import v1, v2

    for client_type in (TesseraClient, TesseraSyncClient):
        client = client_type("http://127.0.0.1:9")
        for version, table in (("v1", v1.OPERATIONS), ("v2", v2.OPERATIONS)):
            facade = getattr(client, version)
            missing = [op.id for op in table if not callable(getattr(facade, op.id, None))]
            assert missing == [], f"{client_type.__name__}.{version} lacks {missing}"


def test_async_and_blocking_methods_take_the_same_arguments_with_the_same_docs() -> None:
    from tessera_contracts import v1, v2

    asynchronous, blocking = (
        TesseraClient("http://127.0.0.1:9"),
        TesseraSyncClient("http://127.0.0.1:9"),
    )
    for version, table in (("v1", v1.OPERATIONS), ("v2", v2.OPERATIONS)):
        for operation in (op for op in table if op.stream is None):
            awaited = getattr(getattr(asynchronous, version), operation.id)
            blocks = getattr(getattr(blocking, version), operation.id)

            assert inspect.iscoroutinefunction(awaited), operation.key
            assert not inspect.iscoroutinefunction(blocks), operation.key
            assert inspect.signature(awaited) == inspect.signature(blocks), operation.key
            assert "self" not in inspect.signature(awaited).parameters, operation.key
            assert awaited.__doc__ == blocks.__doc__, operation.key
            assert (awaited.__doc__ or "").startswith(operation.summary), operation.key


def test_depends_on_contracts_and_httpx_only() -> None:
    names = {Requirement(line).name for line in requires("tessera-client") or []}

    assert names == {"tessera-contracts", "httpx"}


def test_import_loads_no_server_framework() -> None:
    code = (
        "import sys, tessera_client\n"
        "loaded = {m.split('.')[0] for m in sys.modules}\n"
        "print(sorted(loaded & {'fastapi', 'starlette', 'tessera_stack', 'uvicorn', 'nats'}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )

    assert result.stdout.strip() == "[]"


def test_consumer_script_passes_mypy_strict() -> None:
    script = Path(__file__).with_name("consumer_example.py")
    stdout, stderr, status = mypy_api.run(
        [
            "--strict",
            "--config-file",
            str(ROOT / "pyproject.toml"),
            "--no-incremental",
            "--cache-dir",
            "/dev/null",
            str(script),
        ]
    )

    assert status == 0, stdout + stderr
