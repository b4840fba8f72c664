"""OpenTelemetry traces: on when a collector or a local span directory is configured.

A service calls :func:`configure_tracing` in its app factory, next to
``configure_error_tracking``. Tracing is on when any of these is set:

* ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` or ``OTEL_EXPORTER_OTLP_ENDPOINT``: spans
  go to that collector over OTLP/HTTP (the exporter reads the other ``OTEL_EXPORTER_OTLP_*``
  variables: headers, timeout, compression);
* ``TESSERA_TRACE_DIR``: spans go to files there (``tessera up`` sets it, and
  ``tessera trace`` reads them; :mod:`tessera_runtime.span_store`).

``OTEL_SDK_DISABLED=true`` or ``OTEL_TRACES_EXPORTER=none`` turn it off whatever
else is set. Sampling is parent-based: a request that comes with a
``traceparent`` follows its sampled flag; one that starts a trace is kept with the
probability ``OTEL_TRACES_SAMPLER_ARG`` (default 1), and a new trace linked to a
sampled one always. Both are decided here before the SDK is called, so an
unsampled request costs what it costs with tracing off. ``OTEL_TRACES_SAMPLER``,
when set, hands every decision to that SDK sampler instead, as the specification says.

With tracing off, nothing here creates an SDK object: the request middleware and
the clients test :func:`tracer` (a module global) and carry on with the cheap
request context of :mod:`tessera_runtime.context` alone.

The spans are made by our own code at the places we own, not by monkey-patching
instrumentations: the request middleware (server spans), the gateway's upstream
client, the NATS helpers below (messaging spans, with W3C context in the message
headers), the catalog's asyncpg query logger and the inference batcher. Each span
rebinds the request context to its own span id, so ``outgoing_headers()`` and the
log lines inside a span name that span.
"""

from __future__ import annotations

import math
import os
import random
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_ON, ParentBased
from opentelemetry.trace import Link, NonRecordingSpan, Span, SpanContext, SpanKind, TraceFlags
from opentelemetry.trace.status import Status, StatusCode
from opentelemetry.util.types import Attributes

from tessera_runtime.context import (
    RequestContext,
    _reset,
    _set,
    current_context,
    new_request_id,
    parse_traceparent,
    sane_request_id,
)

__all__ = [
    "KNOWN_HTTP_METHODS",
    "REQUEST_ID_ATTRIBUTE",
    "TRACE_DIR_VARIABLE",
    "ServerSpan",
    "start_server_span",
    "SpanKind",
    "Status",
    "StatusCode",
    "configure_tracing",
    "flush_tracing",
    "link_to",
    "keep_new_trace",
    "link_to_current",
    "otlp_traces_endpoint",
    "record_error",
    "recording_span",
    "remote_parent",
    "span",
    "switched_off",
    "tracer",
]

TRACE_DIR_VARIABLE = "TESSERA_TRACE_DIR"
"""Directory that keeps this process's spans when no collector is configured."""

KNOWN_HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
"""Methods kept as they are in span names and metric labels; others are folded."""

REQUEST_ID_ATTRIBUTE = "tessera.request_id"
"""Span attribute holding the request id (``tessera trace <request-id>`` finds it)."""

_tracer: trace.Tracer | None = None
_provider: TracerProvider | None = None
_root_ratio: float | None = 1.0
"""Share of new traces kept; None when OTEL_TRACES_SAMPLER leaves it to the SDK."""


def tracer() -> trace.Tracer | None:
    """This process's tracer, or None while tracing is off."""
    return _tracer


def configure_tracing(service: str, version: str, environ: Mapping[str, str] = os.environ) -> bool:
    """Turn tracing on for this process if a collector or span directory is set.

    Args:
        service: ``service.name`` of the spans (``gateway``, ``catalog``, ``inference``).
        version: ``service.version`` of the spans.
        environ: where the switches, the endpoint, the sampler and ``TESSERA_TRACE_DIR``
            are read (the exporter reads its other ``OTEL_EXPORTER_OTLP_*``
            settings from the process environment itself).

    Returns:
        Whether tracing is on. A second call replaces the first one's tracer
        (the app factory runs once per process, tests run it many times).
    """
    global _tracer, _provider, _root_ratio
    if _provider is not None:
        _provider.shutdown()
    _tracer = _provider = None
    exporters = _exporters(service, environ)
    if not exporters:
        return False
    resource = Resource.create(
        {"service.name": service, "service.version": version, "service.namespace": "tessera"}
    )
    # With OTEL_TRACES_SAMPLER, the provider's default sampler reads it and decides
    # everything. Without it, the ratio is applied here before any SDK call (see
    # `keep_new_trace`), and the SDK only follows parents.
    if environ.get("OTEL_TRACES_SAMPLER"):
        sampler, _root_ratio = None, None
    else:
        sampler, _root_ratio = ParentBased(ALWAYS_ON), _ratio(environ)
    # Not the global provider: it can be set once per process, and it would make
    # the libraries' own (unused) instrumentation points record too.
    provider = TracerProvider(resource=resource, sampler=sampler)
    for exporter in exporters:
        provider.add_span_processor(BatchSpanProcessor(exporter))
    _provider = provider
    _tracer = provider.get_tracer("tessera", version)
    return True


def switched_off(environ: Mapping[str, str]) -> bool:
    """Whether the standard switches turn tracing off, whatever else is set."""
    return (
        environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true"
        or environ.get("OTEL_TRACES_EXPORTER", "").strip().lower() == "none"
    )


def _exporters(service: str, environ: Mapping[str, str]) -> list[SpanExporter]:
    if switched_off(environ):
        return []
    exporters: list[SpanExporter] = []
    endpoint = otlp_traces_endpoint(environ)
    if endpoint:
        # Imported here: it pulls in requests and protobuf, which an untraced
        # service never needs.
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        exporters.append(OTLPSpanExporter(endpoint=endpoint))
    trace_dir = environ.get(TRACE_DIR_VARIABLE)
    if trace_dir:
        from tessera_runtime.span_store import SpanFileExporter

        exporters.append(SpanFileExporter(Path(trace_dir), service))
    return exporters


def otlp_traces_endpoint(environ: Mapping[str, str]) -> str | None:
    """The URL spans are posted to, as the OTLP exporter specification derives it:
    the signal's own variable as it is, else the base endpoint plus ``/v1/traces``."""
    endpoint = environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "").strip()
    if endpoint:
        return endpoint
    base = environ.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip()
    return f"{base.rstrip('/')}/v1/traces" if base else None


def _ratio(environ: Mapping[str, str]) -> float:
    raw = environ.get("OTEL_TRACES_SAMPLER_ARG", "").strip()
    try:
        ratio = float(raw) if raw else 1.0
    except ValueError:
        ratio = 1.0
    if not math.isfinite(ratio):
        ratio = 1.0
    return min(max(ratio, 0.0), 1.0)


def keep_new_trace(links: Sequence[Link] = ()) -> bool:
    """Whether a span that starts a trace is recorded: when it links to a sampled
    span (an outbox event's relay and delivery, linked to the request that wrote
    it: a kept write keeps its event), else with the configured ratio.

    Decided here, before the SDK is called, so that an unsampled request costs
    no SDK work at all: the SDK would make a span, ids and contexts to drop
    them. Its children see the unsampled flag of the request context and skip
    the SDK too (`span`), as a parent-based sampler would drop them.
    """
    if _root_ratio is None:  # OTEL_TRACES_SAMPLER: the SDK's sampler decides
        return True
    if any(link.context.trace_flags.sampled for link in links):
        return True
    return _root_ratio >= 1.0 or random.random() < _root_ratio


def flush_tracing(timeout_ms: int = 5_000) -> None:
    """Export the spans still buffered (at shutdown, so the last requests are kept)."""
    if _provider is not None:
        _provider.force_flush(timeout_ms)


def _span_context(traceparent: str | None) -> SpanContext | None:
    parsed = parse_traceparent(traceparent)
    if parsed is None:
        return None
    trace_id, parent_id, flags = parsed
    return SpanContext(
        int(trace_id, 16),
        int(parent_id, 16),
        is_remote=True,
        trace_flags=TraceFlags(TraceFlags.SAMPLED if flags == "01" else TraceFlags.DEFAULT),
    )


def remote_parent(traceparent: str | None) -> otel_context.Context | None:
    """The OpenTelemetry context of a ``traceparent`` value (None if absent or invalid)."""
    span_context = _span_context(traceparent)
    if span_context is None:
        return None
    return trace.set_span_in_context(NonRecordingSpan(span_context))


def link_to(traceparent: str | None) -> Link | None:
    """A span link to the span a ``traceparent`` names (an outbox row's writer, ...)."""
    span_context = _span_context(traceparent)
    return None if span_context is None else Link(span_context)


def link_to_current() -> Link | None:
    """A span link to the current span, if it is recorded."""
    current = recording_span()
    return None if current is None else Link(current.get_span_context())


def _context_of(span_: Span, request_id: str) -> RequestContext:
    """The request context that names ``span_`` (logs and outgoing headers)."""
    span_context = span_.get_span_context()
    return RequestContext(
        request_id,
        f"{span_context.trace_id:032x}",
        f"{span_context.span_id:016x}",
        "01" if span_context.trace_flags.sampled else "00",
    )


@contextmanager
def span(
    name: str,
    *,
    kind: SpanKind = SpanKind.INTERNAL,
    attributes: Attributes = None,
    links: Sequence[Link] = (),
    parent: otel_context.Context | None = None,
    request_id: str | None = None,
) -> Iterator[Span | None]:
    """A span around the block, child of the current span (or of ``parent``).

    Inside the block the request context names this span, so ``outgoing_headers()``
    carries it as the parent of the next hop. With tracing off this yields None
    and changes nothing. An exception escaping the block is recorded on the span
    and marks it as an error.

    Args:
        name: the span name (low cardinality: ``send inference.v1.predict``).
        kind: the span kind.
        attributes: attributes known at the start.
        links: links to other spans (the writers of outbox rows, batched requests).
        parent: an explicit parent (a message's ``traceparent``, see :func:`remote_parent`)
            instead of the current span.
        request_id: the request id to bind when no request context is bound yet
            (message handlers and background work); a new one if None.
    """
    tracer_ = _tracer
    if tracer_ is None or not _records(parent, links):
        yield None
        return
    bound = current_context()
    rid = bound.request_id if bound is not None and request_id is None else request_id
    rid = rid or new_request_id()
    new_span = tracer_.start_span(
        name, context=parent, kind=kind, attributes=attributes, links=links
    )
    if parent is not None or bound is None:
        new_span.set_attribute(REQUEST_ID_ATTRIBUTE, rid)
    otel_token = otel_context.attach(trace.set_span_in_context(new_span, parent))
    context_token = _set(_context_of(new_span, rid))
    try:
        yield new_span
    except BaseException as error:
        record_error(error, new_span)
        raise
    finally:
        try:
            _reset(context_token)
            otel_context.detach(otel_token)
        finally:
            new_span.end()


def _records(parent: otel_context.Context | None, links: Sequence[Link]) -> bool:
    """Whether a span with this parent (None: the current one) would be recorded,
    decided as a parent-based sampler would, without calling the SDK."""
    if _root_ratio is None:  # the SDK's own sampler decides
        return True
    if parent is None:
        bound = current_context()
        if bound is not None:
            # A request's context says whether its trace is sampled (an unsampled
            # one has no SDK span to ask).
            return bound.trace_flags == "01"
        parent_context = trace.get_current_span().get_span_context()
    else:
        parent_context = trace.get_current_span(parent).get_span_context()
    if parent_context.is_valid:
        return parent_context.trace_flags.sampled
    return keep_new_trace(links)


def recording_span() -> Span | None:
    """The current span if it is being recorded (tracing on and sampled), else None."""
    if _tracer is None:
        return None
    current = trace.get_current_span()
    return current if current.is_recording() else None


def record_error(error: BaseException, span_: Span | None = None) -> None:
    """Mark the current span (or ``span_``) as failed by ``error``."""
    if _tracer is None:
        return
    target = span_ if span_ is not None else trace.get_current_span()
    if target.is_recording():
        target.record_exception(error)
        target.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"[:256]))


def start_server_span(
    tracer_: trace.Tracer, method: str, path: str, request_id: str | None, traceparent: str | None
) -> ServerSpan | None:
    """The server span of a request that is sampled, or None (the caller then binds
    the cheap request context: an unsampled request costs no SDK work).

    Args:
        request_id: the incoming ``X-Request-ID``, sanitised here.
        traceparent: the incoming ``traceparent``: its sampled flag decides; without
            one (or an invalid one), the ratio does.
    """
    if _root_ratio is not None:
        parsed = parse_traceparent(traceparent)
        if (parsed is None and not keep_new_trace()) or (parsed is not None and parsed[2] != "01"):
            return None
    return ServerSpan(
        tracer_, method, path, sane_request_id(request_id) or new_request_id(), traceparent
    )


class ServerSpan:
    """The span of one HTTP request, from the middleware's start to its end."""

    __slots__ = ("_method", "_otel_token", "context", "span")

    def __init__(
        self,
        tracer_: trace.Tracer,
        method: str,
        path: str,
        request_id: str,
        traceparent: str | None,
    ) -> None:
        # Span names and attribute values come from a bounded set: any other
        # method a client sends is "_OTHER" in a span named "HTTP", as the HTTP
        # semantic conventions say.
        known = method in KNOWN_HTTP_METHODS
        self._method = method if known else "HTTP"
        attributes: dict[str, str] = {
            "http.request.method": method if known else "_OTHER",
            "url.path": path,
            REQUEST_ID_ATTRIBUTE: request_id,
        }
        if not known:
            attributes["http.request.method_original"] = method[:64]
        # An empty context, not the current one, when no valid traceparent came:
        # a request never inherits a span from whatever ran before it.
        parent = remote_parent(traceparent) or otel_context.Context()
        self.span = tracer_.start_span(
            self._method, context=parent, kind=SpanKind.SERVER, attributes=attributes
        )
        self._otel_token = otel_context.attach(trace.set_span_in_context(self.span, parent))
        self.context = _context_of(self.span, request_id)

    def end(self, route: str, status: int) -> None:
        """Name the span after its route, record the status and end it."""
        span_ = self.span
        if span_.is_recording():
            span_.update_name(f"{self._method} {route}")
            span_.set_attribute("http.route", route)
            span_.set_attribute("http.response.status_code", status)
            # Server spans: a 4xx is the client's error, not this span's.
            if status >= 500:
                span_.set_status(Status(StatusCode.ERROR))
        try:
            otel_context.detach(self._otel_token)
        finally:
            span_.end()
