"""A `text/event-stream` parser (the WHATWG HTML rules), fed one line at a time."""

from __future__ import annotations

from dataclasses import dataclass


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


class SseParser:
    """Turns lines (without their line ending) into events.

    An event with no data is still returned (with `data == ""`) when it carried
    an `id`, because a client must remember that id for its reconnection; the
    caller skips it as an event.
    """

    def __init__(self, last_id: str | None = None) -> None:
        self._data: list[str] = []
        self._event = ""
        self._id = last_id
        self._id_seen = False
        self._retry_ms: int | None = None

    def feed(self, line: str) -> ServerSentEvent | None:
        """Take one line; the event it completes, if any."""
        if line == "":
            return self._dispatch()
        if line.startswith(":"):
            return None  # a comment: keep-alive
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id":
            if "\x00" not in value:
                self._id = value
                self._id_seen = True
        elif name == "retry":
            if value.isdigit():
                self._retry_ms = int(value)
        return None

    def _dispatch(self) -> ServerSentEvent | None:
        data, event, id_seen = self._data, self._event, self._id_seen
        self._data, self._event, self._id_seen = [], "", False
        if not data and not id_seen:
            return None
        return ServerSentEvent(
            event=event or "message", data="\n".join(data), id=self._id, retry_ms=self._retry_ms
        )

    @property
    def retry_ms(self) -> int | None:
        return self._retry_ms
