"""Liveness (``/healthz``), readiness (``/readyz``) and draining for graceful shutdown."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import Response
from tessera_contracts.health import HealthReport
from tessera_contracts.problem import Problem

from tessera_stack.web.problems import problem_response, status_title

__all__ = ["ReadinessCheck", "begin_draining", "install_health", "is_draining"]

logger = logging.getLogger("tessera_stack.web")

_OK = "ok"
_MAX_REASON = 200
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

    The probe gets the ``/readyz`` request, so it can reach lifespan state
    (``request.state.pool``) and ``request.app``.
    """

    name: str
    probe: Callable[[Request], Awaitable[None]]
    timeout_s: float = 2.0


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
    deadline = asyncio.timeout(check.timeout_s)
    try:
        async with deadline:
            await check.probe(request)
    except Exception as exc:  # any failure of a probe means "down", never a 500
        # A probe's own TimeoutError (e.g. a connect timeout) is reported as itself.
        expired = isinstance(exc, TimeoutError) and deadline.expired()
        reason = f"timed out after {check.timeout_s:g}s" if expired else _reason(exc)
        logger.debug("readiness check %s failed", check.name, exc_info=exc)
    else:
        return _OK
    logger.warning("readiness check %s failed: %s", check.name, reason, extra={"check": check.name})
    return reason


def begin_draining(app: FastAPI) -> None:
    """From now on ``/readyz`` answers 503 "draining", so load balancers stop sending traffic.

    ``create_service_app`` calls it when lifespan shutdown begins; a runner that
    knows about shutdown earlier (a SIGTERM handler) can call it sooner.
    """
    app.state.draining = True


def is_draining(app: FastAPI) -> bool:
    """Whether :func:`begin_draining` was called since the last lifespan startup."""
    return bool(getattr(app.state, "draining", False))


def _unavailable(detail: str, checks: dict[str, str] | None, path: str) -> Response:
    problem = Problem(
        title=status_title(503), status=503, detail=detail, instance=path, checks=checks
    )
    # Readiness changes from one second to the next: no cache may keep an answer.
    return problem_response(problem, {"Cache-Control": "no-store"})


def install_health(
    app: FastAPI, *, service: str, version: str, checks: Sequence[ReadinessCheck]
) -> None:
    """Add ``/healthz`` and ``/readyz`` to ``app`` (both left out of the OpenAPI schema)."""
    names = [check.name for check in checks]
    if len(set(names)) != len(names):
        raise ValueError(f"readiness check names must be unique: {names}")
    checks = tuple(checks)
    # Liveness never changes while the process runs: serialize it once.
    liveness = HealthReport(service=service, version=version).model_dump_json().encode()

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> Response:
        return Response(
            liveness, media_type="application/json", headers={"Cache-Control": "no-store"}
        )

    @app.get("/readyz", include_in_schema=False)
    async def readyz(request: Request) -> Response:
        if is_draining(request.app):
            return _unavailable("draining", None, request.url.path)
        results = await asyncio.gather(*(_run(check, request) for check in checks))
        states = dict(zip(names, results, strict=True))
        down = [name for name, state in states.items() if state != _OK]
        if down:
            return _unavailable(f"not ready: {', '.join(down)}", states, request.url.path)
        report = HealthReport(service=service, version=version, checks=states)
        return Response(
            report.model_dump_json(),
            media_type="application/json",
            headers={"Cache-Control": "no-store"},
        )
