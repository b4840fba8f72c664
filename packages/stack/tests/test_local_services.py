"""`port_in_use`, the check `tessera up` makes before it starts anything, on real sockets."""

from __future__ import annotations

import socket
from collections.abc import Callable

from tessera_stack.local.services import port_in_use

HOST = "127.0.0.1"


def _listener(*, reuse_address: bool) -> socket.socket:
    server = socket.socket()
    if reuse_address:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind((HOST, 0))
    server.listen()
    return server


def _serve_one_connection_then_stop(server: socket.socket) -> None:
    """What a server under load leaves behind: it closed the connection first, then stopped."""
    with socket.create_connection(server.getsockname()) as client:
        accepted, _ = server.accept()
        with accepted:
            client.sendall(b"GET /readyz HTTP/1.1\r\n\r\n")
            assert accepted.recv(100)
            accepted.sendall(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
        # The server side closed first, so its socket is the one in TIME_WAIT.
        assert client.recv(100)
    server.close()


class TestPortInUse:
    def test_a_port_left_in_time_wait_by_a_stopped_server_is_free(
        self, time_waits: Callable[[int], int]
    ) -> None:
        # Like uvicorn, whose listening socket has SO_REUSEADDR.
        server = _listener(reuse_address=True)
        port = server.getsockname()[1]

        _serve_one_connection_then_stop(server)

        assert time_waits(port) >= 1
        assert port_in_use(HOST, port) is False
        # ...and a new server does bind it, as the check promised.
        with _listener_on(port) as again:
            assert again.getsockname()[1] == port

    def test_a_port_with_a_listener_is_in_use(self) -> None:
        for reuse_address in (True, False):
            with _listener(reuse_address=reuse_address) as server:
                assert port_in_use(HOST, server.getsockname()[1]) is True

    def test_a_port_nobody_holds_is_free(self) -> None:
        with _listener(reuse_address=False) as server:
            port = server.getsockname()[1]
        assert port_in_use(HOST, port) is False


def _listener_on(port: int) -> socket.socket:
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind((HOST, port))
    server.listen()
    return server
