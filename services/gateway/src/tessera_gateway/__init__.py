"""Tessera gateway: the public API in front of catalog and inference."""

from importlib.metadata import version

__version__ = version("tessera-gateway")
