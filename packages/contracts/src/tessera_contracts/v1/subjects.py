"""v1 NATS subjects, each declared once with its payload (and reply) model."""

from __future__ import annotations

from typing import Any, Final, TypeVar

from pydantic import TypeAdapter

from tessera_contracts._base import RequestSubject, Subject
from tessera_contracts.events import CloudEvent, new_event
from tessera_contracts.v1 import events
from tessera_contracts.v1.inference import PredictionRequest, PredictionResponse

# Bound to the union, so `new_catalog_event(ProductCreated(...))` is typed
# `CloudEvent[ProductCreated]`, which `PRODUCT_CREATED.encode` accepts.
E = TypeVar(
    "E",
    bound=events.ProductCreated
    | events.ProductUpdated
    | events.ProductDeleted
    | events.ReviewCreated
    | events.InventoryUpdated,
)

PREDICT: Final = RequestSubject("inference.v1.predict", PredictionRequest, PredictionResponse)
"""Request-reply: classify one sample (the inference service answers in a queue group)."""

CATALOG_STREAM: Final = "CATALOG"
"""JetStream stream holding every catalog event."""
CATALOG_SUBJECTS: Final = "catalog.v1.>"
"""Subjects of `CATALOG_STREAM`."""
CATALOG_SOURCE: Final = "/tessera/catalog"
"""CloudEvents `source` of every catalog event."""

PRODUCT_CREATED: Final = Subject("catalog.v1.product.created", CloudEvent[events.ProductCreated])
PRODUCT_UPDATED: Final = Subject("catalog.v1.product.updated", CloudEvent[events.ProductUpdated])
PRODUCT_DELETED: Final = Subject("catalog.v1.product.deleted", CloudEvent[events.ProductDeleted])
REVIEW_CREATED: Final = Subject("catalog.v1.review.created", CloudEvent[events.ReviewCreated])
INVENTORY_UPDATED: Final = Subject(
    "catalog.v1.inventory.updated", CloudEvent[events.InventoryUpdated]
)

CATALOG_EVENT_SUBJECTS: Final[tuple[Subject[Any], ...]] = (
    PRODUCT_CREATED,
    PRODUCT_UPDATED,
    PRODUCT_DELETED,
    REVIEW_CREATED,
    INVENTORY_UPDATED,
)
"""Every subject of `CATALOG_STREAM`."""

CATALOG_EVENT_ADAPTER: Final = TypeAdapter(CloudEvent[events.CatalogEvent])
"""Decodes any event of `CATALOG_STREAM`: `CATALOG_EVENT_ADAPTER.validate_json(msg.data)`."""


def catalog_subject(data: events.CatalogEvent) -> str:
    """The subject an event's data is published on.

    Args:
        data: The event data.

    Returns:
        `catalog.v1.<kind>`, e.g. `catalog.v1.product.created`.
    """
    return f"catalog.v1.{data.kind}"


def new_catalog_event(data: E, subject: str | None = None) -> CloudEvent[E]:
    """Wrap catalog event data in a new CloudEvent whose `type` is its subject.

    Args:
        data: The event data.
        subject: What the event is about, e.g. the product id.

    Returns:
        The envelope with a fresh id and the current UTC time; publish it on
        `catalog_subject(data)` with `event_headers(event)`.
    """
    return new_event(catalog_subject(data), CATALOG_SOURCE, data, subject)
