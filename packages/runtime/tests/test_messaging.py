"""`NatsConnection` against a real nats-server, stopped and restarted by the tests."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import nats
import nats.errors
import pytest
from nats.aio.msg import Msg
from pydantic_settings import SettingsConfigDict
from tessera_runtime.messaging import NatsConnection, NatsSettings, NatsTiming
from tessera_runtime.server import ServerSettings
from tessera_runtime.tasks import cancel_and_wait, finish_within
from tessera_stack.testing import NatsServer, WaitUntil, process_state

FAST = NatsTiming(
    connect_timeout_s=0.5, reconnect_wait_s=0.05, jetstream_timeout_s=1.0, drain_timeout_s=1.0
)
MakeConnection = Callable[..., NatsConnection]


@pytest.fixture
async def make_connection(nats_url: str) -> AsyncIterator[MakeConnection]:
    """New connections to the test's server, closed after the test if it did not."""
    made: list[NatsConnection] = []

    def make(timing: NatsTiming = FAST) -> NatsConnection:
        connection = NatsConnection(nats_url, name="tessera-test", timing=timing)
        made.append(connection)
        return connection

    yield make
    for connection in made:
        await connection.close()


def other_tasks() -> set[asyncio.Task[Any]]:
    return asyncio.all_tasks() - {asyncio.current_task()}


async def connected(connection: NatsConnection, wait_until: WaitUntil) -> None:
    async def up() -> bool:
        return connection.connected

    await wait_until(up, what="connected to NATS")


class TestConnect:
    async def test_connects_when_the_server_comes_up_late(
        self, nats_server: NatsServer, make_connection: MakeConnection, wait_until: WaitUntil
    ) -> None:
        nats_server.stop()
        connection = make_connection()
        calls: list[str] = []
        connection.on_connected(lambda: calls.append("hook"))
        reached = connection.next_connection()

        connection.start()
        await asyncio.sleep(0.3)  # several attempts, all refused
        assert not connection.connected
        assert calls == []
        nats_server.start()
        await connected(connection, wait_until)
        async with asyncio.timeout(5):
            await reached.wait()

        assert calls == ["hook"]
        # The connection works: a request through it reaches a subscriber.
        peer = await nats.connect(nats_server.url)

        async def echo(msg: Msg) -> None:
            await msg.respond(msg.data)

        try:
            await peer.subscribe("echo", cb=echo)
            await peer.flush()
            # In full runs the first request has now and then met "no responders"
            # although the peer's subscription was flushed (a connection made while
            # the server was still starting; not reproduced alone): a request within
            # a few seconds must reach the subscriber.
            deadline = asyncio.get_running_loop().time() + 5
            while True:
                try:
                    reply = await connection.client.request("echo", b"ping", timeout=2)
                    break
                except nats.errors.NoRespondersError:
                    if asyncio.get_running_loop().time() > deadline:
                        raise
                    await asyncio.sleep(0.1)
        finally:
            await peer.close()
        assert reply.data == b"ping"

    async def test_the_first_attempt_is_awaited_only_while_undecided(
        self, nats_server: NatsServer, make_connection: MakeConnection
    ) -> None:
        up = make_connection()
        up.start()
        await up.first_attempt()
        assert up.connected

        nats_server.stop()
        refused = make_connection(NatsTiming(connect_timeout_s=5.0, reconnect_wait_s=0.05))
        started = time.monotonic()
        refused.start()
        await refused.first_attempt()
        # A refused connect decides the first attempt at once, not after the timeout.
        assert time.monotonic() - started < 2.0
        assert not refused.connected

    async def test_a_bad_url_is_logged_and_the_service_runs_on(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        connection = NatsConnection("nats://", name="tessera-test", timing=FAST)
        with caplog.at_level(logging.ERROR, logger="tessera_runtime.nats"):
            connection.start()
            await connection.first_attempt()
            await asyncio.sleep(0.1)
            await connection.close()

        assert "cannot connect to NATS at all" in caplog.text
        assert not connection.connected


@pytest.mark.embedded_nats
class TestReconnect:
    async def test_the_signal_and_the_hooks_follow_a_restart(
        self, nats_server: NatsServer, make_connection: MakeConnection, wait_until: WaitUntil
    ) -> None:
        connection = make_connection()
        calls: list[str] = []

        async def check_stream() -> None:
            calls.append("stream")

        connection.on_connected(check_stream)
        connection.on_connected(lambda: calls.append("wake"))
        connection.start()
        await connected(connection, wait_until)
        await wait_until(lambda: _true(len(calls) == 2), what="hooks of the first connect")
        signal = connection.next_connection()

        nats_server.stop()

        async def down() -> bool:
            return not connection.connected

        await wait_until(down, what="disconnected")
        await asyncio.sleep(0.2)
        assert not signal.is_set()
        nats_server.start()
        async with asyncio.timeout(5):
            await signal.wait()

        # The hooks ran again, in the order they were added, before the signal.
        assert calls == ["stream", "wake", "stream", "wake"]
        assert connection.connected
        assert not connection.next_connection().is_set()  # the next one is a new event

    async def test_a_failing_hook_is_logged_and_the_others_still_run(
        self, make_connection: MakeConnection, caplog: pytest.LogCaptureFixture
    ) -> None:
        connection = make_connection()
        calls: list[str] = []

        def broken() -> None:
            raise RuntimeError("bug in a hook")

        connection.on_connected(broken)
        connection.on_connected(lambda: calls.append("after"))
        reached = connection.next_connection()
        with caplog.at_level(logging.ERROR, logger="tessera_runtime.nats"):
            connection.start()
            async with asyncio.timeout(5):
                await reached.wait()

        assert calls == ["after"]
        assert "bug in a hook" in caplog.text
        assert connection.connected

    async def test_an_outage_is_logged_once_not_once_per_attempt(
        self,
        nats_server: NatsServer,
        make_connection: MakeConnection,
        wait_until: WaitUntil,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        connection = make_connection()
        connection.start()
        await connected(connection, wait_until)

        with caplog.at_level(logging.INFO, logger="tessera_runtime.nats"):
            nats_server.stop()
            await asyncio.sleep(1.0)  # about 20 attempts at reconnect_wait_s=0.05
            nats_server.start()
            await connected(connection, wait_until)
            await asyncio.sleep(0.1)

        lines = [r.getMessage() for r in caplog.records if r.name == "tessera_runtime.nats"]
        warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
        assert lines.count("disconnected from NATS; reconnecting in the background") == 1
        assert lines.count("reconnected to NATS") == 1
        # One line per kind of error (refused, then perhaps a timeout), not per attempt.
        assert 2 <= len(warnings) <= 3, lines


class TestClose:
    async def test_close_without_start_does_nothing(self, nats_url: str) -> None:
        connection = NatsConnection(nats_url, name="tessera-test", timing=FAST)

        await connection.close()

        assert not connection.connected

    async def test_close_sends_what_is_buffered(
        self, nats_url: str, make_connection: MakeConnection, wait_until: WaitUntil
    ) -> None:
        received: list[bytes] = []
        peer = await nats.connect(nats_url)

        async def keep(msg: Msg) -> None:
            received.append(msg.data)

        await peer.subscribe("buffered", cb=keep)
        await peer.flush()
        connection = make_connection()
        connection.start()
        await connected(connection, wait_until)
        try:
            for n in range(200):
                await connection.client.publish("buffered", str(n).encode())
            await connection.close()

            await wait_until(lambda: _true(len(received) == 200), what="every message delivered")
        finally:
            await peer.close()

        assert connection.client.is_closed
        assert received == [str(n).encode() for n in range(200)]

    async def test_a_subscription_busy_with_a_message_does_not_hold_close_up(
        self, make_connection: MakeConnection, wait_until: WaitUntil
    ) -> None:
        never = asyncio.Event()

        async def stuck(msg: Msg) -> None:
            await never.wait()

        connection = make_connection()
        connection.start()
        await connected(connection, wait_until)
        await connection.client.subscribe("stuck", cb=stuck)
        await connection.client.publish("stuck", b"x")
        await connection.client.flush()
        await asyncio.sleep(0.05)

        started = time.monotonic()
        await connection.close()

        assert time.monotonic() - started < FAST.drain_timeout_s
        assert connection.client.is_closed

    @pytest.mark.embedded_nats
    async def test_close_ends_within_its_timeout_while_the_server_hangs(
        self, nats_server: Any, make_connection: MakeConnection, wait_until: WaitUntil
    ) -> None:
        connection = make_connection()
        connection.start()
        await connected(connection, wait_until)
        await connection.client.flush()  # no answer of the server still on its way
        await connection.client.publish("unanswered", b"x")
        # Frozen, not gone: the socket stays open and the flush gets no answer.
        pid = nats_server._process.pid
        os.kill(pid, signal.SIGSTOP)
        try:
            # The signal takes effect asynchronously: until the server is stopped,
            # it could still answer the flush's PING from its other core.
            await wait_until(lambda: _true(process_state(pid) == "T"), what="NATS stopped")
            started = time.monotonic()
            await connection.close()
            elapsed = time.monotonic() - started
        finally:
            os.kill(pid, signal.SIGCONT)

        # Flushing is cut off at the bound, closing (a second bound) is quick.
        assert FAST.drain_timeout_s - 0.1 <= elapsed < 2 * FAST.drain_timeout_s + 0.5
        assert connection.client.is_closed

    @pytest.mark.embedded_nats
    async def test_close_ends_within_its_timeout_while_the_server_is_down(
        self, nats_server: NatsServer, make_connection: MakeConnection, wait_until: WaitUntil
    ) -> None:
        connection = make_connection(
            NatsTiming(connect_timeout_s=0.5, reconnect_wait_s=2.0, drain_timeout_s=1.0)
        )
        connection.start()
        await connected(connection, wait_until)
        before = other_tasks()
        nats_server.stop()

        async def down() -> bool:
            return not connection.connected

        await wait_until(down, what="disconnected")
        started = time.monotonic()
        await connection.close()

        assert time.monotonic() - started < 1.0 + 0.5
        assert connection.client.is_closed
        await asyncio.sleep(0.1)
        assert other_tasks() <= before  # nats-py's reconnect loop ended with it

    @pytest.mark.embedded_nats
    @pytest.mark.parametrize("after_s", [0.0, 0.01, 0.03, 0.06, 0.1, 0.25])
    async def test_closing_during_a_pending_connect_really_ends_it(
        self, nats_server: NatsServer, make_connection: MakeConnection, after_s: float
    ) -> None:
        # Different moments of nats-py's retry loop: connecting, tearing a failed
        # attempt down (where it swallows cancellations), waiting to retry.
        nats_server.stop()
        before = other_tasks()
        connection = make_connection()
        connection.start()
        await asyncio.sleep(after_s)

        async with asyncio.timeout(FAST.drain_timeout_s + 1.0):
            await connection.close()

        assert connection.client.is_closed
        await asyncio.sleep(FAST.reconnect_wait_s * 2)
        assert other_tasks() <= before
        nats_server.start()
        await asyncio.sleep(0.2)
        assert not connection.connected  # nothing kept trying behind our back


class TestTasks:
    async def test_cancel_and_wait_ends_a_task_that_swallows_a_cancellation(self) -> None:
        swallowed = 0

        async def stubborn() -> None:
            nonlocal swallowed
            while True:
                try:
                    await asyncio.sleep(10)
                except asyncio.CancelledError:
                    swallowed += 1
                    if swallowed > 2:
                        raise

        task = asyncio.create_task(stubborn())
        await asyncio.sleep(0)
        await cancel_and_wait(task)

        assert task.cancelled()
        assert swallowed == 3

    async def test_cancel_and_wait_raises_what_the_task_failed_with(self) -> None:
        async def failing() -> None:
            raise ValueError("broken")

        task = asyncio.create_task(failing())
        await asyncio.sleep(0)
        with pytest.raises(ValueError, match="broken"):
            await cancel_and_wait(task)

    async def test_finish_within_holds_its_bound_against_a_swallowed_cancellation(
        self,
    ) -> None:
        async def ignores_one_cancel() -> None:
            try:
                await asyncio.sleep(10)
            except asyncio.CancelledError:
                await asyncio.sleep(10)

        started = time.monotonic()
        finished = await finish_within(ignores_one_cancel(), 0.1)

        assert not finished
        assert time.monotonic() - started < 1.0
        assert await finish_within(asyncio.sleep(0), 1.0)


class TestSettings:
    def test_timing_comes_from_the_service_prefix(self, monkeypatch: pytest.MonkeyPatch) -> None:
        class ServiceSettings(ServerSettings, NatsSettings):
            model_config = SettingsConfigDict(env_prefix="DEMO_")

        monkeypatch.setenv("DEMO_NATS_CONNECT_TIMEOUT_S", "0.25")
        monkeypatch.setenv("DEMO_NATS_DRAIN_TIMEOUT_S", "3")

        settings = ServiceSettings(_cli_parse_args=["--nats-reconnect-wait-s", "0.5"])

        assert settings.nats_timing == NatsTiming(
            connect_timeout_s=0.25, reconnect_wait_s=0.5, drain_timeout_s=3.0
        )
        # The service's configuration is kept (kebab-case flags above, descriptions).
        description = ServiceSettings.model_fields["nats_drain_timeout_s"].description
        assert description is not None
        assert "at shutdown" in description.lower()


async def _true(value: bool) -> bool:
    return value
