"""v1 catalog events: the `data` of the CloudEvents on stream `CATALOG`.

Each `kind` is the subject name without its `catalog.v1.` prefix, so a reader
of the whole stream tells events apart by `data.kind` (or by the envelope `type`).
"""

from __future__ import annotations

from typing import Annotated, Literal, Union
from uuid import UUID

from pydantic import Field

from tessera_contracts._base import Contract
from tessera_contracts._types import Sku
from tessera_contracts.v1.catalog import Inventory, Product, Review


class ProductCreated(Contract):
    """A product was added to the catalog."""

    kind: Literal["product.created"] = "product.created"
    """Discriminator of the catalog event union."""
    product: Product
    """The product as created."""


class ProductUpdated(Contract):
    """A product changed."""

    kind: Literal["product.updated"] = "product.updated"
    """Discriminator of the catalog event union."""
    product: Product
    """The product after the change (its `version` tells the order)."""


class ProductDeleted(Contract):
    """A product was removed, with its reviews and inventory."""

    kind: Literal["product.deleted"] = "product.deleted"
    """Discriminator of the catalog event union."""
    product_id: UUID
    """Identifier of the removed product."""
    sku: Sku
    """Stock keeping unit the product had."""


class ReviewCreated(Contract):
    """A review was posted."""

    kind: Literal["review.created"] = "review.created"
    """Discriminator of the catalog event union."""
    review: Review
    """The new review."""


class InventoryUpdated(Contract):
    """A product's stock changed."""

    kind: Literal["inventory.updated"] = "inventory.updated"
    """Discriminator of the catalog event union."""
    inventory: Inventory
    """The stock after the change."""


# Union[...] rather than `|`: the alias is also a runtime value for TypeAdapter.
CatalogEvent = Annotated[
    Union[ProductCreated, ProductUpdated, ProductDeleted, ReviewCreated, InventoryUpdated],  # noqa: UP007
    Field(discriminator="kind"),
]
"""The `data` of any event on stream `CATALOG`, told apart by `kind`."""
