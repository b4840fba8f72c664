"""NATS publish, request-reply and consume with the trace context in the headers.

nats.py has no tracing hooks, so every service sends and takes its messages
through these three functions: each carries ``X-Request-ID`` and ``traceparent``
(W3C) in the message headers and, with tracing on, records the span the
OpenTelemetry messaging conventions describe:

* :func:`request`: a ``send <subject>`` CLIENT span around a request-reply (the
  caller waits for the answer, so the span is the whole exchange);
* :func:`publish`: a ``publish <subject>`` PRODUCER span around a JetStream
  publish, linked to the context the message's own ``traceparent`` names (the
  outbox relay's event: the request that wrote it);
* :func:`consume`: a ``process <subject>`` CONSUMER span, child of the sender's
  span, around the handling of a message, with the request context bound;
* :func:`start_delivery`: a ``process <subject>`` CONSUMER span for handing a
  stream's message on (the gateway's SSE), child of the current span and linked
  to the message's creation context (the request that wrote the event).

With tracing off they only add the headers and bind the context, as before.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import PubAck
from opentelemetry import context as otel_context
from opentelemetry.trace import Span

from tessera_runtime import tracing
from tessera_runtime.context import (
    REQUEST_ID_HEADER,
    TRACEPARENT_HEADER,
    RequestContext,
    _header,
    bind_context,
    current_context,
    outgoing_headers,
    sane_request_id,
)

__all__ = ["consume", "publish", "request", "start_delivery"]

_SYSTEM = "nats"


def _attributes(subject: str, operation: str, kind: str, size: int) -> dict[str, str | int]:
    return {
        "messaging.system": _SYSTEM,
        "messaging.destination.name": subject,
        "messaging.operation.name": operation,
        "messaging.operation.type": kind,
        "messaging.message.body.size": size,
    }


async def request(
    client: Client,
    subject: str,
    payload: bytes,
    *,
    timeout: float,
    headers: Mapping[str, str] | None = None,
) -> Msg:
    """Request-reply on ``subject`` with the current context (and ``headers``) sent along."""
    if tracing.recording_span() is None:  # tracing off, or not in a sampled trace
        sent = {**outgoing_headers(), **(headers or {})}
        return await client.request(subject, payload, timeout=timeout, headers=sent or None)
    with tracing.span(
        f"send {subject}",
        kind=tracing.SpanKind.CLIENT,
        attributes=_attributes(subject, "request", "send", len(payload)),
    ):
        sent = {**outgoing_headers(), **(headers or {})}
        return await client.request(subject, payload, timeout=timeout, headers=sent or None)


async def publish(
    jetstream: JetStreamContext,
    subject: str,
    payload: bytes,
    *,
    headers: Mapping[str, str],
    stream: str | None = None,
    timeout: float | None = None,
) -> PubAck:
    """Publish to a JetStream stream, expecting ``stream`` to take it.

    ``headers`` are sent as they are: an outbox row's stored headers carry the
    writer's context, which is the message's creation context for its consumers.
    The span starts a trace of its own linked to that context (not its child: the
    publish happens later, in the relay, for whichever request wrote the row), and
    carries the writer's request id, so ``tessera trace <request-id>`` finds it.
    """
    if tracing.tracer() is None:
        return await jetstream.publish(
            subject, payload, timeout=timeout, stream=stream, headers=dict(headers)
        )
    link = tracing.link_to(_header(headers, TRACEPARENT_HEADER))
    with tracing.span(
        f"publish {subject}",
        kind=tracing.SpanKind.PRODUCER,
        attributes=_attributes(subject, "publish", "send", len(payload)),
        links=[link] if link is not None else (),
        parent=otel_context.Context(),
        request_id=sane_request_id(_header(headers, REQUEST_ID_HEADER)),
    ):
        return await jetstream.publish(
            subject, payload, timeout=timeout, stream=stream, headers=dict(headers)
        )


@contextmanager
def consume(msg: Msg, *, consumer_group: str | None = None) -> Iterator[RequestContext]:
    """Bind the context a message carries and, with tracing on, record its processing."""
    headers = msg.headers or {}
    if tracing.tracer() is None:
        with bind_context(headers) as bound:
            yield bound
        return
    attributes = _attributes(msg.subject, "process", "process", len(msg.data))
    if consumer_group is not None:
        attributes["messaging.consumer.group.name"] = consumer_group
    with tracing.span(
        f"process {msg.subject}",
        kind=tracing.SpanKind.CONSUMER,
        attributes=attributes,
        # No valid traceparent: a new trace, never the span of whatever ran before.
        parent=tracing.remote_parent(_header(headers, TRACEPARENT_HEADER))
        or otel_context.Context(),
        request_id=sane_request_id(_header(headers, REQUEST_ID_HEADER)),
    ) as span:
        if span is None:  # not sampled: the cheap context, as with tracing off
            with bind_context(headers) as bound:
                yield bound
            return
        traced = current_context()
        assert traced is not None  # bound by tracing.span
        yield traced


def start_delivery(msg: Msg) -> Span | None:
    """Start the span of handing ``msg`` on; the caller ends it (None with tracing off).

    A trace of its own per delivery, linked to the message's creation context
    (kept whenever that trace was) and to the span current now (the stream's
    request): a stream lasts hours, and its deliveries would otherwise wait in a
    trace whose root is exported only when the stream ends. Not made current:
    the caller is an async generator that yields while the span is open, and a
    context attached across a ``yield`` leaks into its consumer.
    """
    tracer = tracing.tracer()
    if tracer is None:
        return None
    headers = msg.headers or {}
    links = [
        link
        for link in (
            tracing.link_to(_header(headers, TRACEPARENT_HEADER)),
            tracing.link_to_current(),
        )
        if link is not None
    ]
    if not tracing.keep_new_trace(links):
        return None
    attributes = _attributes(msg.subject, "process", "process", len(msg.data))
    request_id = sane_request_id(_header(headers, REQUEST_ID_HEADER))
    if request_id is not None:
        attributes[tracing.REQUEST_ID_ATTRIBUTE] = request_id
    return tracer.start_span(
        f"process {msg.subject}",
        context=otel_context.Context(),
        kind=tracing.SpanKind.CONSUMER,
        attributes=attributes,
        links=links,
    )
