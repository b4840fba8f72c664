"""JSON logs on stdout, one object per line, carrying the service name and request id.

Every request writes an access line, so that path is made cheap in three ways:

* the formatter builds the line's dict once, in field order, straight from the
  record (no generic field machinery), and orjson encodes it;
* :class:`AccessLog` writes an access line without a ``LogRecord`` when Tessera's
  handler is the only one it would reach (the configuration
  :func:`configure_logging` makes): the same line, in the same stream, without
  the logging module's per-record work; any other configuration (another
  handler, a filter, pytest's capture) gets an ordinary record;
* the handler can buffer: with a flush interval, lines are written to the
  stream in batches, at least that often, rather than one ``write`` per line
  (nginx's ``access_log ... buffer= flush=``). A line at WARNING or above is
  written at once, with everything before it, so problems are never held back
  and the order of lines is kept.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime
import enum
import json
import logging
import sys
import threading
import time
import traceback
import weakref
from collections.abc import Mapping
from types import TracebackType
from typing import Any, TextIO

import orjson

from tessera_runtime.context import current_context

__all__ = [
    "AccessLog",
    "ContextFilter",
    "JsonLogHandler",
    "ServiceJsonFormatter",
    "configure_logging",
]

_HANDLER_NAME = "tessera-json"
# uvicorn installs its own plain-text handlers on these; routing them through the
# root handler keeps every line of a service JSON.
_UVICORN_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access")
_UVICORN_APP_EXCEPTION = "Exception in ASGI application"
_CONTEXT_FIELDS = ("service", "request_id", "trace_id", "span_id")
# ".000Z" to ".999Z": the end of every timestamp, formatted once.
_MILLIS = tuple(f".{millis:03d}Z" for millis in range(1000))
# Buffered lines are written once they reach this many characters, whatever the interval.
_FLUSH_CHARS = 64 * 1024
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
    """Adds ``service``, ``request_id``, ``trace_id`` and ``span_id`` to every record a handler emits."""

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
            record.span_id = None if ctx is None else ctx.span_id
        else:
            if not hasattr(record, "trace_id"):
                record.trace_id = None
            if not hasattr(record, "span_id"):
                record.span_id = None
        return True


class ServiceJsonFormatter(logging.Formatter):
    """One JSON object per record, fields in a fixed order.

    ``time`` (ISO 8601 UTC, milliseconds), ``level``, ``logger``, ``message``,
    ``service``, ``request_id``, ``trace_id``, ``span_id``, then the record's extra fields,
    then ``exc_info`` and ``stack_info`` when present. A ``dict`` logged as the
    message is merged into the object (its keys win) and ``message`` is empty.
    """

    def __init__(self) -> None:
        super().__init__()
        # The formatted second, reused by every line within it: gmtime and
        # strftime are most of the cost of a timestamp.
        self._second: tuple[int, str] = (-1, "")

    def timestamp(self, created: float) -> str:
        """``created`` (seconds since the epoch) as ISO 8601 UTC with milliseconds."""
        second, millis = divmod(int(created * 1000), 1000)
        cached, text = self._second
        if cached != second:
            text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            self._second = (second, text)
        return text + _MILLIS[millis]

    def format(self, record: logging.LogRecord) -> str:
        msg = record.msg
        logged: dict[str, Any] | None = msg if isinstance(msg, dict) else None
        record.message = "" if logged is not None else record.getMessage()
        fields = record.__dict__
        data: dict[str, Any] = {
            "time": self.timestamp(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.message,
            "service": fields.get("service"),
            "request_id": fields.get("request_id"),
            "trace_id": fields.get("trace_id"),
            "span_id": fields.get("span_id"),
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


class JsonLogHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes :class:`ServiceJsonFormatter` lines with the :class:`ContextFilter` fields.

    With ``flush_interval_s`` above 0 the lines wait in memory and go to the
    stream in one write at least that often (a daemon thread flushes), when a
    line at WARNING or above arrives, when they exceed ``_FLUSH_CHARS``, and on
    ``flush``/``close`` (``logging.shutdown`` at exit). At 0 every line is
    written and flushed at once.
    """

    def __init__(self, service: str, stream: TextIO, *, flush_interval_s: float = 0.0) -> None:
        super().__init__(stream)
        self.set_name(_HANDLER_NAME)
        self.json_formatter = ServiceJsonFormatter()
        self.setFormatter(self.json_formatter)
        self.context = ContextFilter(service)
        self.addFilter(self.context)
        self.flush_interval_s = flush_interval_s
        self._pending: list[str] = []
        self._pending_chars = 0
        self._stop_flushing = threading.Event()
        self.flusher: threading.Thread | None = None
        if flush_interval_s > 0:
            # A weak reference: a handler dropped without `close` still goes away,
            # and its thread with it.
            self.flusher = threading.Thread(
                target=_flush_periodically,
                args=(weakref.ref(self), flush_interval_s, self._stop_flushing),
                name="log-flush",
                daemon=True,
            )
            self.flusher.start()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.write_line(self.format(record), record.levelno)
        except RecursionError:
            raise
        except Exception:
            self.handleError(record)

    def write_line(self, line: str, level: int) -> None:
        """Write one formatted line (the caller holds no lock)."""
        with self.lock:  # type: ignore[union-attr]  # created by Handler.__init__
            if self.flush_interval_s <= 0:
                self.stream.write(line + self.terminator)
                self.stream.flush()
                return
            self._pending.append(line)
            self._pending_chars += len(line) + 1
            if level >= logging.WARNING or self._pending_chars >= _FLUSH_CHARS:
                self._write_pending()

    def write_fields(
        self, level: int, logger: str, message: str, fields: Mapping[str, Any]
    ) -> None:
        """Write the line a record of `logger` with these extra `fields` would make,
        without making the record (:class:`AccessLog`)."""
        ctx = current_context()
        data: dict[str, Any] = {
            "time": self.json_formatter.timestamp(time.time()),
            "level": logging.getLevelName(level),
            "logger": logger,
            "message": message,
            "service": self.context.service,
            "request_id": None if ctx is None else ctx.request_id,
            "trace_id": None if ctx is None else ctx.trace_id,
            "span_id": None if ctx is None else ctx.span_id,
        }
        data.update(fields)
        self.write_line(_encode(data), level)

    def _write_pending(self) -> None:
        if self._pending:
            lines, self._pending, self._pending_chars = self._pending, [], 0
            self.stream.write("\n".join(lines) + "\n")
        self.stream.flush()

    def flush(self) -> None:
        with self.lock:  # type: ignore[union-attr]
            if self.stream is not None and hasattr(self.stream, "flush"):
                self._write_pending()

    def close(self) -> None:
        self._stop_flushing.set()
        try:
            self.flush()
        except (OSError, ValueError):
            pass  # the stream was closed first: nowhere left to write
        finally:
            super().close()

    def alone_for(self, logger: logging.Logger, level: int) -> bool:
        """Whether a record of `logger` at `level` would reach this handler and no
        other handler or filter: then `write_fields` writes exactly its line."""
        if self.formatter is not self.json_formatter or self.filters != [self.context]:
            return False
        if level < self.level:
            return False
        found = False
        current: logging.Logger | None = logger
        while current is not None:
            if current.filters:
                return False
            for handler in current.handlers:
                if handler is not self:
                    return False
                found = True
            if not current.propagate:
                break
            current = current.parent
        return found


def _flush_periodically(
    handler_ref: weakref.ref[JsonLogHandler], interval_s: float, stop: threading.Event
) -> None:
    while not stop.wait(interval_s):
        handler = handler_ref()
        if handler is None:
            return
        try:
            handler.flush()
        except (OSError, ValueError):
            # A stream closed under the handler (as `logging.shutdown` allows for):
            # there is nowhere left to write.
            return
        del handler


class AccessLog:
    """Access lines (one per request or message handled) on one logger, written cheaply.

    `write` logs `message` with `fields` as the record's extra fields: straight
    through Tessera's JSON handler when it alone would handle the record, as an
    ordinary record otherwise. Either way the line is the same, and the logger's
    level (``tessera.access`` at WARNING silences it) decides whether there is one.
    """

    def __init__(self, name: str) -> None:
        self.logger = logging.getLogger(name)

    def enabled(self, level: int) -> bool:
        return self.logger.isEnabledFor(level)

    def write(self, level: int, message: str, fields: Mapping[str, Any]) -> None:
        """Write one line; call `enabled` first so nothing is built for a silent log."""
        handler = _json_handler()
        if handler is not None and handler.alone_for(self.logger, level):
            handler.write_fields(level, self.logger.name, message, fields)
        else:
            self.logger.log(level, "%s", message, extra=fields)


def _json_handler() -> JsonLogHandler | None:
    for handler in logging.getLogger().handlers:
        if isinstance(handler, JsonLogHandler):
            return handler
    return None


class _DropDuplicateAppException(logging.Filter):
    # The unhandled-exception handler already logged the traceback with the request
    # id; uvicorn logs the same exception again (re-raised by ServerErrorMiddleware).
    def filter(self, record: logging.LogRecord) -> bool:
        return not (isinstance(record.msg, str) and record.msg.startswith(_UVICORN_APP_EXCEPTION))


def configure_logging(
    service: str,
    level: str = "INFO",
    *,
    stream: TextIO | None = None,
    flush_interval_s: float = 0.0,
) -> None:
    """Send all logs to ``stream`` (default stdout) as JSON lines; safe to call again.

    Each line has ``time``, ``level``, ``logger``, ``message``, ``service``,
    ``request_id``, ``trace_id`` and ``span_id`` (null outside a request; ``span_id`` is
    this hop's own, the parent of the calls it makes), plus any ``extra``
    fields and ``exc_info`` for exceptions.

    Args:
        service: value of the ``service`` field.
        level: root log level name, e.g. ``"INFO"`` or ``"debug"``.
        stream: where to write; stdout when None.
        flush_interval_s: buffer lines below WARNING for at most this long
            (:class:`JsonLogHandler`); 0 writes each line at once.

    Raises:
        ValueError: ``level`` is not a logging level name.
    """
    numeric = logging.getLevelNamesMapping().get(level.upper())
    if numeric is None:
        raise ValueError(f"unknown log level {level!r}")

    handler = JsonLogHandler(
        service, stream if stream is not None else sys.stdout, flush_interval_s=flush_interval_s
    )

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
