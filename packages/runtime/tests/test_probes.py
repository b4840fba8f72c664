"""The probe port: answers from its own thread while the event loop is busy or stuck.

Each app runs under real uvicorn in a thread of its own (its event loop is the
one a route blocks), with a ProbeServer next to it as a service runs in
production; the test talks to both over real sockets.
"""

from __future__ import annotations

import contextlib
import logging
import select
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass

import httpx
import pytest
import uvicorn
from fastapi import FastAPI, Request
from tessera_contracts.health import HealthReport
from tessera_contracts.problem import PROBLEM_MEDIA_TYPE, Problem
from tessera_runtime import (
    ProbeServer,
    ProbeTiming,
    ReadinessCheck,
    begin_draining,
    create_service_app,
    set_probe_timing,
)

from .conftest import in_thread

pytestmark = pytest.mark.timeout(60)

# Small bounds so stalls and staleness show within a test; the check's timeout
# (0.2 s) plus the interval stays under the staleness bound, as it must.
FAST = ProbeTiming(
    heartbeat_interval_s=0.05,
    liveness_stall_s=0.5,
    readiness_interval_s=0.05,
    readiness_stale_s=1.0,
    request_timeout_s=0.5,
)
# Liveness that tolerates the 2 s blocks of these tests (production: 30 s), for
# every test that expects /healthz to be 200: a loaded runner can hold the loop
# back for more than FAST's 0.5 s.
TOLERANT = ProbeTiming(heartbeat_interval_s=0.05, readiness_interval_s=0.05, readiness_stale_s=5.0)
BLOCK_S = 2.0
# For the test that stalls the loop on purpose: bounds well inside its block, yet
# above what a loaded runner delays the loop by.
STALLING = ProbeTiming(
    heartbeat_interval_s=0.05,
    liveness_stall_s=1.5,
    readiness_interval_s=0.05,
    readiness_stale_s=1.5,
)
STALL_S = 4.0


class Dependency:
    """A readiness check whose outcome the test sets, and a way to block the loop."""

    def __init__(self) -> None:
        self.error: Exception | None = None
        self.blocking = threading.Event()

    async def check(self, request: Request) -> None:
        # The lifespan state reaches the background check, as services need it to.
        assert request.state.opened is True
        if self.error is not None:
            raise self.error


def build_app(dependency: Dependency, timing: ProbeTiming) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, bool]]:
        yield {"opened": True}

    app = create_service_app(
        title="probed",
        version="9.9.9",
        lifespan=lifespan,
        readiness_checks=[ReadinessCheck("dep", dependency.check, timeout_s=0.2)],
        probe_timing=timing,
    )

    @app.get("/block")
    async def block(seconds: float) -> dict[str, float]:
        # A synchronous call on the event loop: nothing else on it runs meanwhile.
        dependency.blocking.set()
        time.sleep(seconds)
        return {"slept": seconds}

    return app


@dataclass
class Running:
    app: FastAPI
    api: str
    probes: str
    server: uvicorn.Server
    thread: threading.Thread
    probe_server: ProbeServer

    def poll(
        self, client: httpx.Client, path: str, until: Callable[[httpx.Response], bool]
    ) -> httpx.Response:
        """Ask the probe port's `path` until the answer satisfies `until`."""
        return poll(lambda: client.get(f"{self.probes}/{path}"), until)


@contextmanager
def running(app: FastAPI, client: httpx.Client) -> Iterator[Running]:
    """The probe server, then uvicorn on the app in a thread, once ready; both stopped afterwards."""
    probe_server = ProbeServer(app, "127.0.0.1", 0)
    probe_server.start()
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(app, log_config=None, access_log=False, lifespan="on")
    server = uvicorn.Server(config)
    try:
        with in_thread(server, [sock]) as thread:
            service = Running(
                app=app,
                api=f"http://127.0.0.1:{sock.getsockname()[1]}",
                probes=f"http://127.0.0.1:{probe_server.port}",
                server=server,
                thread=thread,
                probe_server=probe_server,
            )
            service.poll(client, "readyz", ready)
            yield service
    finally:
        sock.close()
        probe_server.stop()


def poll(
    get: Callable[[], httpx.Response], until: Callable[[httpx.Response], bool]
) -> httpx.Response:
    """Ask until the answer satisfies ``until``; fail after 10 s."""
    deadline = time.monotonic() + 10
    while True:
        response = get()
        if until(response):
            return response
        assert time.monotonic() < deadline, f"last answer: {response.status_code} {response.text}"
        time.sleep(0.02)


@contextmanager
def loop_blocked(
    service: Running, dependency: Dependency, seconds: float
) -> Iterator[threading.Event]:
    """Block the service's event loop for ``seconds``; the event is set once it is free again."""
    done = threading.Event()

    def call() -> None:
        try:
            httpx.get(f"{service.api}/block", params={"seconds": seconds}, timeout=30)
        finally:
            done.set()

    dependency.blocking.clear()
    caller = threading.Thread(target=call, daemon=True)
    caller.start()
    assert dependency.blocking.wait(10), "the blocking route never ran"
    try:
        yield done
    finally:
        caller.join(30)


@pytest.fixture
def dependency() -> Dependency:
    return Dependency()


@pytest.fixture
def probes() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=5) as client:
        yield client


def ready(response: httpx.Response) -> bool:
    return response.status_code == 200


def unavailable(response: httpx.Response) -> bool:
    return response.status_code == 503


class TestBlockedLoop:
    def test_probe_port_answers_while_the_api_port_cannot(
        self, dependency: Dependency, probes: httpx.Client
    ) -> None:
        with running(build_app(dependency, TOLERANT), probes) as service:
            with loop_blocked(service, dependency, BLOCK_S) as unblocked:
                health = probes.get(f"{service.probes}/healthz", timeout=1.0)
                readiness = probes.get(f"{service.probes}/readyz", timeout=1.0)
                answered_while_blocked = not unblocked.is_set()
                with pytest.raises(httpx.ReadTimeout):
                    probes.get(f"{service.api}/healthz", timeout=0.5)
                api_blocked_too = not unblocked.is_set()

            assert answered_while_blocked
            assert api_blocked_too  # the API port timed out because of the block itself
            assert health.status_code == 200
            assert HealthReport.model_validate_json(health.content).service == "probed"
            assert readiness.status_code == 200
            assert HealthReport.model_validate_json(readiness.content).checks == {"dep": "ok"}

    def test_liveness_and_readiness_fail_once_the_loop_stalls_beyond_the_bounds(
        self, dependency: Dependency, probes: httpx.Client
    ) -> None:
        with running(build_app(dependency, STALLING), probes) as service:
            service.poll(probes, "healthz", ready)

            with loop_blocked(service, dependency, STALL_S) as unblocked:
                dead = service.poll(probes, "healthz", unavailable)
                stale = service.poll(probes, "readyz", unavailable)
                during_the_stall = not unblocked.is_set()

            assert during_the_stall
            assert dead.headers["content-type"] == PROBLEM_MEDIA_TYPE
            assert (Problem.model_validate_json(dead.content).detail or "").startswith(
                "event loop stalled for"
            )
            assert (Problem.model_validate_json(stale.content).detail or "").startswith(
                "readiness checks stalled"
            )
            # The loop turns again: both recover without a restart.
            service.poll(probes, "healthz", ready)
            service.poll(probes, "readyz", ready)


class TestReadiness:
    def test_flips_to_503_naming_the_check_and_back_when_it_recovers(
        self, dependency: Dependency, probes: httpx.Client
    ) -> None:
        with running(build_app(dependency, FAST), probes) as service:
            dependency.error = ConnectionRefusedError("refused by dep://user:hunter2@db")
            down = service.poll(probes, "readyz", unavailable)
            dependency.error = None
            up = service.poll(probes, "readyz", ready)

        assert down.headers["content-type"] == PROBLEM_MEDIA_TYPE
        assert down.headers["cache-control"] == "no-store"
        problem = Problem.model_validate_json(down.content)
        assert problem.detail == "not ready: dep"
        assert problem.checks == {"dep": "ConnectionRefusedError: refused by dep://***@db"}
        assert HealthReport.model_validate_json(up.content).checks == {"dep": "ok"}

    def test_background_checks_log_changes_not_every_run(
        self, dependency: Dependency, probes: httpx.Client, caplog: pytest.LogCaptureFixture
    ) -> None:
        with caplog.at_level(logging.INFO, logger="tessera_runtime"):
            with running(build_app(dependency, FAST), probes) as service:
                dependency.error = RuntimeError("down")
                service.poll(probes, "readyz", unavailable)
                time.sleep(0.5)  # about ten more failing runs
                dependency.error = None
                service.poll(probes, "readyz", ready)

        messages = [r.getMessage() for r in caplog.records if "readiness check" in r.getMessage()]
        assert messages == [
            "readiness check dep failed: RuntimeError: down",
            "readiness check dep recovered",
        ]

    def test_answers_are_those_of_the_api_port(
        self, dependency: Dependency, probes: httpx.Client
    ) -> None:
        with running(build_app(dependency, TOLERANT), probes) as service:
            pairs = [
                (probes.get(f"{service.probes}/{path}"), probes.get(f"{service.api}/{path}"))
                for path in ("healthz", "readyz")
            ]
            dependency.error = RuntimeError("down")
            down = service.poll(probes, "readyz", unavailable)
            pairs.append((down, probes.get(f"{service.api}/readyz")))

        for probe_port, api_port in pairs:
            assert probe_port.status_code == api_port.status_code
            assert probe_port.headers["content-type"] == api_port.headers["content-type"]
            assert probe_port.headers["cache-control"] == api_port.headers["cache-control"]
            assert probe_port.content == api_port.content

    def test_draining_is_503_while_liveness_stays_200(
        self, dependency: Dependency, probes: httpx.Client
    ) -> None:
        with running(build_app(dependency, TOLERANT), probes) as service:
            begin_draining(service.app)  # as a SIGTERM handler would, from its thread
            draining = probes.get(f"{service.probes}/readyz")
            alive = probes.get(f"{service.probes}/healthz")

        assert draining.status_code == 503
        assert Problem.model_validate_json(draining.content).detail == "draining"
        assert alive.status_code == 200

    def test_lifespan_shutdown_drains_the_probe_port(
        self, dependency: Dependency, probes: httpx.Client
    ) -> None:
        app = build_app(dependency, TOLERANT)
        with running(app, probes) as service:
            service.server.should_exit = True
            service.thread.join(15)
            after = probes.get(f"{service.probes}/readyz")

        assert not service.thread.is_alive()
        assert after.status_code == 503
        assert Problem.model_validate_json(after.content).detail == "draining"

    def test_before_the_lifespan_runs_both_probes_say_starting(
        self, dependency: Dependency, probes: httpx.Client
    ) -> None:
        # Probes start before uvicorn, so the startup probe finds the port at once.
        with ProbeServer(build_app(dependency, FAST), "127.0.0.1", 0) as probe_server:
            base = f"http://127.0.0.1:{probe_server.port}"
            answers = [probes.get(f"{base}/{path}") for path in ("healthz", "readyz")]

        for answer in answers:
            assert answer.status_code == 503
            assert (Problem.model_validate_json(answer.content).detail or "").startswith("starting")


class TestProtocol:
    def test_head_answers_the_status_without_a_body(
        self, dependency: Dependency, probes: httpx.Client
    ) -> None:
        with running(build_app(dependency, TOLERANT), probes) as service:
            head = probes.head(f"{service.probes}/healthz")
            get = probes.get(f"{service.probes}/healthz")

        assert head.status_code == 200
        assert head.content == b""
        assert head.headers["content-length"] == str(len(get.content))

    @pytest.mark.parametrize(
        ("method", "path", "status"),
        [("GET", "/metrics", 404), ("GET", "/", 404), ("POST", "/readyz", 405)],
    )
    def test_anything_else_is_a_problem(
        self, dependency: Dependency, probes: httpx.Client, method: str, path: str, status: int
    ) -> None:
        with ProbeServer(build_app(dependency, FAST), "127.0.0.1", 0) as probe_server:
            response = probes.request(method, f"http://127.0.0.1:{probe_server.port}{path}")

        assert response.status_code == status
        assert response.headers["content-type"] == PROBLEM_MEDIA_TYPE
        assert Problem.model_validate_json(response.content).status == status

    def test_malformed_request_is_a_400_problem(self, dependency: Dependency) -> None:
        with ProbeServer(build_app(dependency, FAST), "127.0.0.1", 0) as probe_server:
            with socket.create_connection(("127.0.0.1", probe_server.port), timeout=5) as sock:
                sock.sendall(b"GET /healthz HTTP/9\r\n\r\n")
                reply = _read_all(sock)

        head, _, body = reply.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 400 ")
        assert f"content-type: {PROBLEM_MEDIA_TYPE}".encode() in head.lower()
        assert Problem.model_validate_json(body).status == 400

    def test_a_stalled_client_is_dropped_and_does_not_hold_the_port(
        self, dependency: Dependency, probes: httpx.Client
    ) -> None:
        app = build_app(dependency, ProbeTiming())  # request_timeout_s: 2 s ...
        set_probe_timing(app, FAST)  # ... then 0.5 s, as a runner's settings would say
        with ProbeServer(app, "127.0.0.1", 0) as probe_server:
            with socket.create_connection(("127.0.0.1", probe_server.port), timeout=5) as slow:
                slow.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # and nothing more
                meanwhile = probes.get(f"http://127.0.0.1:{probe_server.port}/healthz")
                started = time.monotonic()
                leftover = _read_all(slow)
                closed_after_s = time.monotonic() - started

        assert meanwhile.status_code == 503  # answered (no lifespan: "starting")
        assert leftover == b""  # closed without an answer
        assert closed_after_s < 1.8  # the 0.5 s timeout set last, not the default 2 s


class TestAbuse:
    def test_a_trickling_client_is_dropped_at_the_request_deadline(
        self, dependency: Dependency
    ) -> None:
        # FAST: 0.5 s for the whole request. One byte every 0.2 s never lets a
        # single read wait that long.
        with ProbeServer(build_app(dependency, FAST), "127.0.0.1", 0) as probe_server:
            with socket.create_connection(("127.0.0.1", probe_server.port), timeout=5) as slow:
                started = time.monotonic()
                slow.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
                while time.monotonic() - started < 5 and not _closed_by_peer(slow):
                    with contextlib.suppress(OSError):
                        slow.sendall(b"s")
                    time.sleep(0.2)
                closed_after_s = time.monotonic() - started

        assert closed_after_s < 2.0  # 0.5 s deadline, generous for a loaded runner

    def test_connections_beyond_the_cap_are_closed_at_once(
        self, dependency: Dependency, probes: httpx.Client
    ) -> None:
        app = build_app(dependency, TOLERANT)  # a request may take 2 s
        with ProbeServer(app, "127.0.0.1", 0, max_connections=2) as probe_server:
            address = ("127.0.0.1", probe_server.port)
            holders = [socket.create_connection(address, timeout=5) for _ in range(2)]
            try:
                time.sleep(0.2)  # both accepted, each holding a handler thread
                with socket.create_connection(address, timeout=5) as third:
                    third.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                    started = time.monotonic()
                    try:
                        refused_with = _read_all(third)
                    except ConnectionResetError:
                        refused_with = b""
                    refused_after_s = time.monotonic() - started
            finally:
                for holder in holders:
                    holder.close()
            # The holders' threads end when their connections do: served again.
            deadline = time.monotonic() + 10
            while True:
                try:
                    after = probes.get(f"http://127.0.0.1:{probe_server.port}/healthz")
                    break
                except httpx.RemoteProtocolError:  # closed at once: not released yet
                    assert time.monotonic() < deadline, "the cap was never released"
                    time.sleep(0.05)

        assert refused_with == b""  # closed without an answer
        assert refused_after_s < 1.5  # at once, not at the holders' 2 s deadline
        assert (Problem.model_validate_json(after.content).detail or "").startswith("starting")

    def test_a_cap_below_one_is_refused(self, dependency: Dependency) -> None:
        with pytest.raises(ValueError, match="max_connections"):
            ProbeServer(build_app(dependency, FAST), "127.0.0.1", 0, max_connections=0)


class TestLifecycle:
    def test_stop_frees_the_port(self, dependency: Dependency) -> None:
        app = build_app(dependency, FAST)
        first = ProbeServer(app, "127.0.0.1", 0)
        first.start()
        port = first.port
        with httpx.Client() as client:
            assert client.get(f"http://127.0.0.1:{port}/healthz").status_code == 503
        first.stop()

        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
        # Bound again right away, as a restarted process would.
        with ProbeServer(app, "127.0.0.1", port) as second:
            assert second.port == port

    def test_start_twice_or_a_taken_port_is_refused(self, dependency: Dependency) -> None:
        app = build_app(dependency, FAST)
        with ProbeServer(app, "127.0.0.1", 0) as probe_server:
            with pytest.raises(RuntimeError, match="already started"):
                probe_server.start()
            with pytest.raises(OSError, match="in use"):
                ProbeServer(app, "127.0.0.1", probe_server.port).start()

    def test_needs_a_service_app(self) -> None:
        with pytest.raises(TypeError, match="create_service_app"):
            ProbeServer(FastAPI(), "127.0.0.1", 0)


class TestTiming:
    def test_staleness_bound_must_outlast_a_run_of_the_checks(self) -> None:
        async def slow(request: Request) -> None:
            return None

        with pytest.raises(ValueError, match="readiness_stale_s"):
            create_service_app(
                title="t",
                version="0",
                readiness_checks=[ReadinessCheck("slow", slow, timeout_s=5.0)],
                probe_timing=ProbeTiming(readiness_interval_s=1.0, readiness_stale_s=5.0),
            )

    def test_set_timing_is_checked_against_the_checks(self, dependency: Dependency) -> None:
        app = build_app(dependency, FAST)  # its check times out after 0.2 s

        with pytest.raises(ValueError, match="readiness_stale_s"):
            set_probe_timing(app, ProbeTiming(readiness_interval_s=1.0, readiness_stale_s=1.1))

    @pytest.mark.parametrize(
        "kwargs", [{"heartbeat_interval_s": 0}, {"heartbeat_interval_s": 2, "liveness_stall_s": 1}]
    )
    def test_nonsense_is_refused(self, kwargs: dict[str, float]) -> None:
        with pytest.raises(ValueError, match="ProbeTiming"):
            ProbeTiming(**kwargs)


def _closed_by_peer(sock: socket.socket) -> bool:
    """Whether the server closed ``sock`` (readable with nothing to read, or reset)."""
    readable, _, _ = select.select([sock], [], [], 0)
    if not readable:
        return False
    try:
        return sock.recv(65536, socket.MSG_PEEK) == b""
    except ConnectionResetError:
        return True


def _read_all(sock: socket.socket) -> bytes:
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)
