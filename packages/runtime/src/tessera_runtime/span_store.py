"""Finished spans kept on local disk, one JSON line each: traces with no collector.

`tessera up` gives every service ``TESSERA_TRACE_DIR=<data-dir>/traces`` when no
OTLP endpoint is configured; :class:`SpanFileExporter` writes there and
:func:`read_spans` reads everything back for ``tessera trace``.

Line format, version 1 (one JSON object per line, UTF-8, ``\\n``-terminated)::

    {"v": 1,
     "trace_id": "<32 hex>", "span_id": "<16 hex>", "parent_span_id": "<16 hex>" | null,
     "name": str, "kind": "server" | "client" | "internal" | "producer" | "consumer",
     "service": str,                 # the resource's service.name, else the exporter's
     "start_ns": int, "end_ns": int, # nanoseconds since the epoch
     "status": "unset" | "ok" | "error", "status_message": str | null,
     "attributes": {str: JSON value},
     "links": [{"trace_id": str, "span_id": str, "attributes": {...}}],
     "events": [{"name": str, "time_ns": int, "attributes": {...}}]}

Recorded exceptions are events named ``"exception"`` (the SDK's
``exception.type``/``exception.message``/``exception.stacktrace`` attributes).
A reader skips lines whose ``"v"`` it does not know, so a later version can be
written beside this one.

Files: each process writes only files of its own, ``<service>.<pid>.<created
ns>.jsonl``, created with ``O_EXCL``. Why one file set per process rather than
one shared file: the replicas of a service share the directory, and rotating a
shared file (rename or truncate) goes wrong under the other writers, whose open
descriptors keep appending to the renamed file or write past the truncation; a
lock between processes would fix that at the price of a lock on every export.
With one writer per file no lock is needed. Each batch is still appended with
whole lines only, so a reader sees whole lines plus at most a torn last line
(a write in progress, or a process killed mid-write), which it skips.

Bounds: a file is left once the next line would take it past ``max_bytes``
and a new one is started (a line longer than that gets a file to itself). On every new file the exporter deletes the service's
oldest files (by modification time, whichever process wrote them) until the
others total at most ``(max_files - 1) * max_bytes``: one process keeps at most
``max_files * max_bytes`` on disk, and N live replicas together at most
``(max_files - 1 + N) * max_bytes`` between rotations. Files of processes that
are gone are the oldest, so they go first. A live writer whose current file was
deleted by another notices it (link count 0) before its next write and starts a
new file, so nobody keeps filling space that no reader sees (a batch written in
between goes with the deleted file). The budget is the service's, not each
process's: the newest spans stay, whoever wrote them. A forked child notices its
new pid and starts a file of its own too.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import orjson
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.trace import SpanKind, StatusCode
from opentelemetry.util.types import Attributes

__all__ = [
    "FORMAT_VERSION",
    "SpanFileExporter",
    "StoredEvent",
    "StoredLink",
    "StoredSpan",
    "parse_line",
    "read_spans",
    "span_line",
]

FORMAT_VERSION = 1
SUFFIX = ".jsonl"

_log = logging.getLogger(__name__)
T = TypeVar("T")

_KINDS = {
    SpanKind.SERVER: "server",
    SpanKind.CLIENT: "client",
    SpanKind.INTERNAL: "internal",
    SpanKind.PRODUCER: "producer",
    SpanKind.CONSUMER: "consumer",
}
_STATUSES = {StatusCode.UNSET: "unset", StatusCode.OK: "ok", StatusCode.ERROR: "error"}
_UNSAFE_IN_NAME = re.compile(r"[^A-Za-z0-9_-]")
_TRACE_ID = re.compile(r"[0-9a-f]{32}")
_SPAN_ID = re.compile(r"[0-9a-f]{16}")
# orjson refuses integers beyond 64 bits; the SDK lets any int through.
_INT_RANGE = range(-(2**63), 2**64)


@dataclass(frozen=True, slots=True)
class StoredLink:
    trace_id: str
    span_id: str
    attributes: dict[str, object]


@dataclass(frozen=True, slots=True)
class StoredEvent:
    name: str
    time_ns: int
    attributes: dict[str, object]


@dataclass(frozen=True, slots=True)
class StoredSpan:
    """One span as read back from a line of format version 1."""

    trace_id: str
    span_id: str
    parent_span_id: str | None
    name: str
    kind: str
    service: str
    start_ns: int
    end_ns: int
    status: str
    status_message: str | None
    attributes: dict[str, object]
    links: tuple[StoredLink, ...]
    events: tuple[StoredEvent, ...]

    @property
    def duration_ns(self) -> int:
        return self.end_ns - self.start_ns


def _jsonable(value: object) -> object:
    if value is None or isinstance(value, str | bool | float):
        return value
    if isinstance(value, int):
        return value if value in _INT_RANGE else str(value)
    if isinstance(value, list | tuple):
        return [_jsonable(item) for item in value]
    return str(value)


def _attributes(attributes: Attributes) -> dict[str, object]:
    return {key: _jsonable(value) for key, value in (attributes or {}).items()}


def _service_name(span: ReadableSpan, fallback: str) -> str:
    name = span.resource.attributes.get("service.name")
    # The SDK's default, when nobody named the service, is "unknown_service:<exe>".
    if isinstance(name, str) and name and not name.startswith("unknown_service"):
        return name
    return fallback


def span_line(span: ReadableSpan, service: str) -> bytes:
    """The line of format version 1 for a finished `span` (with its newline).

    Args:
        span: a span that has ended.
        service: the service name to record when the span's resource has none.

    Returns:
        One JSON object and ``\\n``.
    """
    context = span.get_span_context()
    assert context is not None, "an SDK span always has a context"
    parent = span.parent
    record = {
        "v": FORMAT_VERSION,
        "trace_id": format(context.trace_id, "032x"),
        "span_id": format(context.span_id, "016x"),
        "parent_span_id": None if parent is None else format(parent.span_id, "016x"),
        "name": span.name,
        "kind": _KINDS.get(span.kind, "internal"),
        "service": _service_name(span, service),
        "start_ns": span.start_time or 0,
        "end_ns": span.end_time or span.start_time or 0,
        "status": _STATUSES[span.status.status_code],
        "status_message": span.status.description,
        "attributes": _attributes(span.attributes),
        "links": [
            {
                "trace_id": format(link.context.trace_id, "032x"),
                "span_id": format(link.context.span_id, "016x"),
                "attributes": _attributes(link.attributes),
            }
            for link in span.links
        ],
        "events": [
            {
                "name": event.name,
                "time_ns": event.timestamp,
                "attributes": _attributes(event.attributes),
            }
            for event in span.events
        ],
    }
    try:
        return orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE)
    except orjson.JSONEncodeError:
        # A str that is not valid Unicode (a lone surrogate, say, from a decoded
        # path): keep the span, with such characters replaced.
        return orjson.dumps(_valid_unicode(record), option=orjson.OPT_APPEND_NEWLINE)


def _valid_unicode(value: object) -> object:
    if isinstance(value, str):
        return value.encode("utf-8", "replace").decode("utf-8")
    if isinstance(value, dict):
        return {_valid_unicode(key): _valid_unicode(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_valid_unicode(item) for item in value]
    return value


class SpanFileExporter(SpanExporter):
    """Appends finished spans as JSON lines to files of this process under `directory`.

    Meant for a BatchSpanProcessor: `export` runs on its worker thread, while
    `shutdown` and `force_flush` may come from another thread, hence the lock.
    Nothing is created before the first span is exported.
    """

    def __init__(
        self,
        directory: Path,
        service: str,
        *,
        max_bytes: int = 8 * 1024 * 1024,
        max_files: int = 4,
    ) -> None:
        if max_bytes < 1 or max_files < 1:
            raise ValueError("max_bytes and max_files must be at least 1")
        self._directory = directory
        self._service = service
        self._prefix = _UNSAFE_IN_NAME.sub("_", service) or "service"
        self._max_bytes = max_bytes
        self._max_files = max_files
        self._lock = threading.Lock()
        self._fd: int | None = None
        self._path: Path | None = None
        self._pid = 0
        self._size = 0
        self._shut_down = False

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        lines = [span_line(span, self._service) for span in spans]
        with self._lock:
            if self._shut_down:
                return SpanExportResult.FAILURE
            try:
                self._write(lines)
            except OSError as e:
                _log.warning("cannot keep %d spans under %s: %s", len(lines), self._directory, e)
                return SpanExportResult.FAILURE
        return SpanExportResult.SUCCESS

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        # Lines go straight to the file with os.write: nothing waits in a buffer of ours.
        return True

    def shutdown(self) -> None:
        with self._lock:
            self._shut_down = True
            self._close()

    def _write(self, lines: list[bytes]) -> None:
        if not self._file_is_ours():
            self._start_file()
        pending: list[bytes] = []
        pending_size = 0
        for line in lines:
            filled = self._size + pending_size
            if filled and filled + len(line) > self._max_bytes:
                self._append(b"".join(pending))
                pending, pending_size = [], 0
                self._start_file()
            pending.append(line)
            pending_size += len(line)
        if pending:
            self._append(b"".join(pending))

    def _file_is_ours(self) -> bool:
        """Whether the current file exists, is still linked and was opened by this process."""
        if self._fd is None or self._pid != os.getpid():
            return False
        return os.fstat(self._fd).st_nlink > 0

    def _append(self, data: bytes) -> None:
        assert self._fd is not None
        view = memoryview(data)
        try:
            while view:
                written = os.write(self._fd, view)
                view = view[written:]
                self._size += written
        except OSError:
            # Part of a line may be on disk (disk full): the next batch starts a
            # new file instead of appending whole lines to a torn one.
            self._close()
            raise

    def _start_file(self) -> None:
        self._close()
        self._directory.mkdir(parents=True, exist_ok=True)
        pid = os.getpid()
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND | os.O_CLOEXEC
        while True:
            path = self._directory / f"{self._prefix}.{pid}.{time.time_ns()}{SUFFIX}"
            try:
                self._fd = os.open(path, flags, 0o644)
            except FileExistsError:  # same nanosecond, or a reused pid's leftover
                continue
            break
        self._path, self._pid, self._size = path, pid, 0
        self._delete_oldest()

    def _delete_oldest(self) -> None:
        """Keep the service's other files within (max_files - 1) * max_bytes, newest first."""
        found: list[tuple[int, int, str, int]] = []
        with os.scandir(self._directory) as entries:
            for entry in entries:
                if (
                    not entry.name.startswith(self._prefix + ".")
                    or not entry.name.endswith(SUFFIX)
                    or (self._path is not None and entry.name == self._path.name)
                ):
                    continue
                try:
                    stat = entry.stat()
                except FileNotFoundError:  # another writer deleted it meanwhile
                    continue
                # The clock of mtimes is coarse: files of one tick are ordered by creation.
                found.append((stat.st_mtime_ns, _created_ns(entry.name), entry.name, stat.st_size))
        budget = (self._max_files - 1) * self._max_bytes
        kept = 0
        for _, _, name, size in sorted(found, reverse=True):
            kept += size
            if kept > budget:
                (self._directory / name).unlink(missing_ok=True)

    def _close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
        self._fd = self._path = None


def _created_ns(name: str) -> int:
    """The creation time in a file name `<service>.<pid>.<created ns>.jsonl` (0 if none)."""
    created = name.removesuffix(SUFFIX).rpartition(".")[2]
    return int(created) if created.isdigit() else 0


def read_spans(directory: Path) -> Iterator[StoredSpan]:
    """Every span stored under `directory`, file by file (no order across files).

    A missing directory holds no spans. Files deleted by rotation before they
    are opened are skipped; one already open is read to its end. Lines that are
    not a whole span of a known version (a torn last line) are skipped.
    """
    try:
        names = sorted(os.listdir(directory))
    except FileNotFoundError:
        return
    for name in names:
        if not name.endswith(SUFFIX):
            continue
        try:
            file = (directory / name).open("rb")
        except (FileNotFoundError, IsADirectoryError):
            continue
        with file:
            for line in file:
                span = parse_line(line)
                if span is not None:
                    yield span


def parse_line(line: bytes) -> StoredSpan | None:
    """The span of one stored line, or None when it is not a whole line of version 1."""
    if not line.endswith(b"\n"):
        return None  # torn: its writer is still writing it, or died doing so
    try:
        record = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(record, dict) or record.get("v") != FORMAT_VERSION:
        return None
    try:
        return _span(record)
    except (KeyError, TypeError, ValueError):
        return None


def _span(record: Mapping[str, object]) -> StoredSpan:
    parent, message = record["parent_span_id"], record["status_message"]
    return StoredSpan(
        trace_id=_id(record["trace_id"], _TRACE_ID),
        span_id=_id(record["span_id"], _SPAN_ID),
        parent_span_id=None if parent is None else _id(parent, _SPAN_ID),
        name=_typed(record["name"], str),
        kind=_typed(record["kind"], str),
        service=_typed(record["service"], str),
        start_ns=_typed(record["start_ns"], int),
        end_ns=_typed(record["end_ns"], int),
        status=_typed(record["status"], str),
        status_message=None if message is None else _typed(message, str),
        attributes=_typed(record["attributes"], dict),
        links=tuple(
            StoredLink(
                trace_id=_id(link["trace_id"], _TRACE_ID),
                span_id=_id(link["span_id"], _SPAN_ID),
                attributes=_typed(link["attributes"], dict),
            )
            for link in _dicts(record["links"])
        ),
        events=tuple(
            StoredEvent(
                name=_typed(event["name"], str),
                time_ns=_typed(event["time_ns"], int),
                attributes=_typed(event["attributes"], dict),
            )
            for event in _dicts(record["events"])
        ),
    )


def _typed(value: object, kind: type[T]) -> T:
    # Exact types, as orjson makes them: a bool is no time, a str subclass no id.
    if type(value) is not kind:
        raise TypeError(f"{value!r} is not a {kind.__name__}")
    return value


def _id(value: object, pattern: re.Pattern[str]) -> str:
    text = _typed(value, str)
    if not pattern.fullmatch(text):
        raise ValueError(f"{text!r} is not an id")
    return text


def _dicts(value: object) -> list[dict[str, object]]:
    return [_typed(item, dict) for item in _typed(value, list)]
