"""Per-request correlation context: request id and W3C trace context.

The request middleware binds a :class:`RequestContext` for every HTTP request;
NATS handlers bind one from the message headers with :func:`bind_context`.
Code anywhere below reads it back with :func:`request_id` (logging does) or
:func:`outgoing_headers` (clients calling other services do).

No tracer records spans here: with tracing off this keeps the trace id flowing
and gives each service hop its own span id. With tracing on,
:mod:`tessera_runtime.tracing` binds contexts whose span id is that of the
OpenTelemetry span being recorded, so the callers here do not change.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from contextvars import ContextVar, Token
from random import getrandbits
from types import TracebackType
from typing import NamedTuple

__all__ = [
    "REQUEST_ID_HEADER",
    "TRACEPARENT_HEADER",
    "ContextBinding",
    "RequestContext",
    "bind_context",
    "current_context",
    "new_context",
    "outgoing_headers",
    "request_id",
]

REQUEST_ID_HEADER = "X-Request-ID"
TRACEPARENT_HEADER = "traceparent"

# RFC 9110 token characters: safe to echo in a header and to put in a log line
# (no spaces, quotes, control characters or newlines that could forge entries).
_REQUEST_ID_RE = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,128}")
# W3C Trace Context: version-traceid-parentid-flags in lower-case hex. Version
# "ff" and all-zero ids are invalid. Matched as a prefix: later versions may
# append fields (checked in parse_traceparent).
_TRACEPARENT_RE = re.compile(
    r"(?!ff)[0-9a-f]{2}"  # version
    r"-(?!0{32})([0-9a-f]{32})"  # trace-id
    r"-(?!0{16})([0-9a-f]{16})"  # parent-id
    r"-[0-9a-f]([0-9a-f])"  # trace-flags; the sampled bit is in the second digit
)
_SAMPLED_DIGITS = frozenset("13579bdf")
# A trace this service starts while tracing is off is not recorded, so it is not
# marked sampled; an incoming decision is passed on unchanged.
_NEW_TRACE_FLAGS = "00"


class RequestContext(NamedTuple):
    """Correlation ids of the unit of work being handled (an HTTP request or a message)."""

    request_id: str
    trace_id: str
    span_id: str
    """This hop's own span id: the parent id of every call it makes."""
    trace_flags: str

    @property
    def traceparent(self) -> str:
        """The ``traceparent`` header value for calls made on behalf of this context."""
        return f"00-{self.trace_id}-{self.span_id}-{self.trace_flags}"


_current: ContextVar[RequestContext | None] = ContextVar("tessera_request_context", default=None)


# Ids only need to be unique, not unpredictable: the Mersenne Twister (reseeded by
# CPython in forked children) is several times cheaper than os.urandom, which
# uuid4() and secrets call once per id, and the gateway makes ids on every request.
_UUID4_CLEAR = ~((0xF000 << 64) | (0xC000 << 48))
_UUID4_SET = (0x4000 << 64) | (0x8000 << 48)
_NO_SPAN = "0" * 16
_NO_TRACE = "0" * 32


def new_request_id() -> str:
    """A random UUID version 4, as 32 lower-case hex digits (``uuid.uuid4().hex`` format)."""
    return f"{(getrandbits(128) & _UUID4_CLEAR) | _UUID4_SET:032x}"


def new_span_id() -> str:
    """A random, non-zero 64-bit span id in lower-case hex."""
    return f"{getrandbits(64) or 1:016x}"


def new_trace_id() -> str:
    """A random, non-zero 128-bit trace id in lower-case hex."""
    return f"{getrandbits(128) or 1:032x}"


def _new_ids() -> tuple[str, str, str]:
    """A request id, a trace id and a span id, as the three functions above make
    them, from one random draw and one formatting (the request path makes all three)."""
    digits = f"{(getrandbits(320) & _UUID4_CLEAR_320) | _UUID4_SET_320:080x}"
    trace_id, span_id = digits[32:64], digits[64:]
    # All zeros is invalid in W3C Trace Context (a chance of 2**-64 for the span id).
    if span_id == _NO_SPAN:
        span_id = new_span_id()
    if trace_id == _NO_TRACE:
        trace_id = new_trace_id()
    return digits[:32], trace_id, span_id


# The request id is the top 128 of the 320 bits.
_UUID4_CLEAR_320 = (_UUID4_CLEAR << 192) | ((1 << 192) - 1)
_UUID4_SET_320 = _UUID4_SET << 192


def sane_request_id(value: str | None) -> str | None:
    """``value`` if it is a usable request id (<= 128 token characters), else None."""
    if value is not None and _REQUEST_ID_RE.fullmatch(value):
        return value
    return None


def parse_traceparent(value: str | None) -> tuple[str, str, str] | None:
    """``(trace_id, parent_id, trace_flags)`` of a valid ``traceparent`` header, else None."""
    if value is None:
        return None
    match = _TRACEPARENT_RE.match(value)
    if match is None:
        return None
    end = match.end()
    # Version 00 ends here; a later version may go on, but only after a dash.
    if end != len(value) and (value.startswith("00") or value[end] != "-"):
        return None
    # Only the sampled bit is defined; pass on nothing we do not understand.
    return match[1], match[2], "01" if match[3] in _SAMPLED_DIGITS else "00"


def new_context(request_id: str | None = None, traceparent: str | None = None) -> RequestContext:
    """Build a context from (untrusted) incoming values, generating what is missing or invalid.

    Args:
        request_id: incoming ``X-Request-ID``; replaced by a fresh uuid4 hex if not sane.
        traceparent: incoming ``traceparent``; a new trace is started if absent or invalid.

    Returns:
        The context, with a new span id for this hop.
    """
    new_rid, new_trace, span_id = _new_ids()
    rid = sane_request_id(request_id) or new_rid
    parsed = parse_traceparent(traceparent)
    if parsed is None:
        trace_id, flags = new_trace, _NEW_TRACE_FLAGS
    else:
        trace_id, _, flags = parsed
    return RequestContext(rid, trace_id, span_id, flags)


def current_context() -> RequestContext | None:
    """The context bound to the running task, if any."""
    return _current.get()


def request_id() -> str | None:
    """The request id bound to the running task, if any."""
    ctx = _current.get()
    return None if ctx is None else ctx.request_id


def outgoing_headers() -> dict[str, str]:
    """Headers that carry the current context to another service (httpx or NATS).

    Returns:
        ``{"X-Request-ID": ..., "traceparent": ...}``: the same request id and trace
        id, with this hop's span id as the parent. Empty outside any bound context
        (background work should ``bind_context(None)`` first to start one).
    """
    ctx = _current.get()
    if ctx is None:
        return {}
    return {REQUEST_ID_HEADER: ctx.request_id, TRACEPARENT_HEADER: ctx.traceparent}


def _header(headers: Mapping[str, str], name: str) -> str | None:
    # NATS headers keep the sender's spelling, so look the name up case-insensitively.
    value = headers.get(name)
    if value is not None:
        return value
    lowered = name.lower()
    for key, candidate in headers.items():
        if key.lower() == lowered:
            return candidate
    return None


class ContextBinding:
    """The result of :func:`bind_context`: already bound; use ``with`` to unbind on exit."""

    __slots__ = ("_token", "context")

    def __init__(self, context: RequestContext) -> None:
        self.context = context
        self._token: Token[RequestContext | None] | None = _current.set(context)

    def reset(self) -> None:
        """Restore the context that was bound before (idempotent)."""
        if self._token is not None:
            _current.reset(self._token)
            self._token = None

    def __enter__(self) -> RequestContext:
        return self.context

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.reset()


def bind_context(headers: Mapping[str, str] | None) -> ContextBinding:
    """Bind the context carried by a message's headers (e.g. ``msg.headers`` in a NATS handler).

    Missing or invalid ``X-Request-ID`` / ``traceparent`` values are generated, so
    ``bind_context(None)`` starts a fresh context for background work.

    Args:
        headers: the incoming headers, or None.

    Returns:
        A binding that is already in effect; ``with bind_context(h) as ctx:`` resets
        it on exit, or call ``.reset()``.
    """
    if headers:
        ctx = new_context(_header(headers, REQUEST_ID_HEADER), _header(headers, TRACEPARENT_HEADER))
    else:
        ctx = new_context()
    return ContextBinding(ctx)


def _set(ctx: RequestContext) -> Token[RequestContext | None]:
    # For the middleware, which resets the token itself (cheaper than a ContextBinding).
    return _current.set(ctx)


def _reset(token: Token[RequestContext | None]) -> None:
    _current.reset(token)
