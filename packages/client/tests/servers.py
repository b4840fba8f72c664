"""Real local servers the client tests talk through: a flaky HTTP forwarder, a TCP
relay that can cut connections, and a scripted event-stream server.

They stand in for the network, never for our services: whatever they forward is
answered by the real gateway. Each runs in its own thread, so async and sync
clients alike can use them.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx

Canned = tuple[int, dict[str, str]] | tuple[int, dict[str, str], bytes]
"""`(status, headers)` answered with a problem body, or `(status, headers, body)`."""
_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "host"}


@contextmanager
def _serving(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    """Serve `handler` on a free local port, in a thread; the server's URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    """Lower-cased names."""


@dataclass
class Forwarder:
    """An HTTP server in front of `upstream`: answers the next requests with the
    canned answers of `fail_next`, forwards the rest, records all."""

    upstream: str
    fail_next: list[Canned] = field(default_factory=list)
    seen: list[Seen] = field(default_factory=list)
    url: str = ""


@contextmanager
def forwarder(upstream: str) -> Iterator[Forwarder]:
    state = Forwarder(upstream)
    lock = threading.Lock()
    http = httpx.Client(base_url=upstream, timeout=10)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            pass  # quiet: the test asserts on `seen`

        def _handle(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(length) if length else b""
            headers = {k.lower(): v for k, v in self.headers.items()}
            with lock:
                state.seen.append(Seen(self.command, self.path, headers))
                canned = state.fail_next.pop(0) if state.fail_next else None
            if canned is not None:
                status, extra = canned[0], canned[1]
                problem = b'{"title":"Service Unavailable","status":%d}' % status
                payload = canned[2] if len(canned) == 3 else problem
                self.send_response(status)
                if "content-type" not in {name.lower() for name in extra}:
                    self.send_header("Content-Type", "application/problem+json")
                for name, value in extra.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
                return
            forwarded = {k: v for k, v in headers.items() if k not in _HOP_BY_HOP}
            response = http.request(self.command, self.path, headers=forwarded, content=body)
            self.send_response(response.status_code)
            for name, value in response.headers.items():
                if name.lower() not in _HOP_BY_HOP | {"content-encoding"}:
                    self.send_header(name, value)
            self.send_header("Content-Length", str(len(response.content)))
            self.end_headers()
            self.wfile.write(response.content)

        do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _handle

    try:
        with _serving(Handler) as state.url:
            yield state
    finally:
        http.close()


class Relay:
    """A TCP relay to `upstream`: `drop()` cuts every open connection, and while
    `refusing` is set new connections are closed at once."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.refusing = threading.Event()
        self.accepted = 0
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # closed
            if self.refusing.is_set():
                client.close()
                continue
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
            with self._lock:
                self.accepted += 1
                self._open |= {client, upstream}
            for source, target in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, target), daemon=True).start()

    def _pump(self, source: socket.socket, target: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                target.sendall(data)
        except OSError:
            pass
        finally:
            self._close(source)
            self._close(target)

    def _close(self, sock: socket.socket) -> None:
        with self._lock:
            self._open.discard(sock)
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        sock.close()

    def drop(self) -> None:
        """Cut every open connection, as a lost network would."""
        with self._lock:
            sockets = list(self._open)
        for sock in sockets:
            self._close(sock)

    def close(self) -> None:
        self._listener.close()
        self.drop()


@dataclass
class ScriptedEvents:
    """An event-stream server: connection n gets `script[n]` (raw SSE text), then the
    response ends; the `Last-Event-ID` of every connection is recorded."""

    script: list[str]
    last_event_ids: list[str | None] = field(default_factory=list)
    connected_at: list[float] = field(default_factory=list)
    url: str = ""


@contextmanager
def scripted_events(script: list[str], clock: Callable[[], float]) -> Iterator[ScriptedEvents]:
    state = ScriptedEvents(script)
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            with lock:
                index = len(state.last_event_ids)
                state.last_event_ids.append(self.headers.get("Last-Event-ID"))
                state.connected_at.append(clock())
            payload = (state.script[index] if index < len(state.script) else "").encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Content-Length", str(len(payload)))
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(payload)
            self.close_connection = True

    with _serving(Handler) as state.url:
        yield state
