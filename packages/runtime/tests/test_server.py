"""The services' HTTP server bounds request headers and the time they may take.

A real uvicorn serves a small app under `server_config` (the protocol every
service runs) in the test's event loop; clients are raw sockets, so the tests
control every byte and its timing. The shutdown tests need a real signal, so they
run `scripts/slow_service.py` (a service started by `run_service`) as a process.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import re
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httptools
import httpx
import uvicorn
import uvicorn.protocols.http.httptools_impl as uvicorn_httptools
from fastapi import FastAPI, Request
from tessera_contracts.problem import PROBLEM_MEDIA_TYPE
from tessera_runtime import begin_draining, create_service_app, is_draining
from tessera_runtime.protocol import HeaderLimitedProtocol
from tessera_runtime.server import DrainingServer, ServerSettings, server_config
from tessera_stack.process import free_port
from tessera_stack.testing import answers_until, running_service, serving, status_is
from uvicorn.protocols.http.flow_control import FlowControl
from uvicorn.server import ServerState

from .conftest import in_thread

MB = 1 << 20
SLOW_SERVICE = Path(__file__).parent / "scripts" / "slow_service.py"


def demo_app() -> FastAPI:
    app = FastAPI()

    @app.get("/")
    async def root() -> dict[str, bool]:
        return {"ok": True}

    @app.post("/echo")
    async def echo(request: Request) -> dict[str, int]:
        return {"bytes": len(await request.body())}

    return app


@asynccontextmanager
async def running(**settings: Any) -> AsyncIterator[int]:
    """Serve the demo app with these ServerSettings for the block; yield its port."""
    config = server_config(demo_app(), ServerSettings(host="127.0.0.1", port=0, **settings))
    async with serving(config) as port:
        yield port


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class _Collector:
    parser: httptools.HttpResponseParser | None = None
    answers: list[Answer] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers[name.decode().lower()] = value.decode()

    def on_body(self, body: bytes) -> None:
        self.body += body

    def on_message_complete(self) -> None:
        assert self.parser is not None
        self.answers.append(Answer(self.parser.get_status_code(), self.headers, self.body))
        self.headers, self.body = {}, b""


def answers(data: bytes) -> list[Answer]:
    """The complete HTTP responses in `data`, in order."""
    collector = _Collector()
    collector.parser = httptools.HttpResponseParser(collector)
    collector.parser.feed_data(data)
    return collector.answers


class Connection:
    """One client connection; `received` gathers everything the server sends until it closes."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.writer = writer
        self.received = b""
        self.first_received_at: float | None = None
        self.closed_at: float | None = None
        self._reader = asyncio.create_task(self._read(reader))

    @classmethod
    async def open(cls, port: int) -> Connection:
        return cls(*await asyncio.open_connection("127.0.0.1", port))

    async def _read(self, reader: asyncio.StreamReader) -> None:
        with contextlib.suppress(ConnectionError):
            while chunk := await reader.read(65536):
                if self.first_received_at is None:
                    self.first_received_at = time.monotonic()
                self.received += chunk
        self.closed_at = time.monotonic()

    async def send(self, data: bytes) -> bool:
        """Send `data`; False once the server no longer takes any."""
        try:
            self.writer.write(data)
            await self.writer.drain()
        except ConnectionError:
            return False
        return not self.writer.is_closing()

    async def closed_by_server(self, within_s: float) -> bool:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self._reader), within_s)
        return self._reader.done()

    async def aclose(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError):
            await self.writer.wait_closed()
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader


@asynccontextmanager
async def connected(port: int) -> AsyncIterator[Connection]:
    async with contextlib.aclosing(await Connection.open(port)) as connection:
        yield connection


@asynccontextmanager
async def connection_to(**settings: Any) -> AsyncIterator[Connection]:
    """One connection to the demo app served with these ServerSettings."""
    async with running(**settings) as port, connected(port) as connection:
        yield connection


async def exchange(port: int, data: bytes, within_s: float = 5.0) -> list[Answer]:
    """Send `data` on a new connection and return the answers until the server closes it."""
    async with connected(port) as connection:
        await connection.send(data)
        assert await connection.closed_by_server(within_s), "the server kept the connection open"
        return answers(connection.received)


def get(path: str = "/", headers: Iterable[tuple[str, str]] = (), *, close: bool = False) -> bytes:
    lines = [f"GET {path} HTTP/1.1", "Host: test", *(f"{k}: {v}" for k, v in headers)]
    if close:
        lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def padded_get(size: int, *, close: bool = True) -> bytes:
    """A GET whose request line and headers (blank line included) are `size` bytes."""
    bare = get(headers=[("X-Pad", "")], close=close)
    request = get(headers=[("X-Pad", "p" * (size - len(bare)))], close=close)
    assert len(request) == size
    return request


def rss_bytes() -> int:
    status = Path("/proc/self/status").read_text()
    match = re.search(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE)
    assert match is not None
    return int(match.group(1)) * 1024


def assert_problem(answer: Answer, status: int, detail_has: str) -> None:
    assert answer.status == status
    assert answer.headers["content-type"] == PROBLEM_MEDIA_TYPE
    assert answer.headers["connection"] == "close"
    problem = answer.json()
    assert problem["status"] == status
    assert detail_has in problem["detail"]


class TestHeaderSize:
    async def test_64_headers_of_1_mb_get_431_at_once_and_are_never_buffered(self) -> None:
        async with connection_to() as connection:
            before = rss_bytes()
            await connection.send(b"GET / HTTP/1.1\r\nHost: test\r\n")
            sent_mb = 0
            answered_after_mb: int | None = None
            for index in range(64):
                if not await connection.send(f"X-Big-{index}: ".encode() + b"a" * MB + b"\r\n"):
                    break
                sent_mb += 1
                if answered_after_mb is None and answers(connection.received):
                    answered_after_mb = sent_mb
                await asyncio.sleep(0.02)  # slowly enough to see when the server stops reading
            assert await connection.closed_by_server(5)
            grown = rss_bytes() - before

        [answer] = answers(connection.received)
        assert_problem(answer, 431, "61440 bytes")
        assert answered_after_mb is not None
        assert answered_after_mb <= 2
        assert sent_mb < 64  # the server closed the connection before all was sent
        assert grown < 8 * MB

    async def test_a_100_mb_header_is_dropped_as_it_arrives(self) -> None:
        async with connection_to(max_header_bytes=8192) as connection:
            before = rss_bytes()
            await connection.send(b"GET / HTTP/1.1\r\nHost: test\r\nX-Huge: ")
            sent_mb = 0
            while sent_mb < 100 and await connection.send(b"h" * MB):
                sent_mb += 1
                await asyncio.sleep(0.02)
            assert await connection.closed_by_server(5)
            grown = rss_bytes() - before

        [answer] = answers(connection.received)
        assert_problem(answer, 431, "8192 bytes")
        assert sent_mb < 100
        assert grown < 8 * MB

    async def test_101_headers_get_431_and_100_pass(self) -> None:
        # Host and Connection are two of them.
        fields = [(f"X-H{i}", "v") for i in range(98)]
        async with running() as port:
            [ok] = await exchange(port, get(headers=fields, close=True))
            [refused] = await exchange(
                port, get(headers=[*fields, ("X-One-More", "v")], close=True)
            )

        assert ok.status == 200
        assert_problem(refused, 431, "header fields than the limit of 100")

    async def test_many_small_headers_count_with_a_small_limit(self) -> None:
        async with running(max_header_count=5) as port:
            [ok] = await exchange(port, get(headers=[("A", "1")] * 3, close=True))
            [refused] = await exchange(port, get(headers=[("A", "1")] * 4, close=True))

        assert ok.status == 200
        assert_problem(refused, 431, "limit of 5")

    async def test_a_header_block_of_exactly_the_limit_passes(self) -> None:
        async with running(max_header_bytes=2048) as port:
            [at_limit] = await exchange(port, padded_get(2048))
            [over] = await exchange(port, padded_get(2049))

        assert at_limit.status == 200
        assert at_limit.json() == {"ok": True}
        assert_problem(over, 431, "2048 bytes")

    async def test_the_blank_line_may_be_split_across_reads(self) -> None:
        request = padded_get(2048)
        async with connection_to(max_header_bytes=2048) as connection:
            # Each piece is its own read on the server: the end of the header block
            # straddles them.
            for piece in (request[:-3], request[-3:-1], request[-1:]):
                await connection.send(piece)
                await asyncio.sleep(0.05)
            assert await connection.closed_by_server(5)

        [answer] = answers(connection.received)
        assert answer.status == 200

    async def test_a_body_larger_than_the_header_limit_is_accepted(self) -> None:
        body = b"b" * 100_000
        head = b"POST /echo HTTP/1.1\r\nHost: test\r\nConnection: close\r\n"
        with_length = head + b"Content-Length: 100000\r\n\r\n" + body
        chunked = head + b"Transfer-Encoding: chunked\r\n\r\n186a0\r\n" + body + b"\r\n0\r\n\r\n"
        async with running(max_header_bytes=2048) as port:
            [by_length] = await exchange(port, with_length)
            [by_chunks] = await exchange(port, chunked)

        assert by_length.json() == {"bytes": 100_000}
        assert by_chunks.json() == {"bytes": 100_000}


class TestTrailers:
    # Three header fields, a 5-byte chunk, and the last chunk: trailers follow.
    HEAD = (
        b"POST /echo HTTP/1.1\r\nHost: test\r\nConnection: close\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n"
    )

    async def test_trailers_within_the_limits_are_accepted(self) -> None:
        async with running(max_header_count=5) as port:
            [answer] = await exchange(port, self.HEAD + b"X-T1: 1\r\nX-T2: 2\r\n\r\n")

        assert answer.json() == {"bytes": 5}

    async def test_too_many_trailer_fields_end_the_connection(self) -> None:
        trailers = b"".join(b"X-T%d: 1\r\n" % i for i in range(3))
        async with running(max_header_count=5) as port:
            served = await exchange(port, self.HEAD + trailers + b"\r\n")

        # The request was being served, so no answer can follow.
        assert served == []

    async def test_a_huge_trailer_ends_the_connection_as_it_arrives(self) -> None:
        async with connection_to(max_header_bytes=8192) as connection:
            await connection.send(self.HEAD + b"X-Huge: ")
            sent_mb = 0
            while sent_mb < 50 and await connection.send(b"t" * MB):
                sent_mb += 1
                await asyncio.sleep(0.02)
            assert await connection.closed_by_server(5)

        assert sent_mb < 50
        assert answers(connection.received) == []


class TestPipelining:
    async def test_each_pipelined_request_counts_only_its_own_headers(self) -> None:
        # Three requests of 1,500 header bytes in one write: 4,500 bytes, over the
        # limit together, each under it alone.
        requests = padded_get(1500, close=False) * 2 + padded_get(1500, close=True)
        async with running(max_header_bytes=2048) as port:
            served = await exchange(port, requests)

        assert [a.status for a in served] == [200, 200, 200]

    async def test_bodies_are_not_counted_against_the_next_request(self) -> None:
        body = b"b" * 5000
        with_length = b"POST /echo HTTP/1.1\r\nHost: test\r\nContent-Length: 5000\r\n\r\n" + body
        chunked = (
            b"POST /echo HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"1388\r\n" + body + b"\r\n0\r\n\r\n"
        )
        async with running(max_header_bytes=2048) as port:
            served = await exchange(port, with_length + chunked + padded_get(2048))

        assert [a.status for a in served] == [200, 200, 200]
        assert [a.json() for a in served[:2]] == [{"bytes": 5000}, {"bytes": 5000}]

    async def test_an_oversized_request_behind_others_gets_431_after_their_answers(self) -> None:
        requests = get() + get() + padded_get(4096)
        async with running(max_header_bytes=2048) as port:
            served = await exchange(port, requests)

        assert [a.status for a in served] == [200, 200, 431]
        assert_problem(served[2], 431, "2048 bytes")


class TestHeaderTimeout:
    async def test_a_partial_header_block_gets_408_after_the_timeout(self) -> None:
        async with running(header_timeout_s=0.5) as port:
            started = time.monotonic()  # the clock starts when the connection opens
            async with connected(port) as connection:
                await connection.send(b"GET / HTTP/1.1\r\nHost: test\r\nX-Part")
                assert await connection.closed_by_server(3)

        assert connection.closed_at is not None
        assert connection.closed_at - started >= 0.5
        [answer] = answers(connection.received)
        assert_problem(answer, 408, "within 0.5 s")

    async def test_a_silent_connection_is_closed_without_an_answer(self) -> None:
        async with running(header_timeout_s=0.5) as port:
            started = time.monotonic()  # the clock starts when the connection opens
            async with connected(port) as connection:
                assert await connection.closed_by_server(3)

        assert connection.closed_at is not None
        assert connection.closed_at - started >= 0.5
        assert connection.received == b""

    async def test_trickled_bytes_do_not_extend_the_timeout(self) -> None:
        async with connection_to(header_timeout_s=0.5) as connection:
            await connection.send(b"GET / HTTP/1.1\r\nHost: test\r\n")
            for _ in range(30):  # 3 s of one byte every 0.1 s, unless closed first
                if connection.closed_at is not None or not await connection.send(b"X"):
                    break
                await asyncio.sleep(0.1)
            assert await connection.closed_by_server(3)

        [answer] = answers(connection.received)
        assert_problem(answer, 408, "within 0.5 s")

    async def test_slowloris_connections_are_closed_while_requests_are_served(self) -> None:
        async with running(header_timeout_s=1.0) as port:
            attackers = [await Connection.open(port) for _ in range(20)]
            try:
                for attacker in attackers:
                    await attacker.send(b"GET / HTTP/1.1\r\nHost: test\r\n")
                await asyncio.sleep(0.3)
                for attacker in attackers:
                    await attacker.send(b"X-Slow: 1\r\n")
                [served] = await exchange(port, get(close=True))
                closed = [await a.closed_by_server(3) for a in attackers]
            finally:
                for attacker in attackers:
                    await attacker.aclose()

        assert served.status == 200
        assert all(closed)
        assert all(answers(a.received)[0].status == 408 for a in attackers)

    async def test_the_timer_starts_again_with_the_next_request(self) -> None:
        async with connection_to(header_timeout_s=0.5, keep_alive_timeout_s=5) as connection:
            await connection.send(get())
            await asyncio.sleep(0.3)
            partial_at = time.monotonic()
            await connection.send(b"GET / HTTP/1.1\r\nHost: te")
            assert await connection.closed_by_server(3)

        assert connection.closed_at is not None
        assert connection.closed_at - partial_at >= 0.5
        first, second = answers(connection.received)
        assert first.status == 200
        assert_problem(second, 408, "within 0.5 s")


class TestKeepAlive:
    async def test_an_idle_connection_is_closed_after_the_keep_alive_timeout(self) -> None:
        async with connection_to(keep_alive_timeout_s=0.3, header_timeout_s=5) as connection:
            await connection.send(get())
            assert await connection.closed_by_server(2)

        assert connection.first_received_at is not None
        assert connection.closed_at is not None
        assert connection.closed_at - connection.first_received_at >= 0.25
        [answer] = answers(connection.received)
        assert answer.status == 200

    async def test_keep_alive_may_outlast_the_header_timeout(self) -> None:
        # The gateway keeps idle connections longer (75 s) than headers may take (10 s).
        async with connection_to(keep_alive_timeout_s=3, header_timeout_s=0.3) as connection:
            await connection.send(get())
            await asyncio.sleep(1.0)
            still_open = connection.closed_at is None
            await connection.send(get(close=True))
            assert await connection.closed_by_server(3)

        assert still_open
        assert [a.status for a in answers(connection.received)] == [200, 200]


class TestChunkedBody:
    HEAD = (
        b"POST /echo HTTP/1.1\r\nHost: test\r\nConnection: close\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n"
    )

    async def _cpu_s(self, port: int, content: bytes) -> float:
        """CPU time of this process (client and server) to send `content` as one chunk."""
        request = self.HEAD + b"%x\r\n" % len(content) + content + b"\r\n0\r\n\r\n"
        started = time.process_time()
        [answer] = await exchange(port, request)
        spent = time.process_time() - started
        assert answer.json() == {"bytes": len(content)}
        return spent

    async def test_a_chunk_of_line_feeds_costs_about_what_a_chunk_of_letters_costs(self) -> None:
        # What a chunk holds must not decide how often the parser is called: a
        # megabyte of line feeds fed line by line is a million parser calls.
        async with running() as port:
            await self._cpu_s(port, b"a" * MB)  # warm-up
            letters = min([await self._cpu_s(port, b"a" * MB) for _ in range(3)])
            line_feeds = min([await self._cpu_s(port, b"\n" * MB) for _ in range(3)])

        assert line_feeds < 5 * letters, (line_feeds, letters)

    async def test_framing_split_across_reads_is_followed(self) -> None:
        # Leading zeros, an extension, upper-case hex, data of line feeds and
        # CRLFs, trailers; sent three bytes at a time.
        request = (
            self.HEAD
            + b"000a;name=value\r\n"
            + b"\n\r\n\r\n\r\n\r\n\n"
            + b"\r\nB\r\n"
            + b"hello world"
            + b"\r\n0\r\nX-Trailer: 1\r\n\r\n"
        )
        async with connection_to() as connection:
            for offset in range(0, len(request), 3):
                await connection.send(request[offset : offset + 3])
                await asyncio.sleep(0.002)
            assert await connection.closed_by_server(5)

        [answer] = answers(connection.received)
        assert answer.json() == {"bytes": 21}

    async def test_an_over_long_chunk_size_line_ends_the_connection(self) -> None:
        async with running(max_header_bytes=2048) as port:
            served = await exchange(port, self.HEAD + b"1;" + b"e" * 4096 + b"\r\nx\r\n0\r\n\r\n")

        # The request was being served, so no answer can follow.
        assert served == []

    async def test_the_request_after_a_body_of_line_feeds_counts_only_its_headers(self) -> None:
        body = b"\n" * 5000
        chunked = (
            b"POST /echo HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"1388\r\n" + body + b"\r\n0\r\n\r\n"
        )
        async with running(max_header_bytes=2048) as port:
            at_limit = await exchange(port, chunked + padded_get(2048))
            over = await exchange(port, chunked + padded_get(2049))

        assert [a.status for a in at_limit] == [200, 200]
        assert at_limit[0].json() == {"bytes": 5000}
        assert [a.status for a in over] == [200, 431]


# What HeaderLimitedProtocol uses of uvicorn that is not uvicorn's public API.
PROTOCOL_METHODS = [
    "connection_made",
    "connection_lost",
    "data_received",
    "on_header",
    "on_headers_complete",
    "on_message_complete",
    "on_response_complete",
    "_unset_keepalive_if_required",
    "_should_upgrade",
    "handle_websocket_upgrade",
    "_unsupported_upgrade_warning",
    "send_400_response",
]
PROTOCOL_ATTRIBUTES = [
    "logger",
    "loop",
    "parser",
    "transport",
    "flow",
    "pipeline",
    "cycle",
    "headers",
    "server_state",
]


def missing_uvicorn_internals() -> list[str]:
    """The names HeaderLimitedProtocol needs that this uvicorn does not have."""
    missing = []
    status_line = getattr(uvicorn_httptools, "STATUS_LINE", None)
    if not isinstance(status_line, dict) or not {408, 431} <= status_line.keys():
        missing.append("httptools_impl.STATUS_LINE[408, 431]")
    base = uvicorn_httptools.HttpToolsProtocol
    missing += [
        f"HttpToolsProtocol.{name}()"
        for name in PROTOCOL_METHODS
        if not callable(getattr(base, name, None))
    ]
    config = server_config(demo_app(), ServerSettings())
    config.load()
    server_state = ServerState()
    loop = asyncio.new_event_loop()
    try:
        protocol = HeaderLimitedProtocol(config, server_state, {}, loop)
    finally:
        loop.close()
    missing += [
        f"HttpToolsProtocol.{name}" for name in PROTOCOL_ATTRIBUTES if not hasattr(protocol, name)
    ]
    missing += [
        f"ServerState.{name}"
        for name in ("default_headers", "total_requests")
        if not hasattr(server_state, name)
    ]
    missing += [
        f"FlowControl.{name}()"
        for name in ("pause_reading", "resume_reading")
        if not callable(getattr(FlowControl, name, None))
    ]
    # Set per request in RequestResponseCycle.__init__: read its source, as building
    # one takes a whole connection.
    cycle_init = inspect.getsource(uvicorn_httptools.RequestResponseCycle.__init__)
    if "self.response_complete =" not in cycle_init:
        missing.append("RequestResponseCycle.response_complete")
    return missing


class TestUvicornInternals:
    def test_uvicorn_still_has_what_the_protocol_relies_on(self) -> None:
        missing = missing_uvicorn_internals()

        assert missing == [], (
            f"uvicorn {uvicorn.__version__} no longer has {', '.join(missing)}: "
            "tessera_runtime.protocol.HeaderLimitedProtocol relies on them"
        )


class TestShutdown:
    def test_sigterm_drains_both_ports_for_the_whole_graceful_phase(self, tmp_path: Path) -> None:
        probe_port = free_port()
        env = {
            "SLOW_PROBE_PORT": str(probe_port),
            "SLOW_PROBE_READINESS_STALE_S": "5",
            "SLOW_GRACEFUL_SHUTDOWN_S": "20",
        }
        probes = f"http://127.0.0.1:{probe_port}"
        command = [sys.executable, str(SLOW_SERVICE)]
        with running_service(command, env=env, log=tmp_path / "slow.log") as service:
            ready = answers_until(f"{probes}/readyz", status_is(200), within_s=10)
            assert ready[-1].status_code == 200
            host, port = service.url.removeprefix("http://").split(":")
            with socket.create_connection((host, int(port)), timeout=10) as held:
                # A slow request in flight keeps the graceful phase going; the
                # /readyz pipelined behind it is answered when it is done.
                held.sendall(get("/slow?seconds=2") + get("/readyz"))
                received = b""
                while b"started" not in received:
                    received += held.recv(65536)
                service.process.send_signal(signal.SIGTERM)
                signalled = time.monotonic()
                probe_answers = answers_until(f"{probes}/readyz", status_is(503), within_s=1.5)
                probe_answered_within_s = time.monotonic() - signalled
                while chunk := held.recv(65536):
                    received += chunk
            service.process.wait(timeout=15)

        assert probe_answered_within_s < 1.5  # before the slow request ended (2 s)
        assert probe_answers[-1].status_code == 503
        assert probe_answers[-1].json()["detail"] == "draining"
        slow, readiness = answers(received)
        assert slow.status == 200
        assert slow.body == b"started\ndone\n"
        assert readiness.status == 503  # on the API port, still in the graceful phase
        assert readiness.json()["detail"] == "draining"

    def test_the_shutdown_delay_keeps_serving_new_connections_while_draining(
        self, tmp_path: Path
    ) -> None:
        env = {"SLOW_SHUTDOWN_DELAY_S": "1.5", "SLOW_GRACEFUL_SHUTDOWN_S": "5"}
        command = [sys.executable, str(SLOW_SERVICE)]
        with running_service(command, env=env, log=tmp_path / "slow.log") as service:
            service.process.send_signal(signal.SIGTERM)
            signalled = time.monotonic()
            # New connections during the delay: served, and told to go elsewhere.
            during = [httpx.get(f"{service.url}/healthz"), httpx.get(f"{service.url}/readyz")]
            served_within_s = time.monotonic() - signalled
            service.process.wait(timeout=15)
            exited_after_s = time.monotonic() - signalled

        assert served_within_s < 1.5
        assert [answer.status_code for answer in during] == [200, 503]
        assert during[1].json()["detail"] == "draining"
        assert exited_after_s >= 1.5

    def test_a_second_signal_ends_the_shutdown_delay(self, tmp_path: Path) -> None:
        env = {"SLOW_SHUTDOWN_DELAY_S": "30"}
        command = [sys.executable, str(SLOW_SERVICE)]
        with running_service(command, env=env, log=tmp_path / "slow.log") as service:
            service.process.send_signal(signal.SIGTERM)
            time.sleep(0.2)
            service.process.send_signal(signal.SIGTERM)
            signalled = time.monotonic()
            service.process.wait(timeout=15)
            exited_after_s = time.monotonic() - signalled

        assert exited_after_s < 10

    def test_draining_ends_when_the_lifespan_starts_again(self) -> None:
        app = create_service_app(title="restarted", version="0")
        settings = ServerSettings(host="127.0.0.1", port=0)

        first = DrainingServer(server_config(app, settings), app)
        with in_thread(first):
            assert not is_draining(app)
            # What the SIGTERM handler does first (the subprocess tests above send
            # the real signal). Not `handle_exit` itself in this process: uvicorn's
            # is wrapped by sse-starlette (imported by the gateway's tests), which
            # then ends every later event stream of the process for good.
            begin_draining(app)
            drained_at_once = is_draining(app)
        second = DrainingServer(server_config(app, settings), app)
        with in_thread(second):
            again = is_draining(app)
            port = second.servers[0].sockets[0].getsockname()[1]
            readiness = httpx.get(f"http://127.0.0.1:{port}/readyz")

        assert drained_at_once
        assert not again
        assert readiness.status_code == 200
