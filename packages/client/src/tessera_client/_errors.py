"""The exceptions of the client: one for every error answer, one for no answer at all."""

from __future__ import annotations

from http import HTTPStatus

import httpx
from pydantic import ValidationError
from tessera_contracts import PROBLEM_MEDIA_TYPE, FieldError, Operation, Problem

_DETAIL_MAX = 2000


class TesseraError(Exception):
    """An error answer (4xx/5xx) of the API, with its problem details.

    Every error answer raises this type: a problem+json body as it was sent; an
    Open Inference Protocol `{"error": ...}` body, or any other body, as a
    `Problem` with the status's title and the message (or text) as `detail`.
    """

    def __init__(self, problem: Problem, headers: httpx.Headers, operation: Operation) -> None:
        super().__init__(f"{operation.key}: {problem.status} {problem.title}: {problem.detail}")
        self.problem = problem
        """The parsed problem details."""
        self.headers = headers
        """Headers of the error answer (`Retry-After`, `ETag`, `X-Request-ID`)."""
        self.operation = operation

    @property
    def status(self) -> int:
        return self.problem.status

    @property
    def type(self) -> str:
        return self.problem.type

    @property
    def title(self) -> str:
        return self.problem.title

    @property
    def detail(self) -> str | None:
        return self.problem.detail

    @property
    def errors(self) -> list[FieldError]:
        """Validation failures (422, or 400 of a query), one per offending value."""
        return self.problem.errors or []

    @property
    def request_id(self) -> str | None:
        """The `X-Request-ID` of the answer: quote it when reporting a problem."""
        return header(self.headers, "x-request-id")


class NotModified(Exception):
    """304 to a conditional GET (`if_none_match=`): the copy you have is current.

    Not a `TesseraError`: nothing went wrong, but there is no body to return.
    """

    def __init__(self, etag: str | None, operation: Operation) -> None:
        super().__init__(f"{operation.key}: 304 Not Modified (ETag {etag})")
        self.etag = etag
        self.operation = operation


class TesseraConnectionError(Exception):
    """No answer: the connection failed or timed out (after the retries allowed).

    The httpx error is the `__cause__`.
    """

    def __init__(self, operation: Operation, attempts: int, error: httpx.TransportError) -> None:
        super().__init__(
            f"{operation.key}: no answer after {attempts} attempt(s): {type(error).__name__} {error}"
        )
        self.operation = operation
        self.attempts = attempts


def header(headers: httpx.Headers, name: str) -> str | None:
    """A header's value, typed (`httpx.Headers.get` returns Any)."""
    value = headers.get(name)
    return None if value is None else str(value)


def problem_of(response: httpx.Response, operation: Operation) -> Problem:
    """The problem an error answer describes, whatever its body."""
    status = response.status_code
    title = _title(status)
    media_type = response.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    content = response.content
    if media_type == PROBLEM_MEDIA_TYPE or (
        media_type == "application/json" and operation.error_model is Problem
    ):
        try:
            return Problem.model_validate_json(content)
        except ValidationError:
            pass
    elif media_type == "application/json" and operation.error_model is not Problem:
        try:
            body = operation.error_model.model_validate_json(content)
        except ValidationError:
            pass
        else:
            # The Open Inference Protocol's `{"error": "..."}`: its message is the detail.
            message = getattr(body, "error", None)
            detail = message if isinstance(message, str) else body.model_dump_json()
            return Problem(title=title, status=status, detail=detail)
    text = response.text.strip()
    return Problem(title=title, status=status, detail=text[:_DETAIL_MAX] or None)


def _title(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return f"HTTP {status}"
