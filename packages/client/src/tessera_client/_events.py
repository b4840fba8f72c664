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
from collections.abc import AsyncGenerator, Callable, Generator
from types import TracebackType
from typing import Final, Generic, Self, TypeVar

import httpx
from tessera_contracts import Operation
from tessera_contracts.parameters import STREAM_SEQUENCE_MAX

from tessera_client._core import AsyncCore, SyncCore
from tessera_client._errors import TesseraConnectionError, TesseraError, problem_of
from tessera_client._request import Prepared, prepare
from tessera_client._retry import RETRY_STATUSES, RetryConfig
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


class _Resume:
    """What the async and sync streams share: the position, and the pauses."""

    def __init__(
        self,
        operation: Operation,
        retry: RetryConfig,
        last_event_id: int | None,
        reconnect_attempts: int | None,
        max_line_bytes: int,
        max_data_bytes: int,
    ) -> None:
        self.operation = operation
        self.retry = retry
        self.last_event_id = last_event_id
        self.reconnect_attempts = reconnect_attempts
        self.reconnects = 0
        """Connections opened after the first (for monitoring)."""
        self.retry_ms: int | None = None
        self.failures = 0  # consecutive failed connection attempts
        self._failures_before = 0  # at the last connection, for an overflow to count on
        self._connected_once = False
        self._max_line_bytes = max_line_bytes
        self._max_data_bytes = max_data_bytes

    def request(self) -> Prepared:
        headers = {} if self.last_event_id is None else {LAST_EVENT_ID: self.last_event_id}
        return prepare(self.operation, headers=headers)

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

    def take(self, event: ServerSentEvent) -> bool:
        """Remember the event's position; whether it carries data to yield."""
        # Only ids the gateway could send (and `Last-Event-ID` accepts): another
        # would make every reconnection fail.
        if event.id is not None and _DIGITS.fullmatch(event.id):
            position = int(event.id)
            if position <= STREAM_SEQUENCE_MAX:
                self.last_event_id = position
        return event.data != ""

    def overflowed(self, error: SseOverflow) -> float:
        """The connection was dropped for an oversized line or event: a failed attempt,
        so a server that keeps sending one makes the stream give up like a dead one."""
        self.failures = self._failures_before
        return self.failed(None, httpx.ReadError(str(error)))

    def pause_after_drop(self) -> float:
        if self.retry_ms is not None:
            return min(self.retry_ms / 1000, self.retry.retry_after_max_s)
        return DEFAULT_RECONNECT_S

    def failed(self, response: httpx.Response | None, error: httpx.TransportError | None) -> float:
        """Count a failed attempt; the pause before the next, or raise when out of attempts."""
        if response is not None and response.status_code not in RETRY_STATUSES:
            raise TesseraError(
                problem_of(response, self.operation), response.headers, self.operation
            )
        # Until a first connection worked, the client's retry limit applies, so a
        # wrong URL or a stack that is down fails fast instead of waiting forever.
        limit = self.reconnect_attempts if self._connected_once else self.retry.max_retries
        if limit is not None and self.failures >= limit:
            if response is not None:
                raise TesseraError(
                    problem_of(response, self.operation), response.headers, self.operation
                )
            assert error is not None
            raise TesseraConnectionError(self.operation, self.failures + 1, error) from error
        pause = self.retry.pause(self.failures, response)
        if pause is None:  # a `Retry-After` beyond the cap
            assert response is not None
            raise TesseraError(
                problem_of(response, self.operation), response.headers, self.operation
            )
        if self.retry_ms is not None:
            pause = max(pause, self.pause_after_drop())
        self.failures += 1
        return pause


class AsyncEventStream(Generic[E], _Resume):
    """`async for event in stream`; `stream.last_event_id` is where it would resume."""

    def __init__(
        self,
        core: AsyncCore,
        operation: Operation,
        decode: Callable[[str], E],
        *,
        last_event_id: int | None = None,
        reconnect_attempts: int | None = None,
        max_line_bytes: int = MAX_LINE_BYTES,
        max_data_bytes: int = MAX_DATA_BYTES,
    ) -> None:
        super().__init__(
            operation,
            core.retry,
            last_event_id,
            reconnect_attempts,
            max_line_bytes,
            max_data_bytes,
        )
        self._core = core
        self._decode = decode
        self._events = self._run()

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> E:
        return await self._events.__anext__()

    async def aclose(self) -> None:
        """Close the connection."""
        await self._events.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def _run(self) -> AsyncGenerator[E, None]:
        timeout = _stream_timeout(self._core.http.timeout)
        while True:
            prepared = self.request()
            streaming = False
            try:
                async with self._core.http.stream(
                    "GET",
                    prepared.url,
                    params=prepared.params,
                    headers=prepared.headers,
                    timeout=timeout,
                ) as response:
                    if response.status_code != 200:
                        await response.aread()
                        pause = self.failed(response, None)
                    else:
                        streaming = True
                        decoder = self.connected()
                        async for chunk in response.aiter_bytes():
                            for event in decoder.feed(chunk):
                                self.retry_ms = decoder.retry_ms
                                if self.take(event):
                                    yield self._decode(event.data)
                            self.retry_ms = decoder.retry_ms
                        pause = self.pause_after_drop()
            except SseOverflow as error:
                pause = self.overflowed(error)
            except httpx.LocalProtocolError:
                raise  # the request itself is malformed: repeating it cannot help
            except httpx.TransportError as error:
                # A drop mid-stream is routine (reconnect soon); a failed connection
                # attempt counts towards giving up.
                pause = self.pause_after_drop() if streaming else self.failed(None, error)
            await asyncio.sleep(pause)


class SyncEventStream(Generic[E], _Resume):
    """`for event in stream`; `stream.last_event_id` is where it would resume."""

    def __init__(
        self,
        core: SyncCore,
        operation: Operation,
        decode: Callable[[str], E],
        *,
        last_event_id: int | None = None,
        reconnect_attempts: int | None = None,
        max_line_bytes: int = MAX_LINE_BYTES,
        max_data_bytes: int = MAX_DATA_BYTES,
    ) -> None:
        super().__init__(
            operation,
            core.retry,
            last_event_id,
            reconnect_attempts,
            max_line_bytes,
            max_data_bytes,
        )
        self._core = core
        self._decode = decode
        self._events = self._run()

    def __iter__(self) -> Self:
        return self

    def __next__(self) -> E:
        return next(self._events)

    def close(self) -> None:
        """Close the connection."""
        self._events.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _run(self) -> Generator[E, None, None]:
        timeout = _stream_timeout(self._core.http.timeout)
        while True:
            prepared = self.request()
            streaming = False
            try:
                with self._core.http.stream(
                    "GET",
                    prepared.url,
                    params=prepared.params,
                    headers=prepared.headers,
                    timeout=timeout,
                ) as response:
                    if response.status_code != 200:
                        response.read()
                        pause = self.failed(response, None)
                    else:
                        streaming = True
                        decoder = self.connected()
                        for chunk in response.iter_bytes():
                            for event in decoder.feed(chunk):
                                self.retry_ms = decoder.retry_ms
                                if self.take(event):
                                    yield self._decode(event.data)
                            self.retry_ms = decoder.retry_ms
                        pause = self.pause_after_drop()
            except SseOverflow as error:
                pause = self.overflowed(error)
            except httpx.LocalProtocolError:
                raise  # the request itself is malformed: repeating it cannot help
            except httpx.TransportError as error:
                pause = self.pause_after_drop() if streaming else self.failed(None, error)
            time.sleep(pause)


def _stream_timeout(base: httpx.Timeout) -> httpx.Timeout:
    return httpx.Timeout(
        connect=base.connect, read=READ_TIMEOUT_S, write=base.write, pool=base.pool
    )
