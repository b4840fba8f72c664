"""The one NATS connection lifecycle every service uses.

A service serves HTTP while NATS is down, so the connection is made in the
background: `start()` returns at once, the first connect is retried every
`reconnect_wait_s` until it works, and nats-py reconnects on its own after
that. Readiness and metrics ask `connected`. What must happen on every
(re)connect (check a stream, subscribe, wake whoever waits for NATS) is a hook
(`on_connected`) or the signal `next_connection()`. Problems are logged once
per change of state: one line when NATS goes away and one per kind of error
while it stays away, not one per attempt. `close()` ends a connect still
pending, sends what is buffered and closes, within `drain_timeout_s` whatever
state NATS is in.

Subscriptions are drained by their owners before `close()`, because only they
know when a message is done: the inference worker unsubscribes, then waits for
the requests it has taken. nats-py's `Client.drain()` would also wait on pull
subscriptions (the gateway's SSE consumers), whose queued messages nobody reads
at shutdown, until its timeout.

Every timeout is a setting: services add `NatsSettings` to their `Settings`
(read with their own prefix, `CATALOG_NATS_CONNECT_TIMEOUT_S`) and hand
`settings.nats_timing` to `NatsConnection`.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final, cast

import nats.errors
from nats.aio.client import Client
from nats.js import JetStreamContext
from pydantic import BaseModel, ConfigDict, Field

from tessera_runtime.tasks import cancel_and_wait, finish_within

__all__ = ["NATS_ERRORS", "ConnectedHook", "NatsConnection", "NatsSettings", "NatsTiming"]

logger = logging.getLogger("tessera_runtime.nats")

NATS_ERRORS: Final = (nats.errors.Error, TimeoutError, OSError)
"""What a NATS or JetStream call raises when NATS, a stream or a consumer fails."""

ConnectedHook = Callable[[], Awaitable[object] | object]
"""Run after every (re)connect: a function, or a coroutine function awaited in turn."""


@dataclass(frozen=True, slots=True)
class NatsTiming:
    """Every wait of a `NatsConnection`, in seconds."""

    connect_timeout_s: float = 2.0
    """One attempt to reach the server (TCP connect and handshake)."""
    reconnect_wait_s: float = 1.0
    """Pause between attempts, at startup and after losing the server."""
    jetstream_timeout_s: float = 5.0
    """Default wait of a JetStream API call (stream info, consumer create, publish ack)."""
    drain_timeout_s: float = 5.0
    """At shutdown, how long sending what is buffered and closing may take before the
    connection is dropped (and, for a subscription's owner, how long draining it may)."""


class NatsSettings(BaseModel):
    """The NATS part of a service's settings: `class Settings(ServerSettings, NatsSettings)`.

    The fields are read with the service's own prefix (`GATEWAY_NATS_URL`); a
    service redeclares a field to give it its own default or description. A
    model, not settings of its own, so it brings fields and no configuration:
    the service's (prefix, CLI spelling) stays as it is.
    """

    # Docstrings become the fields' descriptions (`python -m tessera_<name> --help`).
    model_config = ConfigDict(use_attribute_docstrings=True)

    nats_url: str = "nats://127.0.0.1:4222"
    """NATS server (JetStream enabled)."""
    nats_connect_timeout_s: float = Field(default=2.0, gt=0)
    """How long one attempt to reach NATS may take (TCP connect and handshake)."""
    nats_reconnect_wait_s: float = Field(default=1.0, gt=0)
    """Pause between attempts to reach NATS, at startup and after losing it; the
    service keeps trying for as long as it runs."""
    nats_jetstream_timeout_s: float = Field(default=5.0, gt=0)
    """How long a JetStream API call (stream info, consumer create) waits for its answer."""
    nats_drain_timeout_s: float = Field(default=5.0, gt=0)
    """At shutdown, how long the NATS connection gets to send what is buffered
    and close before it is dropped."""

    @property
    def nats_timing(self) -> NatsTiming:
        return NatsTiming(
            connect_timeout_s=self.nats_connect_timeout_s,
            reconnect_wait_s=self.nats_reconnect_wait_s,
            jetstream_timeout_s=self.nats_jetstream_timeout_s,
            drain_timeout_s=self.nats_drain_timeout_s,
        )


class NatsConnection:
    """One NATS client for a service's lifetime, connected in the background."""

    def __init__(self, url: str, *, name: str, timing: NatsTiming | None = None) -> None:
        self.url = url
        self.name = name
        """Client name the server shows (`tessera-catalog`)."""
        self.timing = timing or NatsTiming()
        self.client = Client()
        self.jetstream: JetStreamContext = self.client.jetstream(
            timeout=self.timing.jetstream_timeout_s
        )
        self._hooks: list[ConnectedHook] = []
        self._next_connection = asyncio.Event()
        self._first_attempt = asyncio.Event()
        self._errors_logged: set[str] = set()
        self._task: asyncio.Task[None] | None = None
        self._began = False
        """The client has begun connecting, so there is a client to close (nats-py
        asserts otherwise)."""
        self._closing = False

    @property
    def connected(self) -> bool:
        return self.client.is_connected

    def on_connected(self, hook: ConnectedHook) -> None:
        """Run `hook` after every (re)connect, after the hooks added before it.

        A hook that fails is logged and does not stop the others; nats-py
        replays subscriptions on its own, so a hook subscribes only once.
        """
        self._hooks.append(hook)

    def next_connection(self) -> asyncio.Event:
        """Set when NATS is next (re)connected, once the hooks have run.

        Take it before the operation that may fail, so a reconnection in between
        is not missed; each (re)connection sets the event handed out before it.
        """
        return self._next_connection

    def start(self) -> None:
        """Connect in the background; returns at once."""
        self._task = asyncio.create_task(self._connect(), name=f"{self.name}-nats-connect")

    async def first_attempt(self) -> None:
        """Until the first attempt has connected or failed, for at most the connect timeout.

        For a service that should not answer "NATS is down" in its first moments
        next to a running server; a server that refuses delays nothing.
        """
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.timing.connect_timeout_s):
                await self._first_attempt.wait()

    async def close(self) -> None:
        """Send what is buffered and close, within `drain_timeout_s`; a pending
        connect is ended first. Without a server there is nothing to send, and
        the client is closed at once."""
        self._closing = True
        if self._task is not None:
            await cancel_and_wait(self._task)
        if not self._began:
            return
        bound = self.timing.drain_timeout_s
        with contextlib.suppress(*NATS_ERRORS):
            if not await finish_within(self._flush_and_close(), bound):
                logger.warning("NATS connection not closed within %gs; dropped", bound)
        if not self.client.is_closed:  # cut off: close the socket at least
            with contextlib.suppress(*NATS_ERRORS):
                await finish_within(self.client.close(), bound)

    async def _flush_and_close(self) -> None:
        if self.client.is_connected:
            # A flush is a round trip: everything published before it has reached the server.
            await self.client.flush(timeout=cast(int, self.timing.drain_timeout_s))
        await self.client.close()

    async def _connect(self) -> None:
        timing = self.timing
        self._began = True
        try:
            # max_reconnect_attempts=-1 makes nats-py retry the *first* connect too,
            # every reconnect_time_wait, instead of raising while NATS is down.
            # nats-py annotates the waits as int but only sleeps on them: fractions work.
            await self.client.connect(
                servers=[self.url],
                name=self.name,
                connect_timeout=cast(int, timing.connect_timeout_s),
                reconnect_time_wait=cast(int, timing.reconnect_wait_s),
                max_reconnect_attempts=-1,
                error_cb=self._on_error,
                disconnected_cb=self._on_disconnected,
                reconnected_cb=self._on_reconnected,
            )
        except Exception:  # a bad URL or option: retrying cannot help, but say so loudly
            self._began = False  # raised before opening anything
            self._first_attempt.set()
            logger.exception("cannot connect to NATS at all; running without it")
            return
        self._first_attempt.set()
        logger.info("connected to NATS")
        await self._connection_made()

    async def _connection_made(self) -> None:
        self._errors_logged.clear()
        for hook in self._hooks:
            try:
                result = hook()
                if inspect.isawaitable(result):
                    await result
            except Exception:
                # Raised into nats-py's reconnect loop, it would count as a failed
                # reconnect of a connection that works.
                logger.exception("NATS connection hook %r failed", hook)
        reached, self._next_connection = self._next_connection, asyncio.Event()
        reached.set()

    async def _on_error(self, error: Exception) -> None:
        self._first_attempt.set()
        # nats-py reports every failed attempt: once per kind and outage is enough.
        kind = type(error).__name__
        if kind not in self._errors_logged:
            self._errors_logged.add(kind)
            logger.warning("NATS: %s (not logged again until connected)", error or kind)

    async def _on_disconnected(self) -> None:
        if not self._closing:  # closing it ourselves is no news
            logger.warning("disconnected from NATS; reconnecting in the background")

    async def _on_reconnected(self) -> None:
        logger.info("reconnected to NATS")
        await self._connection_made()
