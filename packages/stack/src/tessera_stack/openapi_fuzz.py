"""Shared setup of the services' schemathesis tests (`services/*/tests/test_openapi_fuzz.py`).

Each service runs as `tessera up` runs it (the same uvicorn command, a
subprocess on a real socket, configured by environment variables), and
schemathesis checks every documented operation against it: no 5xx, and every
response's status code, content type and body as its OpenAPI document says.

Test-only: it imports schemathesis (a dev dependency), so nothing that serves
requests imports this module.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    CheckFunction,
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from tessera_stack.local.services import ServiceFailed, uvicorn_command
from tessera_stack.process import free_port, spawn, stop_process, tail

READY_TIMEOUT_S = 30.0
"""How long a served service may take to answer /readyz 200 (inference loads its models)."""
REQUEST_TIMEOUT_S = 10.0
"""A fuzzed request that takes longer is a hung request: the test fails on it."""

CHECKS: list[CheckFunction] = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
"""What every generated request's response must pass."""

FuzzCase = schemathesis.Case[Any]
"""A generated request of any operation (the type of the tests' `case` argument)."""


def check_case(
    case: FuzzCase,
    base_url: str,
    *,
    headers: Mapping[str, str] | None = None,
    timeout_s: float = REQUEST_TIMEOUT_S,
) -> None:
    """Send `case` to the service at `base_url` and run CHECKS on its answer.

    Args:
        case: the generated request.
        base_url: the running service.
        headers: added to the request (e.g. the API key).
        timeout_s: no answer by then fails the test; an event stream is read
            for this long (or until schemathesis has enough events) and judged.
    """
    case.call_and_validate(
        base_url=base_url, headers=dict(headers or {}), checks=CHECKS, timeout=timeout_s
    )


def fuzz_settings(max_examples: int) -> settings:
    """Hypothesis settings of a bounded run: `max_examples` per operation.

    Derandomized: hypothesis draws the same inputs on every run rather than new
    ones, so CI does not turn red on a lucky draw (schemathesis also feeds what
    the service answered into later inputs, so runs can still differ a little).
    No example database (CI starts from a clean tree) and no deadline (a shared
    2-core machine makes durations noise; hung requests fail through
    REQUEST_TIMEOUT_S instead).
    """
    return settings(
        max_examples=max_examples,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )


@contextlib.contextmanager
def served(name: str, env: Mapping[str, str], log_dir: Path) -> Iterator[str]:
    """Run service `name` (gateway, catalog, inference) for the block; yield its base URL.

    Args:
        name: the service, as `tessera up` names it.
        env: its settings (`CATALOG_DATABASE_URL`, ...), added to our environment.
        log_dir: where its log file goes (shown when it fails to start).
    """
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    log_dir.mkdir(parents=True, exist_ok=True)
    log_file = log_dir / f"{name}.log"
    with log_file.open("wb") as log:
        process = spawn(
            uvicorn_command(name, "127.0.0.1", port),
            env={**os.environ, "PYTHONUNBUFFERED": "1", **env},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait_ready(base_url, process, log_file)
        yield base_url
    finally:
        stop_process(process)


def _wait_ready(base_url: str, process: subprocess.Popen[bytes], log_file: Path) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    with httpx.Client(timeout=2.0) as client:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise ServiceFailed(
                    f"{base_url} exited with {process.returncode}:\n{tail(log_file, 40)}"
                )
            with contextlib.suppress(httpx.HTTPError):
                if client.get(f"{base_url}/readyz").status_code == 200:
                    return
            time.sleep(0.1)
    raise ServiceFailed(f"{base_url} was not ready within {READY_TIMEOUT_S} s:\n{tail(log_file)}")


def served_document(base_url: str) -> dict[str, Any]:
    """The OpenAPI document the running service at `base_url` serves."""
    response = httpx.get(f"{base_url}/openapi.json", timeout=REQUEST_TIMEOUT_S)
    response.raise_for_status()
    document: dict[str, Any] = response.json()
    return document


__all__ = [
    "CHECKS",
    "REQUEST_TIMEOUT_S",
    "FuzzCase",
    "check_case",
    "fuzz_settings",
    "served",
    "served_document",
]
