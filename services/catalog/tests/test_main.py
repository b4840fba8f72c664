"""`python -m tessera_catalog` serves under the header limits of its settings."""

from __future__ import annotations

import sys
from pathlib import Path

import httpx
from tessera_contracts.problem import PROBLEM_MEDIA_TYPE
from tessera_stack.testing import running_service

COMMAND = [sys.executable, "-m", "tessera_catalog"]


def test_module_answers_431_beyond_its_header_limit(
    database_url: str, nats_url: str, tmp_path: Path
) -> None:
    env = {
        "CATALOG_DATABASE_URL": database_url,
        "CATALOG_NATS_URL": nats_url,
        "CATALOG_MAX_HEADER_COUNT": "10",
    }
    with running_service(COMMAND, env=env, log=tmp_path / "catalog.log") as service:
        url = service.url
        ok = httpx.get(f"{url}/healthz")
        refused = httpx.get(f"{url}/healthz", headers={f"X-H{i}": "v" for i in range(10)})

    assert ok.status_code == 200
    assert refused.status_code == 431
    assert refused.headers["content-type"] == PROBLEM_MEDIA_TYPE
    assert "limit of 10" in refused.json()["detail"]
