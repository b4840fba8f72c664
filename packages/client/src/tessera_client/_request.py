"""One request from an operation and its arguments, and the answer it gets back.

Pure functions, shared by the async and the sync client: they read everything
from the `Operation` (path template, parameter models, body and response
models), so any operation works, one declared ad hoc included.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, TypedDict, Unpack
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ValidationError
from tessera_contracts import Operation

from tessera_client._errors import NotModified, TesseraError, header, problem_of
from tessera_client._trace import correlation_headers

Params = Mapping[str, object] | BaseModel | None
"""Parameters by field name (or header alias), or an instance of the operation's model."""
Body = BaseModel | Mapping[str, Any] | None
"""A body model (serialized with only the fields it was given), or JSON sent as is."""


class Arguments(TypedDict, total=False):
    """What a request takes besides its operation (see `TesseraClient.send`)."""

    path: Params
    query: Params
    headers: Params
    body: Body
    extra_headers: Mapping[str, str] | None


_HEADER_VALUE: Final = re.compile(r"[\x20-\x7e]*")
"""Printable ASCII: what every header of the API holds, and no CR or LF."""


@dataclass(frozen=True, slots=True)
class Prepared:
    """A request ready to send (and to send again on a retry)."""

    operation: Operation
    method: str
    url: str
    params: httpx.QueryParams
    headers: httpx.Headers
    content: bytes | None = None
    sent_headers: frozenset[str] = field(default_factory=frozenset)
    """Lower-cased names of `headers`."""

    def httpx_arguments(self) -> dict[str, Any]:
        """The arguments of `httpx.Client.request` (and of the async one) that send it."""
        return {
            "method": self.method,
            "url": self.url,
            "params": self.params,
            "headers": self.headers,
            "content": self.content,
        }


@dataclass(frozen=True, slots=True)
class Reply:
    """A success answer: its status, headers and parsed body."""

    status: int
    headers: httpx.Headers
    value: Any
    """The body as the operation's response model, or None (204, no response model)."""

    @property
    def etag(self) -> str | None:
        """`ETag`: send it back as `if_match=` (or `if_none_match=`)."""
        return header(self.headers, "etag")

    @property
    def request_id(self) -> str | None:
        return header(self.headers, "x-request-id")


def prepare(operation: Operation, **arguments: Unpack[Arguments]) -> Prepared:
    """Build the request of `operation`: validate every parameter with its model.

    Raises:
        TypeError: a parameter the operation does not declare, or a missing path parameter.
        pydantic.ValidationError: a parameter its model refuses.
        ValueError: a header value that is not printable ASCII (CR and LF included).
    """
    url = operation.url_path(
        **{
            name: _path_segment(value)
            for name, value in _values(operation.path_params, arguments.get("path"), "path").items()
        }
    )
    params: list[tuple[str, str | int | float | bool | None]] = []
    for name, value in _values(operation.query, arguments.get("query"), "query").items():
        items = value if isinstance(value, list) else [value]
        params.extend((name, _text(item)) for item in items)
    header_values = _values(operation.headers, arguments.get("headers"), "headers")
    # Case-insensitive, so `extra_headers` replaces a header rather than doubling it.
    request_headers = httpx.Headers({"Accept": f"{operation.media_type}, application/problem+json"})
    request_headers.update(_checked(correlation_headers()))
    request_headers.update(_checked({name: _text(value) for name, value in header_values.items()}))
    content: bytes | None = None
    body = arguments.get("body")
    if body is not None:
        content = _json_body(body)
        request_headers["Content-Type"] = "application/json"
    extra_headers = arguments.get("extra_headers")
    if extra_headers:
        request_headers.update(_checked(extra_headers))
    return Prepared(
        operation=operation,
        method=operation.method,
        url=url,
        params=httpx.QueryParams(params),
        headers=request_headers,
        content=content,
        sent_headers=frozenset(request_headers.keys()),
    )


def _checked(headers: Mapping[str, str]) -> Mapping[str, str]:
    """`headers`, once every value is known to be printable ASCII.

    Checked here, before httpx, so a CR or LF (a header injection, were it sent)
    or a character HTTP cannot carry fails as the caller's error, naming the header.
    """
    for name, value in headers.items():
        if not _HEADER_VALUE.fullmatch(value):
            raise ValueError(f"header {name!r} must be printable ASCII, got {value!r}")
    return headers


def _path_segment(value: object) -> str:
    """A path value as one segment: percent-encoded, and never a dot segment.

    URL normalisation removes a `.` or `..` segment (httpx does, before sending),
    which would send the request to another operation: `%2E` is the same
    character without that meaning.
    """
    segment = quote(str(value), safe="")
    return segment.replace(".", "%2E") if segment in (".", "..") else segment


def _values(model: type[BaseModel] | None, given: Params, part: str) -> dict[str, Any]:
    """The parameters to send, keyed as on the wire (field name; a header's alias).

    Only values the caller gave and that are not None are sent, so the server
    applies its own defaults.
    """
    if given is None:
        return {}
    if model is None:
        raise TypeError(f"the operation takes no {part} parameters")
    if isinstance(given, BaseModel):
        instance = (
            given
            if isinstance(given, model)
            else model.model_validate(given.model_dump(by_alias=True, exclude_unset=True))
        )
    else:
        # Contract models ignore unknown fields: refuse them here, or a misspelt
        # parameter would silently not be sent.
        by_wire = {info.alias or name: name for name, info in model.model_fields.items()}
        wire_names = {name: info.alias or name for name, info in model.model_fields.items()}
        unknown = [key for key in given if key not in wire_names and key not in by_wire]
        if unknown:
            raise TypeError(f"unknown {part} parameters {sorted(unknown)}")
        present = {
            wire_names.get(key, key): value for key, value in given.items() if value is not None
        }
        instance = model.model_validate(present)
    dumped = instance.model_dump(mode="json", by_alias=True, exclude_unset=True)
    return {key: value for key, value in dumped.items() if value is not None}


def _text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _json_body(body: BaseModel | Mapping[str, Any]) -> bytes:
    if isinstance(body, BaseModel):
        # Only the fields the caller set: a PATCH body must not turn "absent" into
        # "null", and the server applies the defaults of the rest.
        return body.model_dump_json(by_alias=True, exclude_unset=True).encode()
    return httpx.Request("POST", "/", json=dict(body)).content


def declared_answer(prepared: Prepared, response: httpx.Response) -> BaseModel | None:
    """The body of an answer the operation declares besides success (e.g. 503 of
    `server_ready` with `{"ready": false}`), or None when it is not one.

    Only a body that parses as the answer's model counts: a gateway's own
    problem with the same status stays an error.
    """
    for answer in prepared.operation.answers:
        if answer.status == response.status_code and answer.model is not None:
            try:
                return answer.model.model_validate_json(response.content)
            except ValidationError:
                return None
    return None


def interpret(prepared: Prepared, response: httpx.Response) -> Reply:
    """The reply of a read response, or the exception it means.

    Raises:
        TesseraError: an error answer.
        NotModified: 304 to a conditional GET.
    """
    operation = prepared.operation
    status = response.status_code
    if status == 304:
        raise NotModified(header(response.headers, "etag"), operation)
    if not 200 <= status < 300:
        answer = declared_answer(prepared, response)
        if answer is not None:
            return Reply(status, response.headers, answer)
        raise TesseraError(problem_of(response, operation), response.headers, operation)
    if status == 204 or operation.response is None or not response.content:
        return Reply(status, response.headers, None)
    return Reply(status, response.headers, operation.response.model_validate_json(response.content))
