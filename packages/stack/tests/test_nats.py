from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import nats
import pytest
from tessera_stack.nats import (
    EmbeddedNats,
    ExternalNats,
    delete_streams,
    nats_unreachable,
    resolve_nats,
)
from tessera_stack.process import ServerError, free_port


@pytest.fixture
def server(tmp_path: Path) -> Iterator[EmbeddedNats]:
    with EmbeddedNats(tmp_path / "nats") as embedded:
        yield embedded


class TestEmbeddedNats:
    async def test_serves_jetstream(self, server: EmbeddedNats) -> None:
        assert server.url == f"nats://127.0.0.1:{server.port}"
        client = await nats.connect(server.url)
        try:
            js = client.jetstream()
            await js.add_stream(name="ORDERS", subjects=["orders.>"])
            ack = await js.publish("orders.created", b"first")
            assert (ack.stream, ack.seq) == ("ORDERS", 1)
        finally:
            await client.close()

    async def test_messages_survive_a_restart_on_the_same_port(self, server: EmbeddedNats) -> None:
        url = server.url
        client = await nats.connect(url)
        js = client.jetstream()
        await js.add_stream(name="ORDERS", subjects=["orders.>"])
        await js.publish("orders.created", b"kept")
        await client.close()

        server.stop()
        assert not server.running
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", server.port), timeout=1).close()
        server.start()

        assert server.url == url
        client = await nats.connect(url)
        try:
            message = await client.jetstream().get_msg("ORDERS", 1)
            assert message.data == b"kept"
        finally:
            await client.close()

    def test_stop_leaves_no_server_process(
        self,
        tmp_path: Path,
        wait_gone: Callable[[str, float], list[str]],
        find_processes: Callable[[str], list[str]],
    ) -> None:
        store = tmp_path / "nats"
        with EmbeddedNats(store):
            assert find_processes(str(store))

        assert wait_gone(str(store), 5.0) == []

    def test_a_taken_fixed_port_is_a_clear_error(self, tmp_path: Path) -> None:
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            port = taken.getsockname()[1]
            server = EmbeddedNats(tmp_path / "nats", port=port)
            with pytest.raises(ServerError, match="address already in use"):
                server.start()
            assert not server.running


class TestResolveNats:
    def test_reachable_url_is_used(self, server: EmbeddedNats, tmp_path: Path) -> None:
        reasons: list[str] = []
        resolved = resolve_nats(server.url, tmp_path / "other", on_unreachable=reasons.append)

        assert resolved == ExternalNats(server.url)
        assert reasons == []

    def test_unreachable_url_falls_back_to_embedded(self, tmp_path: Path) -> None:
        reasons: list[str] = []
        url = f"nats://127.0.0.1:{free_port()}"
        resolved = resolve_nats(url, tmp_path / "nats", on_unreachable=reasons.append)

        assert isinstance(resolved, EmbeddedNats)
        assert len(reasons) == 1
        assert "refused" in reasons[0].lower()

    def test_any_server_of_a_list_will_do(self, server: EmbeddedNats) -> None:
        assert nats_unreachable(f"nats://127.0.0.1:{free_port()},{server.url}") is None

    def test_a_listener_that_is_not_nats_is_unreachable(self) -> None:
        with socket.socket() as other:
            other.bind(("127.0.0.1", 0))
            other.listen()
            port = other.getsockname()[1]
            # It accepts but never greets: the check must time out, not hang.
            reason = nats_unreachable(f"nats://127.0.0.1:{port}", timeout_s=0.2)
        assert reason is not None
        assert f"127.0.0.1:{port}" in reason


async def test_delete_streams_removes_every_stream(server: EmbeddedNats) -> None:
    client = await nats.connect(server.url)
    try:
        js = client.jetstream()
        await js.add_stream(name="ONE", subjects=["one.>"])
        await js.create_key_value(bucket="settings")

        assert sorted(await delete_streams(server.url)) == ["KV_settings", "ONE"]
        assert await client.jsm().streams_info() == []
    finally:
        await client.close()
