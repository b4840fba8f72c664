"""Liveness (``/healthz``), readiness (``/readyz``) and draining for graceful shutdown.

Two places answer them. The API port runs the readiness checks on each
``/readyz``, as before. The probe port (:class:`tessera_runtime.probes.ProbeServer`,
a thread of its own) must answer while the event loop is saturated, so it never
waits on the loop: while the lifespan runs, the loop publishes a heartbeat and
the result of the readiness checks, run in the background, on the app's
:class:`ProbeBoard`, and the probe thread answers from the latest of each.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import Response
from tessera_contracts.health import HealthReport
from tessera_contracts.problem import PROBLEM_MEDIA_TYPE, Problem

from tessera_runtime.problems import status_title

__all__ = [
    "Answer",
    "ProbeBoard",
    "ProbeTiming",
    "ReadinessCheck",
    "begin_draining",
    "install_health",
    "is_draining",
    "probe_board",
    "publish_probes",
    "set_probe_timing",
]

logger = logging.getLogger("tessera_runtime")

_OK = "ok"
_MAX_REASON = 200
_JSON = "application/json"
# Exception messages of database and broker clients can quote the DSN they used;
# readiness bodies are visible to whoever can reach the port, so credentials go.
_URL_CREDENTIALS = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*://)[^/@\s]*@")
_SECRET_PAIRS = re.compile(
    r"(?P<key>password|passwd|pwd|secret|token|api[_-]?key)(?P<sep>\s*[=:]\s*)(?P<value>'[^']*'|\"[^\"]*\"|\S+)",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class ReadinessCheck:
    """One dependency ``/readyz`` checks: ``probe`` raising or timing out means down.

    The probe gets a request whose ``state`` is the lifespan state
    (``request.state.pool``) and whose ``app`` is the app: the ``/readyz``
    request on the API port, a request made for the purpose in the background.
    """

    name: str
    probe: Callable[[Request], Awaitable[None]]
    timeout_s: float = 2.0


@dataclass(frozen=True)
class ProbeTiming:
    """How the probe port's answers follow the event loop."""

    heartbeat_interval_s: float = 1.0
    """How often the event loop records that it still turns."""
    liveness_stall_s: float = 30.0
    """The probe port's ``/healthz`` answers 503 once the loop has not turned for this
    long: a loop blocked that long is stuck, not busy, and a restart is the cure."""
    readiness_interval_s: float = 1.0
    """Pause between two background runs of the readiness checks."""
    readiness_stale_s: float = 10.0
    """The probe port's ``/readyz`` answers 503 when the newest completed run is older
    than this; it must exceed the interval plus the slowest check's timeout."""
    request_timeout_s: float = 2.0
    """How long one probe request may take on the probe port, from its first byte to
    the end of the answer; a client that stalls or trickles is dropped after it."""

    def __post_init__(self) -> None:
        for name, value in vars(self).items():
            if not value > 0:
                raise ValueError(f"ProbeTiming.{name} must be positive, not {value!r}")
        if self.liveness_stall_s <= self.heartbeat_interval_s:
            raise ValueError("ProbeTiming.liveness_stall_s must exceed heartbeat_interval_s")


@dataclass(frozen=True, slots=True)
class Answer:
    """A probe response, serialized once: the same bytes on either port."""

    status: int
    media_type: str
    body: bytes

    def response(self) -> Response:
        # Health changes from one second to the next: no cache may keep an answer.
        return Response(
            self.body,
            status_code=self.status,
            media_type=self.media_type,
            headers={"Cache-Control": "no-store"},
        )


def unavailable(detail: str, path: str, checks: Mapping[str, str] | None = None) -> Answer:
    """A 503 problem+json answer (``checks`` names each readiness check's state)."""
    problem = Problem(
        title=status_title(503),
        status=503,
        detail=detail,
        instance=path,
        checks=dict(checks) if checks is not None else None,
    )
    return Answer(503, PROBLEM_MEDIA_TYPE, problem.model_dump_json(exclude_none=True).encode())


@dataclass(frozen=True, slots=True)
class Readiness:
    """One completed run of the readiness checks, as the probe port serves it."""

    finished_at: float
    """``time.monotonic()`` when the run completed."""
    answer: Answer


class ProbeBoard:
    """What the event loop publishes for the probe thread, attached to each service app.

    The loop replaces ``heartbeat`` (a float) and ``readiness`` (a frozen
    :class:`Readiness`) whole and never mutates them, so the probe thread reads
    a consistent value without a lock.
    """

    def __init__(
        self,
        *,
        service: str,
        version: str,
        checks: Sequence[ReadinessCheck],
        timing: ProbeTiming,
    ) -> None:
        self.service = service
        self.version = version
        self.checks = tuple(checks)
        self.timing = timing
        # Liveness never changes while the process runs: serialize it once.
        self.liveness = Answer(
            200, _JSON, HealthReport(service=service, version=version).model_dump_json().encode()
        )
        self.heartbeat: float | None = None
        """``time.monotonic()`` of the loop's latest turn; None before the lifespan started."""
        self.readiness: Readiness | None = None
        """The newest completed background run; None before the first one."""


def redact(text: str) -> str:
    """``text`` without URL credentials or ``password=...``-style values, and short."""
    text = _URL_CREDENTIALS.sub(r"\g<scheme>***@", text)
    text = _SECRET_PAIRS.sub(r"\g<key>\g<sep>***", text)
    text = " ".join(text.split())  # one line: no tracebacks or multi-line server messages
    if len(text) > _MAX_REASON:
        text = text[: _MAX_REASON - 3] + "..."
    return text


def _reason(exc: BaseException) -> str:
    message = str(exc)
    return redact(f"{type(exc).__name__}: {message}" if message else type(exc).__name__)


async def _run(check: ReadinessCheck, request: Request) -> str:
    """``"ok"``, or why ``check`` failed (logged at debug level with its traceback)."""
    deadline = asyncio.timeout(check.timeout_s)
    try:
        async with deadline:
            await check.probe(request)
    except Exception as exc:  # any failure of a probe means "down", never a 500
        # A probe's own TimeoutError (e.g. a connect timeout) is reported as itself.
        expired = isinstance(exc, TimeoutError) and deadline.expired()
        logger.debug("readiness check %s failed", check.name, exc_info=exc)
        return f"timed out after {check.timeout_s:g}s" if expired else _reason(exc)
    return _OK


async def _run_all(board: ProbeBoard, request: Request) -> dict[str, str]:
    results = await asyncio.gather(*(_run(check, request) for check in board.checks))
    return {check.name: result for check, result in zip(board.checks, results, strict=True)}


def _readiness_answer(board: ProbeBoard, states: Mapping[str, str], path: str) -> Answer:
    down = [name for name, state in states.items() if state != _OK]
    if down:
        return unavailable(f"not ready: {', '.join(down)}", path, states)
    report = HealthReport(service=board.service, version=board.version, checks=dict(states))
    return Answer(200, _JSON, report.model_dump_json().encode())


def begin_draining(app: FastAPI) -> None:
    """From now on ``/readyz`` answers 503 "draining", so load balancers stop sending traffic.

    ``create_service_app`` calls it when lifespan shutdown begins; a runner that
    knows about shutdown earlier (a SIGTERM handler) can call it sooner, from any thread.
    """
    app.state.draining = True


def is_draining(app: FastAPI) -> bool:
    """Whether :func:`begin_draining` was called since the last lifespan startup."""
    return bool(getattr(app.state, "draining", False))


def probe_board(app: FastAPI) -> ProbeBoard:
    """The board :func:`install_health` attached to ``app``."""
    board = getattr(app.state, "probe_board", None)
    if not isinstance(board, ProbeBoard):
        raise TypeError("the app has no probe board: build it with create_service_app")
    return board


def set_probe_timing(app: FastAPI, timing: ProbeTiming) -> None:
    """Use ``timing`` for ``app``'s probe port from now on (e.g. from a runner's settings).

    Raises:
        ValueError: ``timing.readiness_stale_s`` does not exceed the interval plus the
            slowest readiness check's timeout.
    """
    board = probe_board(app)
    slowest = max((check.timeout_s for check in board.checks), default=0.0)
    if timing.readiness_stale_s <= timing.readiness_interval_s + slowest:
        # Otherwise a healthy service's result would look stale between two runs.
        raise ValueError(
            f"readiness_stale_s ({timing.readiness_stale_s:g}) must exceed readiness_interval_s"
            f" ({timing.readiness_interval_s:g}) plus the slowest check's timeout ({slowest:g})"
        )
    board.timing = timing  # replaced whole: the loop and the probe thread read it per use


def install_health(
    app: FastAPI,
    *,
    service: str,
    version: str,
    checks: Sequence[ReadinessCheck],
    timing: ProbeTiming | None = None,
) -> None:
    """Add ``/healthz`` and ``/readyz`` to ``app`` (both left out of the OpenAPI schema).

    Also attaches the :class:`ProbeBoard` that :func:`publish_probes` keeps current.
    """
    names = [check.name for check in checks]
    if len(set(names)) != len(names):
        raise ValueError(f"readiness check names must be unique: {names}")
    board = ProbeBoard(service=service, version=version, checks=checks, timing=ProbeTiming())
    app.state.probe_board = board
    set_probe_timing(app, timing or ProbeTiming())

    # HEAD as well: load balancers and uptime checkers often probe with it.
    @app.api_route("/healthz", methods=["GET", "HEAD"], include_in_schema=False)
    async def healthz() -> Response:
        return board.liveness.response()

    # The API port's /readyz checks now rather than serving the background result:
    # whoever asks here (an operator, `tessera up`, a test) wants the current state
    # right after changing something, and a call costs one run of the checks. The
    # kubelet asks the probe port, which must not wait on this loop.
    @app.api_route("/readyz", methods=["GET", "HEAD"], include_in_schema=False)
    async def readyz(request: Request) -> Response:
        if is_draining(request.app):
            return unavailable("draining", request.url.path).response()
        states = await _run_all(board, request)
        for name, state in states.items():
            if state != _OK:
                logger.warning("readiness check %s failed: %s", name, state, extra={"check": name})
        return _readiness_answer(board, states, request.url.path).response()


def _check_request(app: FastAPI, state: Mapping[str, Any]) -> Request:
    # What uvicorn hands each request: the app, and a shallow copy of the lifespan state.
    return Request(
        {
            "type": "http",
            "app": app,
            "state": dict(state),
            "method": "GET",
            "scheme": "http",
            "path": "/readyz",
            "raw_path": b"/readyz",
            "root_path": "",
            "query_string": b"",
            "headers": [],
            "client": None,
            "server": None,
            "http_version": "1.1",
        }
    )


async def _beat(board: ProbeBoard) -> None:
    while True:
        board.heartbeat = time.monotonic()
        await asyncio.sleep(board.timing.heartbeat_interval_s)


async def _check_forever(board: ProbeBoard, app: FastAPI, state: Mapping[str, Any]) -> None:
    previous: dict[str, str] = {}
    while True:
        states = await _run_all(board, _check_request(app, state))
        # Once a second per check would flood the log during an outage: log changes only.
        for name, reason in states.items():
            was = previous.get(name, _OK)
            if reason != _OK and was == _OK:
                logger.warning("readiness check %s failed: %s", name, reason, extra={"check": name})
            elif reason == _OK and was != _OK:
                logger.info("readiness check %s recovered", name, extra={"check": name})
        previous = states
        answer = _readiness_answer(board, states, "/readyz")
        board.readiness = Readiness(finished_at=time.monotonic(), answer=answer)
        await asyncio.sleep(board.timing.readiness_interval_s)


def _log_crash(task: asyncio.Task[None]) -> None:
    # The probe port then reports the loop stalled or readiness stale: say why.
    if not task.cancelled() and task.exception() is not None:
        logger.error("%s stopped", task.get_name(), exc_info=task.exception())


@contextlib.asynccontextmanager
async def publish_probes(app: FastAPI, state: Mapping[str, Any]) -> AsyncIterator[None]:
    """Keep ``app``'s probe board current (heartbeat, readiness) for the block.

    ``create_service_app`` enters it in the lifespan, after the service's own
    startup and before its shutdown, so the checks only see open resources.
    """
    board = probe_board(app)
    board.heartbeat = None
    board.readiness = None
    tasks = [
        asyncio.create_task(_beat(board), name="probe-heartbeat"),
        asyncio.create_task(_check_forever(board, app, state), name="probe-readiness"),
    ]
    for task in tasks:
        task.add_done_callback(_log_crash)
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
