"""Tessera gateway: the public API in front of catalog and inference."""

__version__ = "0.1.0"
