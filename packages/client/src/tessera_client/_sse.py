"""A `text/event-stream` parser (the WHATWG HTML rules), fed the body's bytes.

Lines end only at CR, LF or CRLF: not at the other breaks `str.splitlines`
knows (U+2028, U+2029, U+0085, ...), which JSON in a `data` field may hold
unescaped. Lines and an event's data are capped, so a server that never ends
a line or an event cannot make the client buffer without limit.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final

MAX_LINE_BYTES: Final = 1 << 20
"""Default longest line (1 MiB)."""
MAX_DATA_BYTES: Final = 1 << 20
"""Default most `data` of one event (1 MiB, UTF-8)."""

_LINE_END: Final = re.compile(rb"\r\n|\r|\n")
_DIGITS: Final = re.compile(r"[0-9]+")


class SseOverflow(Exception):
    """A line or an event's data exceeded its cap: the stream must be dropped."""


@dataclass(frozen=True, slots=True)
class ServerSentEvent:
    """One dispatched event: a blank line ended it."""

    event: str
    """`event` field; "message" when absent."""
    data: str
    """The `data` lines, joined with newlines; empty for an id-only event."""
    id: str | None
    """The last event id after this event (the stream's, not only this event's)."""
    retry_ms: int | None
    """The latest `retry` field seen, in milliseconds."""


class LineSplitter:
    """Cuts a byte stream into lines (CR, LF or CRLF), decoded as UTF-8 one by one.

    A CR that ends one chunk and an LF that starts the next are one line end.
    """

    def __init__(self, max_line_bytes: int = MAX_LINE_BYTES) -> None:
        self._max = max_line_bytes
        self._partial = bytearray()
        self._after_cr = False
        self._first = True

    def feed(self, chunk: bytes) -> Iterator[str]:
        """The lines `chunk` completes (without their line ends), one by one.

        Raises:
            SseOverflow: a line longer than the cap (after the lines before it).
        """
        start = 0
        if self._after_cr and chunk:
            start = 1 if chunk[:1] == b"\n" else 0
            self._after_cr = False
        for end in _LINE_END.finditer(chunk, start):
            self._append(chunk[start : end.start()])
            start = end.end()
            # A CR last in the chunk may be the first half of a CRLF.
            self._after_cr = end.group() == b"\r" and start == len(chunk)
            yield self._take()
        self._append(chunk[start:])

    def _append(self, part: bytes) -> None:
        if len(self._partial) + len(part) > self._max:
            raise SseOverflow(f"an event-stream line is longer than {self._max} bytes")
        self._partial += part

    def _take(self) -> str:
        # Line ends are ASCII, which never occurs inside a UTF-8 sequence, so each
        # line decodes on its own; invalid bytes become U+FFFD as the standard says.
        line = self._partial.decode("utf-8", errors="replace")
        self._partial.clear()
        if self._first:
            self._first = False
            line = line.removeprefix("\ufeff")  # one leading BOM is ignored
        return line


class SseParser:
    """Turns lines (without their line ending) into events.

    An event with no data is still returned (with `data == ""`) when it carried
    an `id`, because a client must remember that id for its reconnection; the
    caller skips it as an event.
    """

    def __init__(self, last_id: str | None = None, *, max_data_bytes: int = MAX_DATA_BYTES) -> None:
        self._max_data = max_data_bytes
        self._data: list[str] = []
        self._data_bytes = 0
        self._event = ""
        self._id = last_id
        self._id_seen = False
        self._retry_ms: int | None = None

    def feed(self, line: str) -> ServerSentEvent | None:
        """Take one line; the event it completes, if any.

        Raises:
            SseOverflow: the event's data exceeds the cap.
        """
        if line == "":
            return self._dispatch()
        if line.startswith(":"):
            return None  # a comment: keep-alive
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            self._data_bytes += len(value.encode()) + 1
            if self._data_bytes > self._max_data:
                raise SseOverflow(f"an event's data is longer than {self._max_data} bytes")
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id":
            if "\x00" not in value:
                self._id = value
                self._id_seen = True
        elif name == "retry":
            # Only ASCII digits: `str.isdigit` also takes "²", which `int` refuses.
            if _DIGITS.fullmatch(value):
                self._retry_ms = int(value)
        return None

    def _dispatch(self) -> ServerSentEvent | None:
        data, event, id_seen = self._data, self._event, self._id_seen
        self._data, self._data_bytes, self._event, self._id_seen = [], 0, "", False
        if not data and not id_seen:
            return None
        return ServerSentEvent(
            event=event or "message", data="\n".join(data), id=self._id, retry_ms=self._retry_ms
        )

    @property
    def retry_ms(self) -> int | None:
        return self._retry_ms


class SseDecoder:
    """Bytes in, events out: a `LineSplitter` feeding an `SseParser`."""

    def __init__(
        self,
        last_id: str | None = None,
        *,
        max_line_bytes: int = MAX_LINE_BYTES,
        max_data_bytes: int = MAX_DATA_BYTES,
    ) -> None:
        self._lines = LineSplitter(max_line_bytes)
        self._parser = SseParser(last_id, max_data_bytes=max_data_bytes)

    def feed(self, chunk: bytes) -> Iterator[ServerSentEvent]:
        """The events `chunk` completes, one by one.

        Raises:
            SseOverflow: a line or an event's data exceeds its cap (after the
                events completed before it).
        """
        for line in self._lines.feed(chunk):
            event = self._parser.feed(line)
            if event is not None:
                yield event

    @property
    def retry_ms(self) -> int | None:
        return self._parser.retry_ms
