"""CloudEvents 1.0 JSON envelope of every event Tessera publishes."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Final, Generic, Literal, TypeVar
from uuid import uuid4

from pydantic import AwareDatetime, Field

from tessera_contracts._base import Contract

D = TypeVar("D")

CLOUDEVENTS_MEDIA_TYPE: Final = "application/cloudevents+json"
"""`Content-Type` of a structured-mode CloudEvent (the whole envelope is the body)."""
MSG_ID_HEADER: Final = "Nats-Msg-Id"
"""JetStream de-duplicates messages with the same value of this header."""


class CloudEvent(Contract, Generic[D]):
    """A CloudEvents 1.0 envelope in structured JSON mode, typed with its data."""

    specversion: Literal["1.0"] = "1.0"
    """CloudEvents specification version."""
    id: str = Field(min_length=1)
    """Unique per `source`; also the `Nats-Msg-Id` header, so redeliveries are dropped."""
    source: str = Field(min_length=1)
    """URI reference of the producer, e.g. `/tessera/catalog`."""
    type: str = Field(min_length=1)
    """Event type; Tessera uses the NATS subject name, e.g. `catalog.v1.product.created`."""
    time: AwareDatetime
    """When the change happened (RFC 3339, with offset)."""
    subject: str | None = None
    """What the event is about within the source, e.g. the product id."""
    datacontenttype: str = "application/json"
    """Media type of `data`."""
    data: D
    """The event payload."""


def new_event(type: str, source: str, data: D, subject: str | None = None) -> CloudEvent[D]:
    """Wrap data in a new envelope with a fresh id and the current UTC time.

    Args:
        type: Event type (the NATS subject name).
        source: URI reference of the producer.
        data: The payload.
        subject: What the event is about, e.g. an entity id.

    Returns:
        The envelope, ready to encode with the subject's `Subject.encode`.
    """
    return CloudEvent[D](
        id=str(uuid4()),
        source=source,
        type=type,
        time=datetime.now(UTC),
        subject=subject,
        data=data,
    )


def event_headers(event: CloudEvent[Any]) -> dict[str, str]:
    """NATS headers to publish an event with.

    Args:
        event: The envelope to publish.

    Returns:
        `Nats-Msg-Id` (the event id, for JetStream de-duplication) and the
        CloudEvents structured-mode `Content-Type`.
    """
    return {MSG_ID_HEADER: event.id, "Content-Type": CLOUDEVENTS_MEDIA_TYPE}
