"""JSON logs on stdout, one object per line, carrying the service name and request id.

Every request writes an access line, so the formatter is written for that path:
the line's dict is built once, in field order, straight from the record (no
generic field machinery), and orjson encodes it.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime
import enum
import json
import logging
import sys
import time
import traceback
from types import TracebackType
from typing import Any, TextIO

import orjson

from tessera_runtime.context import current_context

__all__ = ["ContextFilter", "ServiceJsonFormatter", "configure_logging"]

_HANDLER_NAME = "tessera-json"
# uvicorn installs its own plain-text handlers on these; routing them through the
# root handler keeps every line of a service JSON.
_UVICORN_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access")
_UVICORN_APP_EXCEPTION = "Exception in ASGI application"
_CONTEXT_FIELDS = ("service", "request_id", "trace_id")
# A LogRecord's own attributes (and the context fields, already written) are not
# "extra"; nor is uvicorn's "color_message", the same message with terminal colour codes.
_NOT_EXTRA = frozenset(
    {
        *vars(logging.LogRecord("", logging.INFO, "", 0, "", (), None)),
        "message",
        "asctime",
        "taskName",
        "color_message",
        *_CONTEXT_FIELDS,
    }
)


def _default(value: Any) -> Any:
    """What a value JSON has no type for is written as (python-json-logger's choices)."""
    if isinstance(value, datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, BaseException):
        return f"{type(value).__name__}: {value}"
    if isinstance(value, TracebackType):
        return "".join(traceback.format_tb(value)).strip()
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, enum.EnumMeta):
        members: list[enum.Enum] = list(value)
        return [member.value for member in members]
    if isinstance(value, bytes | bytearray):
        return base64.urlsafe_b64encode(value).decode("ascii")
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, type):
        return value.__name__
    try:
        return str(value)
    except Exception:
        try:
            return repr(value)
        except Exception:
            return "__could_not_encode__"


# For what orjson refuses (integers beyond 64 bits, non-ASCII lines below).
_ASCII_JSON = json.JSONEncoder(default=_default, ensure_ascii=True)


def _encode(data: dict[str, Any]) -> str:
    try:
        line = orjson.dumps(data, default=_default, option=orjson.OPT_NON_STR_KEYS)
    except TypeError:  # orjson.JSONEncodeError is a TypeError
        return _ASCII_JSON.encode(data)
    if line.isascii():
        return line.decode("ascii")
    # Lines stay ASCII (\u escapes), whatever encoding the log stream has.
    return _ASCII_JSON.encode(data)


class ContextFilter(logging.Filter):
    """Adds ``service``, ``request_id`` and ``trace_id`` to every record a handler emits."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def filter(self, record: logging.LogRecord) -> bool:
        record.service = self.service
        # An explicit ``extra={"request_id": ...}`` wins over the bound context.
        if not hasattr(record, "request_id"):
            ctx = current_context()
            record.request_id = None if ctx is None else ctx.request_id
            record.trace_id = None if ctx is None else ctx.trace_id
        elif not hasattr(record, "trace_id"):
            record.trace_id = None
        return True


class ServiceJsonFormatter(logging.Formatter):
    """One JSON object per record, fields in a fixed order.

    ``time`` (ISO 8601 UTC, milliseconds), ``level``, ``logger``, ``message``,
    ``service``, ``request_id``, ``trace_id``, then the record's extra fields,
    then ``exc_info`` and ``stack_info`` when present. A ``dict`` logged as the
    message is merged into the object (its keys win) and ``message`` is empty.
    """

    def __init__(self) -> None:
        super().__init__()
        # The formatted second, reused by every line within it: gmtime and
        # strftime are most of the cost of a timestamp.
        self._second: tuple[int, str] = (-1, "")

    def _time(self, record: logging.LogRecord) -> str:
        second = int(record.created)
        cached, text = self._second
        if cached != second:
            text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            self._second = (second, text)
        return f"{text}.{int(record.msecs):03d}Z"

    def format(self, record: logging.LogRecord) -> str:
        msg = record.msg
        logged: dict[str, Any] | None = msg if isinstance(msg, dict) else None
        record.message = "" if logged is not None else record.getMessage()
        fields = record.__dict__
        data: dict[str, Any] = {
            "time": self._time(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.message,
            "service": fields.get("service"),
            "request_id": fields.get("request_id"),
            "trace_id": fields.get("trace_id"),
        }
        for key, value in fields.items():
            if key not in _NOT_EXTRA and not key.startswith("_"):
                data[key] = value
        if logged is not None or record.exc_info or record.exc_text or record.stack_info:
            data.update(self._tail(record, logged or {}))
        return _encode(data)

    def _tail(self, record: logging.LogRecord, logged: dict[str, Any]) -> dict[str, Any]:
        # What goes last: a dict message's own keys, the traceback, the stack.
        tail = dict(logged)
        if record.exc_info and not tail.get("exc_info"):
            tail["exc_info"] = self.formatException(record.exc_info)
        if not tail.get("exc_info") and record.exc_text:
            tail["exc_info"] = record.exc_text
        if record.stack_info and not tail.get("stack_info"):
            tail["stack_info"] = self.formatStack(record.stack_info)
        return tail


class _DropDuplicateAppException(logging.Filter):
    # The unhandled-exception handler already logged the traceback with the request
    # id; uvicorn logs the same exception again (re-raised by ServerErrorMiddleware).
    def filter(self, record: logging.LogRecord) -> bool:
        return not (isinstance(record.msg, str) and record.msg.startswith(_UVICORN_APP_EXCEPTION))


def configure_logging(service: str, level: str = "INFO", *, stream: TextIO | None = None) -> None:
    """Send all logs to ``stream`` (default stdout) as JSON lines; safe to call again.

    Each line has ``time``, ``level``, ``logger``, ``message``, ``service``,
    ``request_id`` and ``trace_id`` (null outside a request), plus any ``extra``
    fields and ``exc_info`` for exceptions.

    Args:
        service: value of the ``service`` field.
        level: root log level name, e.g. ``"INFO"`` or ``"debug"``.
        stream: where to write; stdout when None.

    Raises:
        ValueError: ``level`` is not a logging level name.
    """
    numeric = logging.getLevelNamesMapping().get(level.upper())
    if numeric is None:
        raise ValueError(f"unknown log level {level!r}")

    handler = logging.StreamHandler(stream if stream is not None else sys.stdout)
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(ServiceJsonFormatter())
    handler.addFilter(ContextFilter(service))

    root = logging.getLogger()
    # Replace (not add) our handler so a second call changes service/level/stream
    # instead of printing every line twice.
    for existing in [h for h in root.handlers if h.get_name() == _HANDLER_NAME]:
        root.removeHandler(existing)
        existing.close()
    root.addHandler(handler)
    root.setLevel(numeric)

    for name in _UVICORN_LOGGERS:
        logger = logging.getLogger(name)
        # Only loggers uvicorn gave a handler: `--no-access-log` leaves uvicorn.access
        # without one and not propagating, and it must stay off.
        if logger.handlers:
            logger.handlers.clear()
            logger.propagate = True
    error_logger = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, _DropDuplicateAppException) for f in error_logger.filters):
        error_logger.addFilter(_DropDuplicateAppException())
