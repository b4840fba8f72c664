"""JSON logs on stdout, one object per line, carrying the service name and request id."""

from __future__ import annotations

import logging
import sys
import time
from typing import Any, TextIO

from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter

from tessera_runtime.context import current_context

__all__ = ["ContextFilter", "ServiceJsonFormatter", "configure_logging"]

_HANDLER_NAME = "tessera-json"
# uvicorn installs its own plain-text handlers on these; routing them through the
# root handler keeps every line of a service JSON.
_UVICORN_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access")
_UVICORN_APP_EXCEPTION = "Exception in ASGI application"
_CONTEXT_FIELDS = ("service", "request_id", "trace_id")
# LogRecord's own attributes (and those above, already written) are not "extra";
# nor is uvicorn's "color_message", the same message with terminal colour codes.
_NOT_EXTRA = frozenset(RESERVED_ATTRS) | {"taskName", "color_message", *_CONTEXT_FIELDS}


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


class ServiceJsonFormatter(JsonFormatter):
    """python-json-logger formatter with a fixed field order, ``time`` (ISO 8601 UTC) first."""

    def add_fields(
        self,
        log_data: dict[str, Any],
        record: logging.LogRecord,
        message_dict: dict[str, Any],
    ) -> None:
        # Replaces the generic field machinery (format-string fields, renames): it
        # is most of the cost of a line, and every request writes an access line.
        # strftime on a struct_time is several times cheaper than building a datetime.
        log_data["time"] = (
            time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z"
        )
        log_data["level"] = record.levelname
        log_data["logger"] = record.name
        log_data["message"] = record.message
        record_fields = record.__dict__
        for key in _CONTEXT_FIELDS:
            log_data[key] = record_fields.get(key)
        for key, value in record_fields.items():
            if key not in _NOT_EXTRA and not key.startswith("_"):
                log_data[key] = value
        log_data.update(message_dict)


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
