"""Live events: an endless `text/event-stream` that resumes by itself.

The stream remembers the `id` of the last event (id-only events included, as
EventSource does) and, when the connection drops or the server ends the
stream, reconnects with `Last-Event-ID`, so nothing is missed and nothing is
repeated. It waits the server's `retry:` (capped) before reconnecting, and
backs off while reconnection attempts fail.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncGenerator, Callable, Generator, Iterator
from functools import cached_property
from typing import Any, Final, Generic, Self, TypedDict, TypeVar, Unpack

import httpx
from tessera_contracts import Operation
from tessera_contracts.parameters import STREAM_SEQUENCE_MAX

from tessera_client._closing import AsyncClosing, SyncClosing
from tessera_client._core import AsyncCore, SyncCore
from tessera_client._errors import TesseraConnectionError, TesseraError, problem_of
from tessera_client._request import prepare
from tessera_client._retry import RETRY_STATUSES
from tessera_client._sse import (
    MAX_DATA_BYTES,
    MAX_LINE_BYTES,
    ServerSentEvent,
    SseDecoder,
    SseOverflow,
)

E = TypeVar("E")

LAST_EVENT_ID: Final = "Last-Event-ID"
DEFAULT_RECONNECT_S: Final = 1.0
"""Pause before reconnecting when the server suggested none."""
READ_TIMEOUT_S: Final = 60.0
"""Silence after which the connection counts as dead: servers send keep-alive
comments well within it (the gateway every 15 s by default)."""
_DIGITS: Final = re.compile(r"[0-9]+")


C = TypeVar("C", AsyncCore, SyncCore)


class StreamOptions(TypedDict, total=False):
    """Where a stream starts and how persistent it is (see `AsyncV1.events`)."""

    last_event_id: int | None
    reconnect_attempts: int | None
    max_line_bytes: int
    max_data_bytes: int


class _Resume(Generic[C, E]):
    """What the async and sync streams share: the position, and the pauses."""

    def __init__(
        self,
        core: C,
        operation: Operation,
        decode: Callable[[str], E],
        **options: Unpack[StreamOptions],
    ) -> None:
        self._core: C = core
        self._decode = decode
        self.operation = operation
        self.retry = core.retry
        self.last_event_id = options.get("last_event_id")
        self.reconnect_attempts = options.get("reconnect_attempts")
        self.reconnects = 0
        """Connections opened after the first (for monitoring)."""
        self.retry_ms: int | None = None
        self.failures = 0  # consecutive failed connection attempts
        self._failures_before = 0  # at the last connection, for an overflow to count on
        self._connected_once = False
        self._max_line_bytes = options.get("max_line_bytes", MAX_LINE_BYTES)
        self._max_data_bytes = options.get("max_data_bytes", MAX_DATA_BYTES)

    def stream_arguments(self) -> dict[str, Any]:
        """The arguments of `httpx.Client.stream` (and of the async one) for the next connection."""
        headers = {} if self.last_event_id is None else {LAST_EVENT_ID: self.last_event_id}
        prepared = prepare(self.operation, headers=headers)
        return {
            "method": "GET",
            "url": prepared.url,
            "params": prepared.params,
            "headers": prepared.headers,
            "timeout": _stream_timeout(self._core.http.timeout),
        }

    def connected(self) -> SseDecoder:
        """A connection is open: reset the failures; its decoder."""
        self.reconnects += self._connected_once
        self._connected_once = True
        self._failures_before, self.failures = self.failures, 0
        return SseDecoder(
            None if self.last_event_id is None else str(self.last_event_id),
            max_line_bytes=self._max_line_bytes,
            max_data_bytes=self._max_data_bytes,
        )

    def received(self, decoder: SseDecoder, chunk: bytes) -> Iterator[E]:
        """The events a chunk completes, decoded, remembering their position and `retry:`."""
        for event in decoder.feed(chunk):
            self.retry_ms = decoder.retry_ms
            if self.take(event):
                yield self._decode(event.data)
        self.retry_ms = decoder.retry_ms

    def take(self, event: ServerSentEvent) -> bool:
        """Remember the event's position; whether it carries data to yield."""
        # Only ids the gateway could send (and `Last-Event-ID` accepts): another
        # would make every reconnection fail.
        if event.id is not None and _DIGITS.fullmatch(event.id):
            position = int(event.id)
            if position <= STREAM_SEQUENCE_MAX:
                self.last_event_id = position
        return event.data != ""

    def dropped(self, error: SseOverflow | httpx.TransportError, streaming: bool) -> float:
        """The connection failed or dropped: the pause before the next.

        A drop mid-stream is routine (reconnect soon); a failed connection attempt,
        or a connection dropped for an oversized line or event, counts towards giving
        up, so a server that keeps sending one makes the stream give up like a dead one.

        Raises:
            httpx.LocalProtocolError: the request itself is malformed (repeating it cannot help).
        """
        if isinstance(error, httpx.LocalProtocolError):
            raise error
        if isinstance(error, SseOverflow):
            self.failures = self._failures_before
            return self.failed(None, httpx.ReadError(str(error)))
        return self.pause_after_drop() if streaming else self.failed(None, error)

    def pause_after_drop(self) -> float:
        if self.retry_ms is not None:
            return min(self.retry_ms / 1000, self.retry.retry_after_max_s)
        return DEFAULT_RECONNECT_S

    def failed(self, response: httpx.Response | None, error: httpx.TransportError | None) -> float:
        """Count a failed attempt; the pause before the next, or raise when out of attempts."""
        if response is not None and response.status_code not in RETRY_STATUSES:
            raise self._error(response)
        # Until a first connection worked, the client's retry limit applies, so a
        # wrong URL or a stack that is down fails fast instead of waiting forever.
        limit = self.reconnect_attempts if self._connected_once else self.retry.max_retries
        if limit is not None and self.failures >= limit:
            if response is not None:
                raise self._error(response)
            assert error is not None
            raise TesseraConnectionError(self.operation, self.failures + 1, error) from error
        pause = self.retry.pause(self.failures, response)
        if pause is None:  # a `Retry-After` beyond the cap
            assert response is not None
            raise self._error(response)
        if self.retry_ms is not None:
            pause = max(pause, self.pause_after_drop())
        self.failures += 1
        return pause

    def _error(self, response: httpx.Response) -> TesseraError:
        return TesseraError(problem_of(response, self.operation), response.headers, self.operation)


class AsyncEventStream(_Resume[AsyncCore, E], AsyncClosing):
    """`async for event in stream`; `stream.last_event_id` is where it would resume."""

    @cached_property
    def _events(self) -> AsyncGenerator[E, None]:
        return self._run()

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> E:
        return await self._events.__anext__()

    async def aclose(self) -> None:
        """Close the connection."""
        await self._events.aclose()

    async def _run(self) -> AsyncGenerator[E, None]:
        while True:
            streaming = False
            try:
                async with self._core.http.stream(**self.stream_arguments()) as response:
                    if response.status_code != 200:
                        await response.aread()
                        pause = self.failed(response, None)
                    else:
                        streaming = True
                        decoder = self.connected()
                        async for chunk in response.aiter_bytes():
                            for event in self.received(decoder, chunk):
                                yield event
                        pause = self.pause_after_drop()
            except (SseOverflow, httpx.TransportError) as error:
                pause = self.dropped(error, streaming)
            await asyncio.sleep(pause)


class SyncEventStream(_Resume[SyncCore, E], SyncClosing):
    """`for event in stream`; `stream.last_event_id` is where it would resume."""

    @cached_property
    def _events(self) -> Generator[E, None, None]:
        return self._run()

    def __iter__(self) -> Self:
        return self

    def __next__(self) -> E:
        return next(self._events)

    def close(self) -> None:
        """Close the connection."""
        self._events.close()

    def _run(self) -> Generator[E, None, None]:
        while True:
            streaming = False
            try:
                with self._core.http.stream(**self.stream_arguments()) as response:
                    if response.status_code != 200:
                        response.read()
                        pause = self.failed(response, None)
                    else:
                        streaming = True
                        decoder = self.connected()
                        for chunk in response.iter_bytes():
                            yield from self.received(decoder, chunk)
                        pause = self.pause_after_drop()
            except (SseOverflow, httpx.TransportError) as error:
                pause = self.dropped(error, streaming)
            time.sleep(pause)


def _stream_timeout(base: httpx.Timeout) -> httpx.Timeout:
    return httpx.Timeout(
        connect=base.connect, read=READ_TIMEOUT_S, write=base.write, pool=base.pool
    )
