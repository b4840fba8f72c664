"""Run a service under uvicorn with bounded request headers and a header-read timeout.

uvicorn's httptools protocol has no limit on the size or number of request
headers (httptools gathers a header's value in memory until it is complete) and
no timeout while a request's headers arrive: a client could send gigabytes of
headers, or hold a connection open with a partial request forever.
:class:`HeaderLimitedProtocol` adds both in the protocol, the layer that sees the
bytes before the parser does, and everything else stays uvicorn's.

A service's ``python -m tessera_<name>``::

    settings = Settings(_cli_parse_args=True)  # environment, .env, then flags
    serve(create_app(settings), settings)
"""

from __future__ import annotations

import asyncio
import gc
from asyncio import TimerHandle
from dataclasses import dataclass
from typing import Any

import httptools
import uvicorn
from fastapi import FastAPI
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict
from starlette.types import ASGIApp
from tessera_contracts.problem import PROBLEM_MEDIA_TYPE, Problem
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol
from uvicorn.server import ServerState

from tessera_stack.web.health import ProbeTiming, set_probe_timing
from tessera_stack.web.probes import ProbeServer
from tessera_stack.web.problems import status_title

__all__ = [
    "HeaderLimitedProtocol",
    "HeaderLimits",
    "ServerConfig",
    "ServerSettings",
    "serve",
    "server_config",
]

_HEADER_END = b"\r\n\r\n"
# After a rejection the server keeps reading (and dropping) what the client still
# sends for this long before it closes: closing a socket with unread data makes
# the kernel answer with a reset, and the client would lose the 431/408 unread.
_LINGER_S = 1.0


class ServerSettings(BaseSettings):
    """The HTTP server part of a service's settings; each service's ``Settings`` extends it.

    The fields are read with the service's own prefix (``GATEWAY_MAX_HEADER_BYTES``).
    """

    # Flags are spelled `--max-header-bytes` when `python -m tessera_<name>` parses them.
    model_config = SettingsConfigDict(
        extra="ignore", use_attribute_docstrings=True, cli_kebab_case=True
    )

    host: str = "127.0.0.1"
    """Address to listen on (`0.0.0.0` in a container)."""
    port: int = Field(default=8000, ge=0, le=65535)
    """Port to listen on (each service has its own default)."""
    max_header_bytes: int = Field(default=61_440, ge=1024)
    """Largest request line plus headers, the blank line included (Envoy's 60 KiB);
    beyond it the request gets 431 and the connection is closed."""
    max_header_count: int = Field(default=100, ge=1)
    """Most header fields in one request (Envoy's 100); beyond it 431."""
    header_timeout_s: float = Field(default=10.0, gt=0)
    """Time a request's headers may take to arrive: from the connection's opening, or
    from the first byte of a later request on a kept-alive connection. Beyond it
    408 and the connection is closed (closed silently if nothing arrived)."""
    keep_alive_timeout_s: float = Field(default=5.0, gt=0)
    """Idle time after a response before the connection is closed."""
    graceful_shutdown_s: float = Field(default=5.0, ge=0)
    """On SIGTERM, how long in-flight requests (and SSE streams) may still run."""
    probe_port: int | None = Field(default=None, ge=0, le=65535)
    """Port of the separate `/healthz` and `/readyz` listener; unset: none."""
    probe_liveness_stall_s: float = Field(default=30.0, gt=1.0)
    """The probe port's `/healthz` answers 503 once the event loop has not turned for
    this long (stuck, not busy: a restart is the cure)."""
    probe_readiness_stale_s: float = Field(default=10.0, gt=0)
    """The probe port's `/readyz` answers 503 when the newest background run of the
    readiness checks is older than this; it must exceed 1 s plus the slowest check's
    timeout."""


@dataclass(frozen=True, slots=True)
class HeaderLimits:
    """What :class:`HeaderLimitedProtocol` enforces, taken from :class:`ServerSettings`."""

    max_bytes: int
    max_count: int
    timeout_s: float


class ServerConfig(uvicorn.Config):
    """A uvicorn configuration that also carries the header limits of its protocol."""

    def __init__(self, app: Any, *, header_limits: HeaderLimits, **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        self.header_limits = header_limits


class _HeaderLimitExceeded(Exception):
    """Raised from a parser callback to stop parsing a request with too many headers."""


class HeaderLimitedProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with bounded headers and a header-read timeout.

    Bytes are counted before the parser sees them, per request: the chunk that ends
    one request's headers is cut at the blank line, a ``Content-Length`` body is fed
    by its length and a chunked one up to each line end, so body bytes and the
    next pipelined request are never counted against a request's headers, and the
    parser never holds more than the limit of header bytes.
    """

    def __init__(
        self,
        config: uvicorn.Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        if not isinstance(config, ServerConfig):
            raise TypeError("HeaderLimitedProtocol needs a ServerConfig (see server_config())")
        self.limits = config.header_limits
        # State of the request whose headers are (or will next be) arriving.
        self._reading_headers = True
        self._header_bytes = 0
        self._header_count = 0
        self._header_tail = b""  # last bytes fed, for a blank line split across chunks
        self._header_timer: TimerHandle | None = None
        # State of the body being received: bytes left of a Content-Length body,
        # or None for a chunked one (fed up to each line end).
        self._body_left: int | None = 0
        self._body_seen = False
        self._framing_run = 0  # chunked: bytes fed since the last body bytes (trailers)
        self._rejected = False
        self._deferred_rejection: tuple[int, str] | None = None

    # --- connection ------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_header_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_header_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._rejected:
            return  # lingering after a 431/408: drop what still arrives
        self._unset_keepalive_if_required()
        view = memoryview(data)
        start = 0
        try:
            while start < len(data) and not self._rejected and not self.transport.is_closing():
                if self._reading_headers:
                    start = self._feed_headers(data, view, start)
                else:
                    start = self._feed_body(data, view, start)
        except httptools.HttpParserUpgrade:
            # As uvicorn does: the bytes after an upgrade request are the new protocol's.
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
        except httptools.HttpParserError as exc:
            if not isinstance(exc.__context__, _HeaderLimitExceeded):
                msg = "Invalid HTTP request received."
                self.logger.warning(msg)
                self.send_400_response(msg)
            elif self._reading_headers:
                self._reject_headers(
                    f"more header fields than the limit of {self.limits.max_count}"
                )
            else:
                # Trailers of a chunked body: its request is being served, so no
                # answer can follow; the connection ends.
                self.logger.warning("Too many chunked request trailer fields.")
                self.transport.close()
            return
        if (
            self._reading_headers
            and self._header_bytes
            and self._header_timer is None
            and not self._rejected
            and not self._response_in_progress()
        ):
            # A later request on this connection began but its headers are not all
            # here: its clock starts now. (Most requests arrive whole and need none.)
            self._arm_header_timer()

    def _feed_headers(self, data: bytes, view: memoryview, start: int) -> int:
        """Feed header bytes from ``start``, never past the limit; return where it stopped."""
        allowed = self.limits.max_bytes - self._header_bytes
        # The blank line may begin in the previous chunk.
        joined = self._header_tail + data[start : start + 3]
        found = joined.find(_HEADER_END)
        if found >= 0:
            end = start + found + len(_HEADER_END) - len(self._header_tail)
        else:
            found = data.find(_HEADER_END, start, start + allowed)
            end = found + len(_HEADER_END) if found >= 0 else -1
        if end < 0 or end - start > allowed:
            if len(data) - start > allowed:
                self._reject_headers(
                    f"the request line and headers exceed the limit of {self.limits.max_bytes} bytes"
                )
                return len(data)
            end = len(data)
        self._header_bytes += end - start
        tail = self._header_tail + data[max(start, end - 3) : end]
        self.parser.feed_data(view[start:end])
        if self._reading_headers and self._header_bytes:
            self._header_tail = tail[-3:]  # this request's headers go on in the next chunk
        return end

    def _feed_body(self, data: bytes, view: memoryview, start: int) -> int:
        """Feed body bytes from ``start`` up to where the message may end; return that."""
        if self._body_left is None:
            # Chunked: the message can only end at a line end, so feeding line by
            # line leaves the next request's bytes to the header count.
            newline = data.find(b"\n", start)
            end = len(data) if newline < 0 else newline + 1
            self._body_seen = False
            self.parser.feed_data(view[start:end])
            self._framing_run = 0 if self._body_seen else self._framing_run + end - start
            if self._framing_run > self.limits.max_bytes:
                # Trailer fields, which the parser would gather like headers; as
                # above, the request is being served and the connection ends.
                self.logger.warning("Chunked request framing or trailers too large.")
                self.transport.close()
            return end
        # No body left but the message is not complete (an upgrade, say): feed the rest.
        end = len(data) if self._body_left == 0 else min(len(data), start + self._body_left)
        if self._body_left:
            self._body_left -= end - start
        self.parser.feed_data(view[start:end])
        return end

    # --- parser callbacks --------------------------------------------------------

    def on_header(self, name: bytes, value: bytes) -> None:
        # Trailers of a chunked body arrive here too and count with the headers.
        self._header_count += 1
        if self._header_count > self.limits.max_count:
            raise _HeaderLimitExceeded
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._reading_headers = False
        self._cancel_header_timer()
        self._body_left = 0
        for name, value in self.headers:
            # The parser has checked the framing headers (no conflicting lengths).
            if name == b"transfer-encoding":
                self._body_left = None
                break
            if name == b"content-length":
                self._body_left = int(value)
        self._framing_run = 0
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        self._body_seen = True
        super().on_body(body)

    def on_message_complete(self) -> None:
        super().on_message_complete()
        # What follows on this connection is the next request's headers.
        self._reading_headers = True
        self._header_bytes = 0
        self._header_count = 0
        self._header_tail = b""

    def on_response_complete(self) -> None:
        if self._deferred_rejection is not None and not self.pipeline:
            self.server_state.total_requests += 1
            status, detail = self._deferred_rejection
            self._deferred_rejection = None
            if not self.transport.is_closing():
                self._reject(status, detail)
            return
        super().on_response_complete()
        if self._reading_headers and self._header_bytes and not self.transport.is_closing():
            # Part of a pipelined request arrived during the response: its clock starts now.
            self._arm_header_timer()

    # --- limits ------------------------------------------------------------------

    def _response_in_progress(self) -> bool:
        return self.cycle is not None and not self.cycle.response_complete

    def _arm_header_timer(self) -> None:
        self._cancel_header_timer()
        self._header_timer = self.loop.call_later(self.limits.timeout_s, self._header_timeout)

    def _cancel_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _header_timeout(self) -> None:
        self._header_timer = None
        if self.transport.is_closing() or not self._reading_headers:
            return
        if self._header_bytes == 0:
            # Nothing of a request arrived: no one to answer.
            self.transport.close()
            return
        self.logger.info("Request headers not received within %g s.", self.limits.timeout_s)
        detail = f"the request headers did not arrive within {self.limits.timeout_s:g} s"
        self._reject(408, detail)

    def _reject_headers(self, detail: str) -> None:
        self.logger.warning("Request header fields too large: %s.", detail)
        self._reject(431, detail)

    def _reject(self, status: int, detail: str) -> None:
        """Answer ``status`` with a problem, then stop reading and close the connection."""
        self._rejected = True
        self._cancel_header_timer()
        if self._response_in_progress():
            # A pipelined request behind a response still being written: answer it
            # after that response (and the requests queued before it).
            self._deferred_rejection = (status, detail)
            self.flow.pause_reading()
            return
        problem = Problem(title=status_title(status), status=status, detail=detail)
        body = problem.model_dump_json(exclude_none=True).encode()
        content = [STATUS_LINE[status]]
        for name, value in self.server_state.default_headers:
            content.extend([name, b": ", value, b"\r\n"])
        content.extend(
            [
                b"content-type: " + PROBLEM_MEDIA_TYPE.encode() + b"\r\n",
                b"content-length: " + str(len(body)).encode() + b"\r\n",
                b"connection: close\r\n\r\n",
                body,
            ]
        )
        self.transport.write(b"".join(content))
        if self.transport.can_write_eof():
            self.transport.write_eof()
            self.flow.resume_reading()  # to drop what the client still sends
            self.loop.call_later(_LINGER_S, self.transport.close)
        else:
            self.transport.close()


def server_config(app: ASGIApp, settings: ServerSettings) -> uvicorn.Config:
    """The uvicorn configuration that serves ``app`` as ``settings`` say.

    uvloop and httptools under :class:`HeaderLimitedProtocol`; no uvicorn access log
    (the services write their own) and no uvicorn log configuration (the app's
    ``configure_logging`` routes uvicorn's loggers through its JSON handler).
    """
    limits = HeaderLimits(
        max_bytes=settings.max_header_bytes,
        max_count=settings.max_header_count,
        timeout_s=settings.header_timeout_s,
    )
    return ServerConfig(
        app,
        header_limits=limits,
        host=settings.host,
        port=settings.port,
        http=HeaderLimitedProtocol,
        loop="uvloop",
        log_config=None,
        access_log=False,
        lifespan="on",
        # uvicorn annotates both as int, but hands them to call_later and wait_for,
        # which take seconds as floats.
        timeout_keep_alive=settings.keep_alive_timeout_s,
        timeout_graceful_shutdown=settings.graceful_shutdown_s,
    )


def serve(app: FastAPI, settings: ServerSettings) -> None:
    """Serve ``app`` until SIGINT/SIGTERM, with its probe listener if ``settings.probe_port``."""
    server = uvicorn.Server(server_config(app, settings))
    # What was built so far (modules, the app) lives as long as the process: moving
    # it out of the collector's generations shortens the full collections that,
    # under load, hold the GIL long enough to delay the probe thread's answers
    # (BENCHMARKS.md, overload scenario).
    gc.collect()
    gc.freeze()
    if settings.probe_port is None:
        server.run()
        return
    set_probe_timing(
        app,
        ProbeTiming(
            liveness_stall_s=settings.probe_liveness_stall_s,
            readiness_stale_s=settings.probe_readiness_stale_s,
        ),
    )
    with ProbeServer(app, settings.host, settings.probe_port):
        server.run()
