"""Every error a service returns, as an RFC 9457 ``application/problem+json`` body."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any, ClassVar

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from tessera_contracts.problem import PROBLEM_MEDIA_TYPE, FieldError, Problem

from tessera_runtime.context import request_id
from tessera_runtime.error_tracking import capture_error
from tessera_runtime.middleware import matched_template
from tessera_runtime.tracing import record_error

__all__ = [
    "ServiceError",
    "UnhandledErrorMiddleware",
    "error_problem",
    "field_errors",
    "install_problem_handlers",
    "problem_response",
    "status_title",
    "unparsable_body",
]

logger = logging.getLogger("tessera_runtime")

# RFC 9110 renamed a few reason phrases that Python 3.11's HTTPStatus still spells
# the RFC 7231 way; titles should match the current RFC.
_RFC9110_PHRASES = {
    413: "Content Too Large",
    414: "URI Too Long",
    416: "Range Not Satisfiable",
    422: "Unprocessable Content",
}
# Set in the scope once UnhandledErrorMiddleware has answered a request's exception.
_ANSWERED = "tessera.unhandled_error_answered"
_CAMEL_BOUNDARY = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")


def status_title(status: int) -> str:
    """The RFC 9110 reason phrase of ``status`` (``"Error"`` for unregistered codes)."""
    phrase = _RFC9110_PHRASES.get(status)
    if phrase is not None:
        return phrase
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def _body_allowed(status: int) -> bool:
    return status >= 200 and status not in (204, 304)


def problem_response(problem: Problem, headers: Mapping[str, str] | None = None) -> Response:
    """Serialize ``problem`` as an ``application/problem+json`` response with its status.

    Args:
        problem: the problem details; ``problem.status`` is the response status.
        headers: extra response headers (e.g. ``Allow``, ``Retry-After``).

    Returns:
        The response; without a body for statuses that forbid one (1xx, 204, 304).
    """
    if not _body_allowed(problem.status):
        return Response(status_code=problem.status, headers=dict(headers) if headers else None)
    return Response(
        content=problem.model_dump_json(exclude_none=True),
        status_code=problem.status,
        headers=dict(headers) if headers else None,
        media_type=PROBLEM_MEDIA_TYPE,
    )


class ServiceError(Exception):
    """Base of a service's own errors; each service subclasses it once (``CatalogError``).

    The handler turns an instance into a problem: ``status_code`` is the status,
    ``title`` (default: the class name) and ``type_uri`` (default:
    ``urn:tessera:problem:<kebab-case class name>``) identify the problem type,
    and ``str(exc)`` is the detail. Override :meth:`to_problem` to add members.
    """

    status_code: ClassVar[int] = 500
    title: ClassVar[str | None] = None
    type_uri: ClassVar[str | None] = None

    def __init__(
        self,
        detail: str = "",
        *,
        upstream: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """Create the error.

        Args:
            detail: explanation of this occurrence (the problem's ``detail``).
            upstream: the upstream service that failed, for 502/503/504 errors.
            headers: response headers to send with the problem, e.g. ``Retry-After``.
        """
        super().__init__(detail)
        self.upstream = upstream
        self.headers: dict[str, str] = dict(headers) if headers else {}

    @classmethod
    def problem_title(cls) -> str:
        """The problem ``title``: ``title`` if set, else the class name."""
        return cls.title or cls.__name__

    @classmethod
    def problem_type(cls) -> str:
        """The problem ``type`` URI: ``type_uri`` if set, else derived from the class name."""
        if cls.type_uri:
            return cls.type_uri
        # RFC 9457 asks for a URI that identifies the type; a URN needs no server to
        # resolve and stays stable as long as the class name does.
        return "urn:tessera:problem:" + _CAMEL_BOUNDARY.sub("-", cls.__name__).lower()

    def to_problem(self, *, instance: str | None = None) -> Problem:
        """The problem details of this error.

        Args:
            instance: identifies the occurrence, e.g. the request path.

        Returns:
            The problem, with ``status_code`` as its status.
        """
        return Problem(
            type=self.problem_type(),
            title=self.problem_title(),
            status=self.status_code,
            detail=str(self) or None,
            instance=instance,
            upstream=self.upstream,
        )


def _field_error(error: Mapping[str, Any]) -> FieldError:
    loc = [part if isinstance(part, int) else str(part) for part in error.get("loc", ())]
    msg = str(error.get("msg", ""))
    kind = str(error.get("type", "value_error"))
    if kind == "json_invalid":
        # FastAPI puts the character offset after "body"; the location of a syntax
        # error is the body itself, and the offset belongs in the message.
        position = next((part for part in loc[1:] if isinstance(part, int)), None)
        reason = (error.get("ctx") or {}).get("error")
        msg = "Invalid JSON" + (f": {reason}" if reason else "")
        if position is not None:
            msg += f" at character {position}"
        loc = loc[:1] or ["body"]
    return FieldError(loc=loc, msg=msg, type=kind)


def field_errors(exc: RequestValidationError) -> list[FieldError]:
    """The field errors of ``exc`` as the 422 problem lists them (``loc``, ``msg``, ``type``)."""
    return [_field_error(error) for error in exc.errors()]


def _unreadable_json_reason(cause: BaseException | None) -> str | None:
    if isinstance(cause, UnicodeDecodeError):
        return f"not {cause.encoding.upper()} text ({cause.reason} at byte {cause.start})"
    if isinstance(cause, RecursionError):
        return "nested too deeply"
    if isinstance(cause, ValueError):
        # The other ValueError json.loads raises: Python's limit on integer digits.
        # Its advice on raising the limit (after the colon) is for us, not the client.
        return str(cause).partition(":")[0]
    return None


def unparsable_body(exc: Exception) -> RequestValidationError | None:
    """The ``json_invalid`` validation error for a JSON body FastAPI could not parse.

    FastAPI turns a JSON syntax error into a :class:`RequestValidationError`
    (type ``json_invalid``), but whatever else ``json.loads`` raises on a request
    body, it re-raises as ``HTTPException(400, "There was an error parsing the
    body")`` chained to the original: bytes that are not UTF-8 (RFC 8259 JSON is
    UTF-8), nesting beyond the parser's recursion limit, an integer beyond
    Python's digit limit. Those bodies are as unreadable as a syntax error, so
    they get the same answer: one error shape for "the body is not JSON we can
    read" (docs/architecture.md).

    Args:
        exc: an exception raised while handling a request.

    Returns:
        A validation error with one ``json_invalid`` error at ``["body"]``, or
        None when ``exc`` is not such a body-parse failure.
    """
    if not isinstance(exc, StarletteHTTPException) or exc.status_code != 400:
        return None
    reason = _unreadable_json_reason(exc.__cause__)
    if reason is None:
        return None
    # An empty "input": the body is not echoed back, as for any other invalid value.
    error = {"type": "json_invalid", "loc": ("body",), "msg": "JSON decode error", "input": {}}
    return RequestValidationError([error | {"ctx": {"error": reason}}])


async def _http_exception_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    unparsable = unparsable_body(exc)
    if unparsable is not None:
        return await _validation_error_handler(request, unparsable)
    title = status_title(exc.status_code)
    detail: str | None
    if isinstance(exc.detail, str):
        # Starlette's own detail is just the phrase again; say it once.
        detail = exc.detail if exc.detail and exc.detail != title else None
    else:
        detail = json.dumps(exc.detail, default=str)
    problem = Problem(title=title, status=exc.status_code, detail=detail, instance=request.url.path)
    return problem_response(problem, exc.headers)


async def _validation_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = field_errors(exc)
    count = len(errors)
    problem = Problem(
        title=status_title(422),
        status=422,
        detail=f"{count} invalid value{'' if count == 1 else 's'} in the request",
        instance=request.url.path,
        errors=errors,
    )
    return problem_response(problem)


def error_problem(
    exc: Exception, *, instance: str | None, where: str, route: str | None = None
) -> Problem:
    """The problem for an error a service answers, whatever carries the answer.

    The one renderer of the HTTP handlers, the gateway's proxy router and the NATS
    workers: a :class:`ServiceError` is its own problem (a 500 logged with its
    traceback as a bug, a 502-504 as a warning with its cause), a pydantic
    ``ValidationError`` (a message that does not parse) is a 422 listing each
    field, and anything else is a 500 that shows no internals and quotes the
    request id, logged with its traceback.

    Args:
        exc: the error.
        instance: identifies the occurrence (the request path), if any.
        where: what was being served, for the log line (``"GET /v1/products"``,
            ``"NATS inference.v1.predict"``).
        route: the route template or NATS subject, which groups the error
            tracker's events of one operation (a 500 goes to the tracker if one
            is configured: :mod:`tessera_runtime.error_tracking`).
    """
    if isinstance(exc, ServiceError):
        problem = exc.to_problem(instance=instance)
        if exc.status_code == 500:
            # The service did not say what went wrong more precisely: treat it as a bug.
            logger.error("%s: %s", problem.title, problem.detail, exc_info=exc)
            capture_error(exc, where=where, route=route)
            record_error(exc)
        elif exc.status_code > 500:
            record_error(exc)
            # The cause (the library error it was translated from) says what broke.
            cause = exc.__cause__
            logger.warning(
                "%s: %s%s",
                problem.title,
                problem.detail,
                f" (cause: {cause!r})" if cause is not None else "",
                extra={"upstream": exc.upstream},
            )
        return problem
    if isinstance(exc, ValidationError):
        return Problem.from_validation_error(exc, instance=instance)
    logger.error("unhandled %s in %s", type(exc).__name__, where, exc_info=exc)
    capture_error(exc, where=where, route=route)
    record_error(exc)
    rid = request_id()
    return Problem(
        title=status_title(500),
        status=500,
        detail="An unexpected error occurred"
        + (f"; quote request id {rid} when reporting it." if rid else "."),
        instance=instance,
    )


async def _service_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ServiceError)
    problem = error_problem(
        exc, instance=request.url.path, where=_where(request), route=matched_template(request.scope)
    )
    return problem_response(problem, exc.headers)


async def _unhandled_error_handler(request: Request, exc: Exception) -> Response:
    # Starlette's ServerErrorMiddleware, outside the request context, calls this for
    # every exception that reaches it. Under create_service_app the
    # UnhandledErrorMiddleware has normally answered (and logged) it already, and
    # re-raised it only for the server's sake: nothing is sent or logged twice.
    if request.scope.get(_ANSWERED):
        return Response(status_code=500)
    # An exception raised outside it (in a middleware further out): still a 500
    # problem, though the request context and its id are gone by now.
    problem = error_problem(
        exc, instance=request.url.path, where=_where(request), route=matched_template(request.scope)
    )
    return problem_response(problem)


class UnhandledErrorMiddleware:
    """Answers an exception no handler took with the 500 problem, then re-raises it.

    Starlette renders such exceptions in ``ServerErrorMiddleware``, the outermost
    layer, whose response bypasses every middleware inside it: no
    ``X-Request-ID``, and the request context (the id in the log line and in
    the detail) already reset. ``create_service_app`` puts this class inside the
    request context middleware, so the 500 is rendered (by :func:`error_problem`,
    once) and sent while the context is bound. The exception goes on up, so the
    server still sees it (and tests with ``raise_app_exceptions`` do).
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracked(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracked)
        except Exception as exc:
            if not started:
                problem = error_problem(
                    exc,
                    instance=scope["path"],
                    where=f"{scope['method']} {scope['path']}",
                    route=matched_template(scope),
                )
                scope[_ANSWERED] = True
                await problem_response(problem)(scope, receive, send)
            raise


def _where(request: Request) -> str:
    return f"{request.method} {request.url.path}"


def install_problem_handlers(app: FastAPI) -> None:
    """Make every error of ``app`` an ``application/problem+json`` response.

    Covers Starlette/FastAPI HTTP errors (404, 405 with ``Allow``, ...), request
    validation (422 with ``errors``; a JSON body FastAPI cannot parse at all is
    the same 422, see :func:`unparsable_body`), :class:`ServiceError` subclasses
    and, as a 500 without internals, any other exception (logged with its traceback;
    :class:`UnhandledErrorMiddleware` answers those within the request context).
    """
    app.add_exception_handler(StarletteHTTPException, _http_exception_handler)
    app.add_exception_handler(RequestValidationError, _validation_error_handler)
    app.add_exception_handler(ServiceError, _service_error_handler)
    app.add_exception_handler(Exception, _unhandled_error_handler)
