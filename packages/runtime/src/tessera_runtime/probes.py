"""``/healthz`` and ``/readyz`` on a port of their own, served from a thread of their own.

A saturated event loop and a full accept queue on the API port delay its
``/healthz`` by seconds, and a kubelet then restarts a pod that is merely busy.
As with Spring's management port or Envoy's admin listener, the probes get a
listener that shares nothing with the API but the process: a standard library
HTTP server in a daemon thread, answering from the snapshots the event loop
publishes on the app's :class:`~tessera_runtime.health.ProbeBoard`:

* ``/healthz``: 200 while the loop's heartbeat is younger than
  ``ProbeTiming.liveness_stall_s`` (a busy loop still turns), else 503.
* ``/readyz``: the newest background run of the readiness checks (200 or 503,
  the same bodies as on the API port); 503 once draining began or that run is
  older than ``ProbeTiming.readiness_stale_s``.

Answering costs the loop nothing: the thread reads two attributes and writes
bytes serialized in advance. Usage::

    probes = ProbeServer(app, "0.0.0.0", 8081)
    probes.start()
    try:
        uvicorn.Server(config).run()
    finally:
        probes.stop()
"""

from __future__ import annotations

import io
import logging
import socket
import socketserver
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

from fastapi import FastAPI
from tessera_contracts.problem import PROBLEM_MEDIA_TYPE, Problem

from tessera_runtime.health import Answer, ProbeBoard, is_draining, probe_board, unavailable
from tessera_runtime.problems import status_title

__all__ = ["ProbeServer"]

logger = logging.getLogger("tessera_runtime.probes")

_ALLOWED = "GET, HEAD"
# How often the idle server thread wakes to look for a stop() request. Each wake
# takes the GIL from the event loop for a moment, so not often; stop() waits up to this.
_POLL_INTERVAL_S = 0.5
DEFAULT_MAX_CONNECTIONS = 16
"""Connections :class:`ProbeServer` serves at once unless told otherwise."""


def liveness(board: ProbeBoard, now: float) -> Answer:
    """The probe port's ``/healthz`` at monotonic time ``now``."""
    beat = board.heartbeat
    if beat is None:
        return unavailable("starting: the event loop has not reported yet", "/healthz")
    stalled_s = now - beat
    if stalled_s > board.timing.liveness_stall_s:
        return unavailable(f"event loop stalled for {stalled_s:.0f} s", "/healthz")
    return board.liveness


def readiness(app: FastAPI, board: ProbeBoard, now: float) -> Answer:
    """The probe port's ``/readyz`` at monotonic time ``now``."""
    if is_draining(app):
        return unavailable("draining", "/readyz")
    result = board.readiness
    if result is None:
        return unavailable("starting: the readiness checks have not completed yet", "/readyz")
    age_s = now - result.finished_at
    if age_s > board.timing.readiness_stale_s:
        return unavailable(f"readiness checks stalled: last completed {age_s:.0f} s ago", "/readyz")
    return result.answer


class _Server(ThreadingHTTPServer):
    # One thread per connection (daemon: never waited for at exit), at most
    # `max_connections` at once: a slow client holds only its own thread, until
    # its request's deadline drops it, and a flood of connections cannot start
    # threads without bound.
    daemon_threads = True

    def __init__(
        self, host: str, port: int, app: FastAPI, board: ProbeBoard, max_connections: int
    ) -> None:
        self.app = app
        self.board = board
        self._slots = threading.BoundedSemaphore(max_connections)
        self._refusing = False
        self.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        super().__init__((host, port), _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            # Every handler is busy: close at once rather than queue (a probe that
            # waits is as bad as one that fails, and a queue is memory to flood).
            if not self._refusing:  # once per episode, not once per connection
                logger.warning("probe port: connections refused, all handlers busy")
            self._refusing = True
            self.shutdown_request(request)
            return
        self._refusing = False
        try:
            super().process_request(request, client_address)  # starts the handler thread
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def handle_error(self, request: Any, client_address: Any) -> None:
        # socketserver would print the traceback to stderr, outside the JSON logs.
        exc = sys.exception()
        if isinstance(exc, OSError):  # the client went away mid-answer
            logger.debug("probe client %s: %r", client_address, exc)
        else:
            logger.error("probe request from %s failed", client_address, exc_info=exc)

    def server_bind(self) -> None:
        # HTTPServer.server_bind also resolves the host's FQDN (a DNS query at
        # start-up, for a name nothing here uses).
        socketserver.TCPServer.server_bind(self)
        self.server_name = str(self.server_address[0])
        self.server_port = int(self.server_address[1])


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    # HTTP/1.1 with "Connection: close": one request per connection, like the kubelet's.
    protocol_version = "HTTP/1.1"
    # Buffered: status line, headers and body leave in one send. Each socket call
    # releases the GIL, and getting it back from a busy event loop is what a probe
    # waits for, so fewer calls answer sooner.
    wbufsize = -1

    def version_string(self) -> str:
        # The Server header without the Python version.
        return "tessera-probes"

    def setup(self) -> None:
        # One deadline for the whole request, not a timeout per read: a client that
        # trickles a byte now and then is dropped as surely as one that stalls.
        self._deadline = time.monotonic() + self.server.board.timing.request_timeout_s
        super().setup()
        self.rfile.close()  # the plain socket file: it would keep the socket open
        self.rfile = io.BufferedReader(_DeadlineReader(self.connection, self._deadline))

    def do_GET(self) -> None:
        self._answer(body=True)

    def do_HEAD(self) -> None:
        self._answer(body=False)

    def _method_not_allowed(self) -> None:
        self._problem(405, f"{self.command} is not allowed here", {"Allow": _ALLOWED})

    do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = _method_not_allowed

    def _answer(self, *, body: bool) -> None:
        path = urlsplit(self.path).path
        now = time.monotonic()
        if path == "/healthz":
            answer = liveness(self.server.board, now)
        elif path == "/readyz":
            answer = readiness(self.server.app, self.server.board, now)
        else:
            self._problem(404, "the probe port serves /healthz and /readyz only")
            return
        self._send(answer, body=body)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        # http.server's own refusals (a malformed request line, too many or too
        # long headers) as problem+json instead of its HTML page. An unparsable
        # request line leaves the version at HTTP/0.9, which has no status line.
        if self.request_version == "HTTP/0.9":
            self.request_version = "HTTP/1.0"
        self._problem(code, message or explain)

    def _problem(
        self, status: int, detail: str | None, headers: dict[str, str] | None = None
    ) -> None:
        problem = Problem(title=status_title(status), status=status, detail=detail)
        body = problem.model_dump_json(exclude_none=True).encode()
        # The request line may be what failed to parse: then there is no command.
        send_body = getattr(self, "command", None) != "HEAD"
        self._send(Answer(status, PROBLEM_MEDIA_TYPE, body), body=send_body, headers=headers)

    def _send(self, answer: Answer, *, body: bool, headers: dict[str, str] | None = None) -> None:
        # The answer leaves in one send (buffered) within what is left of the deadline.
        self.connection.settimeout(max(self._deadline - time.monotonic(), 0.001))
        self.send_response(answer.status)
        self.send_header("Content-Type", answer.media_type)
        self.send_header("Content-Length", str(len(answer.body)))
        self.send_header("Cache-Control", "no-store")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Connection", "close")
        self.end_headers()
        if body:
            self.wfile.write(answer.body)

    def log_message(self, format: str, *args: Any) -> None:
        # Probes come every few seconds; like on the API port, they are not logged.
        logger.debug(format, *args)


class _DeadlineReader(io.RawIOBase):
    """The socket's bytes, each read waiting at most until ``deadline`` (monotonic)."""

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        super().__init__()
        self._sock = sock
        self._deadline = deadline

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        remaining = self._deadline - time.monotonic()
        if remaining <= 0:
            # What a socket timeout raises: the handler drops the connection.
            raise TimeoutError("the probe request's deadline passed")
        self._sock.settimeout(remaining)
        return self._sock.recv_into(buffer)


class ProbeServer:
    """Serve ``app``'s ``/healthz`` and ``/readyz`` on ``host:port`` from a daemon thread.

    ``app`` must come from :func:`~tessera_runtime.create_service_app`, whose
    lifespan publishes what this server reads. Port 0 picks a free port (see
    :attr:`port`). Start it before the API server, so the startup probe finds it,
    and stop it after. Each request must arrive and be answered within
    ``ProbeTiming.request_timeout_s``; at most ``max_connections`` are served at
    once, and a connection beyond that is closed at once.
    """

    def __init__(
        self,
        app: FastAPI,
        host: str,
        port: int,
        *,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
    ) -> None:
        if max_connections < 1:
            raise ValueError(f"max_connections must be at least 1, not {max_connections}")
        self._max_connections = max_connections
        self._app = app
        self._board = probe_board(app)
        self._host = host
        self._requested_port = port
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The bound port (the chosen one when started with port 0)."""
        if self._server is None:
            raise RuntimeError("the probe server is not started")
        return int(self._server.server_address[1])

    def start(self) -> None:
        """Bind (raising OSError when the port is taken) and serve in a daemon thread."""
        if self._server is not None:
            raise RuntimeError("the probe server is already started")
        server = _Server(
            self._host, self._requested_port, self._app, self._board, self._max_connections
        )
        thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": _POLL_INTERVAL_S},
            name=f"probes:{server.server_address[1]}",
            daemon=True,
        )
        thread.start()
        self._server, self._thread = server, thread
        logger.info(
            "probes on http://%s:%d (/healthz, /readyz)",
            self._host,
            self.port,
            extra={"port": self.port},
        )

    def stop(self) -> None:
        """Stop serving and close the listening socket; a no-op when not started."""
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        self._server = self._thread = None
        server.shutdown()
        server.server_close()
        thread.join()

    def __enter__(self) -> ProbeServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
