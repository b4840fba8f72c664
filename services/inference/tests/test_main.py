"""`python -m tessera_inference` serves under the header limits of its settings."""

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
    """`python -m tessera_inference` with `env` added; yield its base URL once it answers."""
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "tessera_inference", "--port", str(port)],
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


def test_module_answers_431_beyond_its_header_limit(tmp_path: Path) -> None:
    env = {"INFERENCE_NATS_ENABLED": "false", "INFERENCE_MAX_HEADER_BYTES": "2048"}
    with running(env, tmp_path / "inference.log") as url:
        ok = httpx.get(f"{url}/healthz")
        refused = httpx.get(f"{url}/healthz", headers={"X-Big": "b" * 3000})

    assert ok.status_code == 200
    assert refused.status_code == 431
    assert refused.headers["content-type"] == PROBLEM_MEDIA_TYPE
    assert "2048 bytes" in refused.json()["detail"]


def test_module_serves_probes_on_the_probe_port_with_its_timing(tmp_path: Path) -> None:
    probe_port = free_port()
    env = {
        "INFERENCE_NATS_ENABLED": "false",
        "INFERENCE_PROBE_PORT": str(probe_port),
        "INFERENCE_PROBE_READINESS_STALE_S": "5",
    }
    probes = f"http://127.0.0.1:{probe_port}"
    with running(env, tmp_path / "inference.log"):
        deadline = time.monotonic() + 10
        # The first background run of the readiness checks follows startup.
        while (ready := httpx.get(f"{probes}/readyz")).status_code != 200:
            assert time.monotonic() < deadline, ready.text
            time.sleep(0.1)
        live = httpx.get(f"{probes}/healthz")

    assert live.status_code == 200
    assert ready.json()["status"] == "ok"


def test_module_refuses_a_readiness_staleness_bound_below_its_checks(tmp_path: Path) -> None:
    env = {
        "INFERENCE_NATS_ENABLED": "false",
        "INFERENCE_PROBE_PORT": str(free_port()),
        "INFERENCE_PROBE_READINESS_STALE_S": "0.5",
    }
    result = subprocess.run(
        [sys.executable, "-m", "tessera_inference", "--port", str(free_port())],
        env={**os.environ, **env},
        capture_output=True,
        timeout=60,
    )

    assert result.returncode != 0
    assert b"readiness_stale_s" in result.stderr
