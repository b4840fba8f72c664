"""A span per PostgreSQL query, from asyncpg's query logger.

asyncpg has no tracing hooks, but each connection takes query loggers
(``Connection.add_query_logger``): after every query it schedules the logger
with the query text, its duration and its error, in a copy of the caller's
context, so the current span is the one that ran the query. The span is made
then, with the start moved back by the measured duration: its length is exact,
and its place on the timeline may be late by the time until the event loop ran
the logger (the rest of the loop iteration). This is the explicit alternative to
the asyncpg instrumentation, which wraps asyncpg's connection methods in place.

The logger is on a connection only while a sampled request has borrowed it
(`watch_queries`, from `records.acquire`): queries outside a recorded span (the
outbox relay's polling, unsampled requests, migrations) cost nothing and make no
span; they belong to no traced request.
"""

from __future__ import annotations

import contextlib
import time
from typing import TYPE_CHECKING

import asyncpg
from asyncpg.connection import LoggedQuery
from opentelemetry import trace
from tessera_runtime import tracing

if TYPE_CHECKING:
    from tessera_catalog.db.records import Executor

__all__ = ["unwatch_queries", "watch_queries"]


def watch_queries(connection: Executor) -> bool:
    """Record the queries of a connection just borrowed, if the borrower is in a
    sampled trace; returns whether it does (then `unwatch_queries` before release).

    Per borrowing, not per connection: asyncpg calls a connection's loggers for
    every query, and in an unsampled request that is work for nothing.
    """
    if tracing.recording_span() is None:
        return False
    connection.add_query_logger(_record)
    return True


def unwatch_queries(connection: Executor) -> None:
    """Stop recording the queries of `connection` (before it goes back to the pool)."""
    with contextlib.suppress(asyncpg.InterfaceError):  # already detached from its proxy
        connection.remove_query_logger(_record)


def _record(query: LoggedQuery) -> None:
    tracer = tracing.tracer()
    if tracer is None:
        return
    # The span that ran the query may have ended since (a handler whose last
    # query ends it): its context still says whether it is a sampled trace.
    parent = trace.get_current_span().get_span_context()
    if not (parent.is_valid and parent.trace_flags.sampled):
        return
    end_ns = time.time_ns()
    text = query.query.strip()
    operation = text.split(None, 1)[0].upper() if text else "QUERY"
    params = query.conn_params
    database = getattr(params, "database", None) or ""
    attributes: dict[str, str | int] = {
        "db.system.name": "postgresql",
        "db.namespace": database,
        "db.operation.name": operation,
        # Parameterised text only: the values are never in it.
        "db.query.text": text,
    }
    address = query.conn_addr
    if isinstance(address, tuple) and len(address) >= 2:
        attributes["server.address"] = str(address[0])
        attributes["server.port"] = int(address[1])
    span = tracer.start_span(
        f"{operation} {database}".strip(),
        kind=tracing.SpanKind.CLIENT,
        attributes=attributes,
        start_time=end_ns - int(query.elapsed * 1e9),
    )
    if query.exception is not None:
        span.set_attribute("error.type", type(query.exception).__name__)
        tracing.record_error(query.exception, span)
    span.end(end_time=end_ns)
