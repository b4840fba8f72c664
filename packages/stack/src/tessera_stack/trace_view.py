"""`tessera trace`: one trace of the spans a local run keeps, as a waterfall in the terminal.

The services of `tessera up` write their spans under `<data-dir>/traces`
(`tessera_runtime.span_store`). A trace is found by its id (also given as a
whole `traceparent`), by a request id (the span attribute `tessera.request_id`
of server and consumer spans), or as the latest one. Finding reads the files
twice (which trace, then its spans) rather than holding every span in memory.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tessera_runtime.context import parse_traceparent
from tessera_runtime.span_store import StoredSpan, read_spans
from tessera_runtime.tracing import REQUEST_ID_ATTRIBUTE

from tessera_stack.local.console import say, warn

MIN_BAR_WIDTH = 20
NAME_WIDTH_MAX = 48
LISTED_MAX = 3
"""Ids listed on a links line; the rest are counted."""
_TRACE_ID = re.compile(r"[0-9a-f]{32}")
_RED, _RESET = "\x1b[31m", "\x1b[0m"


@dataclass(frozen=True, slots=True)
class Found:
    """Which trace to show, and how it was asked for."""

    trace_id: str
    request_id: str | None = None
    other_traces: tuple[str, ...] = ()
    """Further traces whose spans carry the same request id."""


@dataclass(slots=True)
class Trace:
    trace_id: str
    spans: list[StoredSpan] = field(default_factory=list)
    linked_from: list[StoredSpan] = field(default_factory=list)
    """Spans of other traces with a link to a span of this one (a batch that served it)."""
    request_id: str | None = None
    other_traces: tuple[str, ...] = ()


def wanted_trace_id(argument: str) -> str | None:
    """The trace id `argument` names, if it is one (32 hex digits, or a traceparent)."""
    text = argument.strip().lower()
    if _TRACE_ID.fullmatch(text):
        return text
    parsed = parse_traceparent(text)
    return None if parsed is None else parsed[0]


def find(spans: Iterable[StoredSpan], argument: str | None) -> Found | None:
    """The trace `argument` names (None: the latest), among `spans`.

    A trace id is tried as one first; anything else, or a trace id no span has,
    is looked up as a request id. Several traces may carry one request id (work
    a request's events caused later): the one whose span started first is it.
    """
    if argument is None:
        return _latest(spans)
    trace_id = wanted_trace_id(argument)
    id_seen = False
    by_request: dict[str, int] = {}  # trace id -> earliest start of a span of the request
    for span in spans:
        if span.trace_id == trace_id:
            id_seen = True
        elif span.attributes.get(REQUEST_ID_ATTRIBUTE) == argument:
            start = by_request.get(span.trace_id, span.start_ns)
            by_request[span.trace_id] = min(start, span.start_ns)
    if trace_id is not None and id_seen:
        return Found(trace_id)
    if not by_request:
        return None
    ordered = sorted(by_request, key=lambda t: (by_request[t], t))
    return Found(ordered[0], argument, tuple(ordered[1:]))


def _latest(spans: Iterable[StoredSpan]) -> Found | None:
    """The trace of the request that ended last: its server span is where it entered
    the system (no parent, or a parent outside what is stored: a caller that sent a
    `traceparent`). Background traces (an outbox event's publish) come after, and
    without any server span, the latest root or span."""
    stored: set[str] = set()
    entries: list[tuple[int, str, str | None]] = []
    latest_root: tuple[int, str] | None = None
    latest: tuple[int, str] | None = None
    for span in spans:
        stored.add(span.span_id)
        ended = (span.end_ns, span.trace_id)
        latest = max(latest or ended, ended)
        if span.parent_span_id is None:
            latest_root = max(latest_root or ended, ended)
        if span.kind == "server":
            entries.append((span.end_ns, span.trace_id, span.parent_span_id))
    entry = max(
        ((end, trace) for end, trace, parent in entries if parent is None or parent not in stored),
        default=None,
    )
    last = entry or latest_root or latest
    return None if last is None else Found(last[1])


def collect(spans: Iterable[StoredSpan], found: Found) -> Trace:
    """The spans of the trace `found` names, and those of other traces linking to it."""
    trace = Trace(found.trace_id, request_id=found.request_id, other_traces=found.other_traces)
    for span in spans:
        if span.trace_id == found.trace_id:
            trace.spans.append(span)
        elif any(link.trace_id == found.trace_id for link in span.links):
            trace.linked_from.append(span)
    return trace


def tree_order(spans: Iterable[StoredSpan]) -> list[tuple[StoredSpan, int, bool]]:
    """(span, depth, parent missing) in tree order: children under their parent,
    siblings by start time; a span whose parent is not among `spans` is at the top."""
    by_id: dict[str, StoredSpan] = {}
    for span in sorted(spans, key=lambda s: (s.start_ns, s.span_id)):
        by_id.setdefault(span.span_id, span)  # a span exported twice is shown once
    children: defaultdict[str, list[StoredSpan]] = defaultdict(list)
    tops: list[StoredSpan] = []
    for span in by_id.values():
        if span.parent_span_id in by_id and span.parent_span_id != span.span_id:
            children[span.parent_span_id].append(span)
        else:
            tops.append(span)
    order: list[tuple[StoredSpan, int, bool]] = []
    seen: set[str] = set()

    def walk(top: StoredSpan) -> None:
        pending = [(top, 0)]
        while pending:  # a stack, not recursion: depth is the data's to choose
            span, depth = pending.pop()
            if span.span_id in seen:
                continue
            seen.add(span.span_id)
            order.append((span, depth, depth == 0 and span.parent_span_id is not None))
            pending.extend((child, depth + 1) for child in reversed(children[span.span_id]))

    for top in tops:
        walk(top)
    for span in by_id.values():  # parents in a cycle (corrupt files) have no top
        walk(span)
    return order


def _ms(ns: int) -> str:
    return f"{ns / 1e6:.2f}"


def _bar(start: int, end: int, origin: int, total: int, width: int) -> str:
    first = min(max(math.floor((start - origin) * width / total), 0), width - 1)
    last = min(max(math.ceil((end - origin) * width / total), first + 1), width)
    return "|" + " " * first + "=" * (last - first) + " " * (width - last) + "|"


def _listed(ids: Sequence[str]) -> str:
    shown = ", ".join(ids[:LISTED_MAX])
    return shown if len(ids) <= LISTED_MAX else f"{shown} and {len(ids) - LISTED_MAX} more"


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def links_line(span: StoredSpan, trace_id: str) -> str:
    """What `span` links to: span ids in its trace, trace ids elsewhere."""
    here = [link.span_id for link in span.links if link.trace_id == trace_id]
    elsewhere = list(
        dict.fromkeys(link.trace_id for link in span.links if link.trace_id != trace_id)
    )
    parts = []
    if here:
        parts.append(f"{_plural(len(here), 'span')} of this trace: {_listed(here)}")
    if elsewhere:
        others = len(span.links) - len(here)
        parts.append(
            f"{_plural(others, 'span')} in {_plural(len(elsewhere), 'other trace')}: {_listed(elsewhere)}"
        )
    return "links: " + "; ".join(parts)


def error_text(span: StoredSpan) -> str:
    """The status message, else the recorded exception's type and message."""
    if span.status_message:
        return span.status_message
    for event in span.events:
        if event.name == "exception":
            kind, message = (
                event.attributes.get(k) for k in ("exception.type", "exception.message")
            )
            return ": ".join(str(part) for part in (kind, message) if part)
    return "no message"


def render(trace: Trace, *, columns: int, color: bool) -> list[str]:
    """The waterfall of `trace` as lines at most about `columns` wide."""
    rows = tree_order(trace.spans)
    origin = min(span.start_ns for span, _, _ in rows)
    total = max(span.end_ns for span, _, _ in rows) - origin
    services = list(dict.fromkeys(span.service for span, _, _ in rows))
    request_id = trace.request_id or next(
        (
            str(span.attributes[REQUEST_ID_ATTRIBUTE])
            for span, _, _ in rows
            if REQUEST_ID_ATTRIBUTE in span.attributes
        ),
        None,
    )
    shown = [*rows, *((span, 0, False) for span in trace.linked_from)]
    service_width = max(len("service"), *(len(span.service) for span, _, _ in shown))
    names = [_name(span, depth, orphan) for span, depth, orphan in shown]
    name_width = min(max(len("span"), *(len(name) for name in names)), NAME_WIDTH_MAX)
    fixed = 1 + service_width + 2 + name_width + 2 + 9 + 2 + 9 + 2 + 6 + 2 + 2
    width = max(columns - fixed, MIN_BAR_WIDTH)
    under = " " * (1 + service_width + 2)

    header = [f"trace {trace.trace_id}"]
    if request_id is not None:
        header.append(f"request {request_id}")
    header += [
        _plural(len(rows), "span"),
        "services " + ", ".join(services),
        f"total {_ms(total)} ms",
    ]
    lines = ["  ".join(header)]
    if trace.other_traces:
        lines.append(f"request {request_id} is also in traces {_listed(trace.other_traces)}")
    lines.append(
        f" {'service':<{service_width}}  {'span':<{name_width}}  {'start ms':>9}  {'dur ms':>9}  {'status':<6}  timeline"
    )

    def add(span: StoredSpan, name: str, depth: int, notes: list[str]) -> None:
        failed = span.status == "error"
        row = (
            f"{'!' if failed else ' '}{span.service:<{service_width}}  {_cut(name, name_width):<{name_width}}  "
            f"{_ms(span.start_ns - origin):>9}  {_ms(span.duration_ns):>9}  {span.status:<6}  "
            + _bar(span.start_ns, span.end_ns, origin, total or 1, width)
        )
        indent = under + "  " * depth + "  "
        texts = [row, *(f"{indent}{note}" for note in notes)]
        if failed:
            texts.insert(1, f"{indent}! error: {error_text(span)}")
        lines.extend(f"{_RED}{text}{_RESET}" if failed and color else text for text in texts)

    for (span, depth, _), name in zip(rows, names, strict=False):
        add(span, name, depth, [links_line(span, trace.trace_id)] if span.links else [])
    if trace.linked_from:
        lines.append("spans of other traces linking to this one:")
        for span, name in zip(trace.linked_from, names[len(rows) :], strict=True):
            mine = [link.span_id for link in span.links if link.trace_id == trace.trace_id]
            note = f"in trace {span.trace_id}, links to {_plural(len(mine), 'span')} here: {_listed(mine)}"
            add(span, name, 0, [note])
    if any(orphan for _, _, orphan in rows):
        lines.append("^ its parent span is not stored (a caller outside this run, or rotated out)")
    return lines


def _name(span: StoredSpan, depth: int, orphan: bool) -> str:
    return "  " * depth + ("^ " if orphan else "") + span.name


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


def show_trace(directory: Path, argument: str | None, *, columns: int, color: bool) -> int:
    """Print the trace `argument` names (None: the latest) kept under `directory`.

    `directory` is shown in messages as given (relative, as the user typed it).

    Returns:
        The exit status: 0 when shown, 1 when there is no such trace.
    """
    if not directory.is_dir():
        warn(
            f"tessera trace: {directory} does not exist: `tessera up` keeps its "
            "services' spans there while it runs (unless OTEL_EXPORTER_OTLP_ENDPOINT "
            "sends them to a collector)"
        )
        return 1
    found = find(read_spans(directory), argument)
    # Files may rotate away between the two reads: then the trace is gone too.
    trace = None if found is None else collect(read_spans(directory), found)
    if trace is None or not trace.spans:
        asked = "" if argument is None else f" of trace/request {argument}"
        warn(f"tessera trace: no spans{asked} under {directory}")
        return 1
    for line in render(trace, columns=columns, color=color):
        say(line)
    return 0
