"""Correlation headers: `X-Request-ID` and W3C `traceparent` on every request.

A caller that is itself handling a traced request passes its context on::

    with tessera_client.trace_context(traceparent=incoming, request_id=incoming_id):
        await client.v1.get_product(product_id)

Without one, a call sends no `traceparent`, so the gateway starts the trace and
its sampler decides whether it is recorded (a client that records no spans
must not claim a sampled parent, which would make the gateway keep every trace
whatever its sampling ratio); each call gets a new request id, which its
retries keep.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Final

REQUEST_ID: Final = "X-Request-ID"
TRACEPARENT: Final = "traceparent"
TRACESTATE: Final = "tracestate"

_TRACEPARENT: Final = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}$")


@dataclass(frozen=True, slots=True)
class TraceContext:
    """What `trace_context` propagates; any part may be None."""

    traceparent: str | None = None
    tracestate: str | None = None
    request_id: str | None = None


_CURRENT: ContextVar[TraceContext | None] = ContextVar("tessera_client_trace", default=None)


def valid_traceparent(value: str) -> bool:
    """Version 00 with a non-zero trace-id and parent-id, as W3C Trace Context says."""
    match = _TRACEPARENT.match(value)
    return match is not None and set(match[1]) != {"0"} and set(match[2]) != {"0"}


@contextmanager
def trace_context(
    *,
    traceparent: str | None = None,
    tracestate: str | None = None,
    request_id: str | None = None,
) -> Iterator[TraceContext]:
    """Send these correlation headers on every call made inside the block (this task or
    thread, and the tasks it starts).

    Args:
        traceparent: The caller's W3C `traceparent`; the calls join its trace.
        tracestate: Its `tracestate`, passed on with it.
        request_id: `X-Request-ID` of every call in the block.

    Raises:
        ValueError: `traceparent` is not a valid version-00 traceparent.
    """
    if traceparent is not None and not valid_traceparent(traceparent):
        raise ValueError(f"not a W3C traceparent: {traceparent!r}")
    context = TraceContext(traceparent, tracestate, request_id)
    token = _CURRENT.set(context)
    try:
        yield context
    finally:
        _CURRENT.reset(token)


def current_trace_context() -> TraceContext | None:
    """The context of the innermost `trace_context` block, if any."""
    return _CURRENT.get()


def correlation_headers() -> dict[str, str]:
    """The headers of one call: the current context's, else a new request id alone."""
    context = _CURRENT.get() or TraceContext()
    headers = {REQUEST_ID: context.request_id or uuid.uuid4().hex}
    if context.traceparent:
        headers[TRACEPARENT] = context.traceparent
        if context.tracestate:
            headers[TRACESTATE] = context.tracestate
    return headers
