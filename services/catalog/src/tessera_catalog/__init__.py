"""Tessera catalog: products, reviews and inventory on PostgreSQL, events through an outbox."""

from importlib.metadata import version

__version__ = version("tessera-catalog")
