"""A TCP proxy in front of PostgreSQL that makes outages and protocol faults on demand.

A test points the catalog at the proxy (`through(proxy, url)`) and keeps its own
direct connection to the server, so only the catalog sees the faults:

* `stop()`, then `start()`: refused connects and every session cut, as when
  PostgreSQL restarts. The port stays the same, so the catalog's DSN stays valid.
* `lose_commit_reply(after=...)`: the COMMIT of the first session to send `after`
  is forwarded and the server's reply dropped, then both sides are closed: the
  server committed, the client never hears it did.
* `inject(message, application_name=...)`: a server message sent to the open
  sessions of one application, as a dying server sends FATAL 57P01 to its idle
  sessions an instant before it closes them (see `fatal_error`).

Past a session's startup packet (read for its `application_name`), the proxy
sees the protocol as bytes: a fault is keyed on what a chunk contains, which
holds for the small, unencrypted messages of a test.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from urllib.parse import urlsplit

import pytest
from pydantic import PostgresDsn

_CHUNK = 65536
# A client may ask for encryption before its StartupMessage; the server answers
# with one byte, which the server-to-client pipe forwards like any other.
_ENCRYPTION_REQUESTS = {80877103, 80877104}  # SSLRequest, GSSENCRequest
# PostgreSQL's own bound on a startup packet: a longer "length" is TLS after an
# accepted SSLRequest, which is forwarded as it comes.
_MAX_STARTUP_PACKET = 10000


@dataclass(eq=False)
class _Session:
    """One client connection and the proxy's connection to the server for it."""

    client: asyncio.StreamWriter
    server: asyncio.StreamWriter | None = None
    application_name: str | None = None
    loses_commit_reply: bool = False
    commit_sent: bool = False

    def abort(self) -> None:
        for end in (self.client, self.server):
            if end is not None:
                end.transport.abort()


class PostgresProxy:
    """127.0.0.1:<port> forwarded to a PostgreSQL server; see the module docstring."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.port = 0
        self.commit_reply_lost = asyncio.Event()
        """Set once `lose_commit_reply` has dropped a reply."""
        self._lose_commit_after: bytes | None = None
        self._server: asyncio.Server | None = None
        self._sessions: set[_Session] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        # Same port on restart (asyncio binds with SO_REUSEADDR).
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Refuse new connections and cut every open session."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for session in list(self._sessions):
            session.abort()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if server is not None:
            # After the cut: from Python 3.12 on this waits for open connections.
            await server.wait_closed()

    def lose_commit_reply(self, after: bytes) -> None:
        """Drop the reply to the next COMMIT of the first session to send `after`."""
        self._lose_commit_after = after

    def inject(self, message: bytes, application_name: str) -> int:
        """Send `message` to the sessions of `application_name`; how many there were."""
        sessions = [s for s in self._sessions if s.application_name == application_name]
        for session in sessions:
            session.client.write(message)
        return len(sessions)

    def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.create_task(self._forward(reader, writer))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _forward(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        session = _Session(writer)
        self._sessions.add(session)
        try:
            server_reader, server = await asyncio.open_connection(*self.target)
            session.server = server
            await asyncio.gather(
                self._client_to_server(session, reader, server),
                self._server_to_client(session, server_reader),
            )
        except (OSError, asyncio.IncompleteReadError):
            pass  # the server refused, or one side went away: both are closed below
        finally:
            self._sessions.discard(session)
            session.abort()

    async def _client_to_server(
        self, session: _Session, reader: asyncio.StreamReader, server: asyncio.StreamWriter
    ) -> None:
        session.application_name = await _forward_startup(reader, server)
        while data := await reader.read(_CHUNK):
            if self._lose_commit_after is not None and self._lose_commit_after in data:
                self._lose_commit_after = None
                session.loses_commit_reply = True
            if session.loses_commit_reply and b"COMMIT" in data:
                session.commit_sent = True
            server.write(data)
            await server.drain()
        server.close()

    async def _server_to_client(self, session: _Session, reader: asyncio.StreamReader) -> None:
        while data := await reader.read(_CHUNK):
            if session.commit_sent:
                # The server's reply to COMMIT: it committed; the client never hears.
                self.commit_reply_lost.set()
                session.abort()
                return
            session.client.write(data)
            await session.client.drain()
        session.client.close()


async def _forward_startup(
    reader: asyncio.StreamReader, server: asyncio.StreamWriter
) -> str | None:
    """Forward the client's packets up to its StartupMessage; its `application_name`."""
    while True:
        header = await reader.readexactly(8)
        length = int.from_bytes(header[:4], "big")
        if not 8 <= length <= _MAX_STARTUP_PACKET:
            server.write(header)
            return None
        body = await reader.readexactly(length - 8)
        server.write(header + body)
        if int.from_bytes(header[4:], "big") not in _ENCRYPTION_REQUESTS:
            # Then NUL-terminated names and values, and a NUL to end them.
            fields = body.split(b"\0")
            parameters = dict(zip(fields[0::2], fields[1::2], strict=False))
            name = parameters.get(b"application_name")
            return None if name is None else name.decode()


def fatal_error(code: str, message: str) -> bytes:
    """A PostgreSQL ErrorResponse message of severity FATAL."""
    fields = b"".join(
        kind + value.encode() + b"\0"
        for kind, value in ((b"S", "FATAL"), (b"V", "FATAL"), (b"C", code), (b"M", message))
    )
    body = fields + b"\0"
    return b"E" + (len(body) + 4).to_bytes(4, "big") + body


def through(proxy: PostgresProxy, url: str) -> PostgresDsn:
    """`url` with the proxy's address in place of the server's."""
    parts = urlsplit(url)
    userinfo, _, _ = parts.netloc.rpartition("@")
    address = f"127.0.0.1:{proxy.port}"
    return PostgresDsn(
        parts._replace(netloc=f"{userinfo}@{address}" if userinfo else address).geturl()
    )


# A test module imports this as `postgres_proxy_fixture as postgres_proxy_fixture` (an
# explicit re-export) and its tests ask for `postgres_proxy`: imported under the name the
# tests ask for, it would read to ruff as an unused import redefined by each argument.
@pytest.fixture(name="postgres_proxy")
async def postgres_proxy_fixture(migrated_url: str) -> AsyncIterator[PostgresProxy]:
    """A started proxy to the server of the test's database, stopped after the test."""
    target = urlsplit(migrated_url)
    if target.hostname is None or target.port is None:
        raise ValueError(f"{migrated_url!r} names no host and port to proxy")
    proxy = PostgresProxy(target.hostname, target.port)
    await proxy.start()
    try:
        yield proxy
    finally:
        await proxy.stop()
