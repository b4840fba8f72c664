"""`python -m tessera_catalog` serves under the header limits of its settings."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import httpx
from tessera_contracts.problem import PROBLEM_MEDIA_TYPE
from tessera_stack.process import free_port


@contextmanager
def running(env: dict[str, str], log: Path) -> Iterator[str]:
    """`python -m tessera_catalog` with `env` added; yield its base URL once it answers."""
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "tessera_catalog", "--port", str(port)],
            env={**os.environ, **env},
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, log.read_text()
            with suppress(httpx.HTTPError):
                if httpx.get(f"{base_url}/healthz", timeout=1).status_code == 200:
                    break
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        yield base_url
    finally:
        process.terminate()
        process.wait(timeout=15)


def test_module_answers_431_beyond_its_header_limit(
    database_url: str, nats_url: str, tmp_path: Path
) -> None:
    env = {
        "CATALOG_DATABASE_URL": database_url,
        "CATALOG_NATS_URL": nats_url,
        "CATALOG_MAX_HEADER_COUNT": "10",
    }
    with running(env, tmp_path / "catalog.log") as url:
        ok = httpx.get(f"{url}/healthz")
        refused = httpx.get(f"{url}/healthz", headers={f"X-H{i}": "v" for i in range(10)})

    assert ok.status_code == 200
    assert refused.status_code == 431
    assert refused.headers["content-type"] == PROBLEM_MEDIA_TYPE
    assert "limit of 10" in refused.json()["detail"]
