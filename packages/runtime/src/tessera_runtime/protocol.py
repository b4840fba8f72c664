"""uvicorn's httptools protocol with bounded request headers and a header-read timeout.

uvicorn's httptools protocol has no limit on the size or number of request
headers (httptools gathers a header's value in memory until it is complete) and
no timeout while a request's headers arrive: a client could send gigabytes of
headers, or hold a connection open with a partial request forever.
:class:`HeaderLimitedProtocol` adds both in the protocol, the layer that sees the
bytes before the parser does, and everything else stays uvicorn's.
:mod:`tessera_runtime.server` builds the configuration that uses it.

The subclass relies on attributes of uvicorn's protocol that are not public API
(``STATUS_LINE``, ``pipeline``, ``flow``, ``cycle.response_complete``, ...);
``packages/runtime/tests/test_server.py::TestUvicornInternals`` names any that an upgrade removes.
"""

from __future__ import annotations

import asyncio
import re
from asyncio import TimerHandle
from dataclasses import dataclass
from typing import Any

import httptools
import uvicorn
from tessera_contracts.problem import PROBLEM_MEDIA_TYPE, Problem
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol
from uvicorn.server import ServerState

from tessera_runtime.problems import status_title

__all__ = ["HeaderLimitedProtocol", "HeaderLimits", "ServerConfig"]

_HEADER_END = b"\r\n\r\n"
# The chunk size at the start of a chunk-size line. The parser runs strict (no
# leniencies for chunk framing), so the size it accepted is exactly these digits.
_CHUNK_SIZE = re.compile(rb"[0-9A-Fa-f]+")
# After a rejection the server keeps reading (and dropping) what the client still
# sends for this long before it closes: closing a socket with unread data makes
# the kernel answer with a reset, and the client would lose the 431/408 unread.
_LINGER_S = 1.0


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


class _ChunkFramingMismatch(Exception):
    """Raised from a parser callback when the parser's chunk framing is not what we fed by."""


class HeaderLimitedProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with bounded headers and a header-read timeout.

    Bytes are counted before the parser sees them, per request: the chunk that ends
    one request's headers is cut at the blank line, a ``Content-Length`` body is fed
    by its length, and a chunked body's framing (chunk-size lines, the line end
    after each chunk's data, trailers) line by line while each chunk's data goes
    in one call by the size its line announced. So body bytes and the next
    pipelined request are never counted against a request's headers, the parser
    never holds more than the limit of header bytes, and what a chunk contains
    (a megabyte of line feeds, say) does not change how often the parser is called.
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
        # or None for a chunked one.
        self._body_left: int | None = 0
        # Chunked: bytes left of the current chunk's data and the line end after it
        # (0: a chunk-size line or trailers come next), the framing line split
        # across reads so far (for its chunk size), framing bytes fed since
        # the last chunk data (bounded like a header block), and whether chunk data
        # is being fed (the parser must then call nothing but on_body).
        self._chunk_left = 0
        self._framing_line = bytearray()
        self._line: bytes | bytearray = b""  # where the line being fed starts: in
        self._line_at = 0  # the received data, or in _framing_line if it was split
        self._framing_run = 0
        self._in_chunk_data = False
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
            if isinstance(exc.__context__, _ChunkFramingMismatch):
                # Never expected of a strict parser; if it happens, the byte counts
                # can no longer be trusted, and the request is being served.
                self.logger.warning("Chunked request framing not understood: %s", exc.__context__)
                self.transport.close()
            elif not isinstance(exc.__context__, _HeaderLimitExceeded):
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
            return self._feed_chunked(data, view, start)
        # No body left but the message is not complete (an upgrade, say): feed the rest.
        end = len(data) if self._body_left == 0 else min(len(data), start + self._body_left)
        if self._body_left:
            self._body_left -= end - start
        self.parser.feed_data(view[start:end])
        return end

    def _feed_chunked(self, data: bytes, view: memoryview, start: int) -> int:
        """Feed a chunked body from ``start``: one chunk's data, or one framing line."""
        if self._chunk_left:
            # Chunk data and its line end: the message cannot end inside them, so
            # they go to the parser in one call, whatever the data holds.
            end = min(len(data), start + self._chunk_left)
            self._chunk_left -= end - start
            self._framing_run = 0
            self._in_chunk_data = True
            try:
                self.parser.feed_data(view[start:end])
            finally:
                self._in_chunk_data = False
            return end
        # Framing: the message can only end at a line end, so feeding line by line
        # leaves the next request's bytes to the header count.
        newline = data.find(b"\n", start)
        end = len(data) if newline < 0 else newline + 1
        self._framing_run += end - start
        if self._framing_run > self.limits.max_bytes:
            # An over-long chunk-size line, or trailer fields, which the parser would
            # gather like headers. The request is being served, so no answer can
            # follow: the connection ends, and the parser never sees these bytes.
            self.logger.warning("Chunked request framing or trailers too large.")
            self.transport.close()
            return len(data)
        if self._framing_line or newline < 0:
            # A line split across reads: gather it for on_chunk_header.
            self._framing_line += view[start:end]
            self._line, self._line_at = self._framing_line, 0
        else:
            self._line, self._line_at = data, start
        try:
            self.parser.feed_data(view[start:end])
        finally:
            self._line = b""
            if newline >= 0:
                self._framing_line.clear()
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
        self._chunk_left = 0
        self._framing_line.clear()
        self._framing_run = 0
        super().on_headers_complete()

    def on_chunk_header(self) -> None:
        # The parser has read a whole chunk-size line (the feed ended at its line
        # end): the chunk's data comes next, as many bytes as the line says, then
        # CRLF (the parser is strict: nothing else ends chunk data). After the
        # last chunk (size 0) come trailers, fed line by line.
        if self._in_chunk_data:
            raise _ChunkFramingMismatch("a chunk header inside chunk data")
        size = _CHUNK_SIZE.match(self._line, self._line_at)
        if size is None:
            raise _ChunkFramingMismatch("a chunk-size line without a size")
        data_bytes = int(size.group(), 16)
        self._chunk_left = data_bytes + 2 if data_bytes else 0

    def on_message_complete(self) -> None:
        if self._in_chunk_data:
            raise _ChunkFramingMismatch("the message ended inside chunk data")
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
