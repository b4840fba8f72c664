"""The proxies scenario's parts: the floor proxy forwards, and CPU is counted per process tree."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx

from bench.harness import cpu_seconds, tree_cpu_seconds, uvicorn_process
from bench.scenarios.proxies import FLOOR

BODY = b'{"id": "p-1", "name": "Oak lamp"}'


class _Answer(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("X-Seen-Path", self.path)
        self.send_header("Content-Length", str(len(BODY)))
        self.end_headers()
        self.wfile.write(BODY)

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextmanager
def upstream() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Answer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_the_floor_proxy_relays_the_upstream_answer() -> None:
    with (
        upstream() as url,
        uvicorn_process(FLOOR, {"FLOOR_UPSTREAM": url}) as floor,
        httpx.Client(base_url=floor.url) as client,
    ):
        answers = [client.get(f"/v1/products/p-1?n={n}") for n in range(3)]

    assert [a.status_code for a in answers] == [200, 200, 200]
    assert all(a.content == BODY for a in answers)
    assert answers[0].headers["content-type"] == "application/json"
    assert answers[2].headers["x-seen-path"] == "/v1/products/p-1?n=2"


def test_tree_cpu_counts_the_children() -> None:
    # Like nginx's master and worker: the parent waits, its child does the work.
    burn = "import time\nend = time.process_time() + 0.6\nwhile time.process_time() < end: pass\ntime.sleep(5)"
    parent = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import subprocess, sys; subprocess.run([sys.executable, '-c', {burn!r}])",
        ]
    )
    try:
        deadline = time.monotonic() + 20
        while tree_cpu_seconds(parent.pid) - cpu_seconds(parent.pid) < 0.5:
            assert time.monotonic() < deadline, "the child's CPU time was never counted"
            time.sleep(0.1)
    finally:
        # The child ends by itself a few seconds later.
        parent.kill()
        parent.wait()
