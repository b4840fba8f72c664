"""`python -m tessera_inference` serves under the header limits of its settings."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from contextlib import AbstractContextManager
from pathlib import Path

import httpx
from tessera_contracts.problem import PROBLEM_MEDIA_TYPE
from tessera_stack.process import free_port
from tessera_stack.testing import RunningService, answers_until, running_service, status_is

COMMAND = [sys.executable, "-m", "tessera_inference"]


def running_with_probes(
    tmp_path: Path, probe_port: int, settings: dict[str, str]
) -> AbstractContextManager[RunningService]:
    """The module without NATS, with these settings and its probes on `probe_port`."""
    env = {
        "INFERENCE_NATS_ENABLED": "false",
        "INFERENCE_PROBE_PORT": str(probe_port),
        **{f"INFERENCE_{name.upper()}": value for name, value in settings.items()},
    }
    return running_service(COMMAND, env=env, log=tmp_path / "inference.log")


def holding_the_one_handler(port: int) -> socket.socket:
    """A connection to the probe port that its one handler serves (it stays open).

    The handler of an answered request may still hold the slot for a moment after
    the client read the answer; a connection made then is closed at once, so it
    is made again until one stays open.
    """
    deadline = time.monotonic() + 10
    while True:
        held = socket.create_connection(("127.0.0.1", port), timeout=5)
        time.sleep(0.2)  # accepted, or closed at once: either has happened by now
        held.setblocking(False)
        try:
            closed = held.recv(1) == b""
        except BlockingIOError:
            closed = False  # nothing to read: open, waiting for its request
        if not closed:
            held.settimeout(5)
            return held
        held.close()
        assert time.monotonic() < deadline, "no connection got the probe port's handler"


def test_module_answers_431_beyond_its_header_limit(tmp_path: Path) -> None:
    env = {"INFERENCE_NATS_ENABLED": "false", "INFERENCE_MAX_HEADER_BYTES": "2048"}
    with running_service(COMMAND, env=env, log=tmp_path / "inference.log") as service:
        url = service.url
        ok = httpx.get(f"{url}/healthz")
        refused = httpx.get(f"{url}/healthz", headers={"X-Big": "b" * 3000})

    assert ok.status_code == 200
    assert refused.status_code == 431
    assert refused.headers["content-type"] == PROBLEM_MEDIA_TYPE
    assert "2048 bytes" in refused.json()["detail"]


def test_module_serves_probes_on_the_probe_port_with_its_timing(tmp_path: Path) -> None:
    probe_port = free_port()
    probes = f"http://127.0.0.1:{probe_port}"
    with running_with_probes(tmp_path, probe_port, {"probe_readiness_stale_s": "5"}):
        # The first background run of the readiness checks follows startup.
        ready = answers_until(f"{probes}/readyz", status_is(200), within_s=10, pause_s=0.1)[-1]
        assert ready.status_code == 200, ready.text
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


def test_sigterm_drains_the_probe_port_at_once_while_requests_finish(tmp_path: Path) -> None:
    settings = {"probe_readiness_stale_s": "5", "graceful_shutdown_s": "20"}
    probe_port = free_port()
    probes = f"http://127.0.0.1:{probe_port}"
    with running_with_probes(tmp_path, probe_port, settings) as service:
        ready = answers_until(f"{probes}/readyz", status_is(200), within_s=10, pause_s=0.1)
        assert ready[-1].status_code == 200
        host, port = service.url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=10) as held:
            # A request whose body has not all arrived is in flight: uvicorn's
            # graceful shutdown waits for it (up to 20 s here).
            held.sendall(
                b"POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"Transfer-Encoding: chunked\r\n\r\n1\r\n{\r\n"
            )
            time.sleep(0.5)  # for the server to read the headers and start the request
            service.process.send_signal(signal.SIGTERM)
            answers = answers_until(f"{probes}/readyz", status_is(503), within_s=3)
            still_serving = service.process.poll() is None
            # The held request ends; then the process exits.
            held.sendall(b"1\r\n}\r\n0\r\n\r\n")
            reply = held.recv(65536)
            service.process.wait(timeout=15)

    assert still_serving  # the graceful phase was still on when /readyz said 503
    assert answers[-1].status_code == 503, [a.status_code for a in answers]
    assert answers[-1].json()["detail"] == "draining"
    assert reply.startswith(b"HTTP/1.1 422 ")  # {} is no prediction request, but it was served


def test_module_caps_the_probe_port_connections_as_set(tmp_path: Path) -> None:
    probe_port = free_port()
    probes = f"http://127.0.0.1:{probe_port}"
    with running_with_probes(tmp_path, probe_port, {"probe_max_connections": "1"}):
        alone = httpx.get(f"{probes}/healthz")
        with holding_the_one_handler(probe_port):
            try:
                refused: httpx.Response | httpx.TransportError = httpx.get(f"{probes}/healthz")
            except httpx.TransportError as exc:
                refused = exc

    assert alone.status_code == 200
    assert isinstance(refused, httpx.RemoteProtocolError)  # closed without an answer
