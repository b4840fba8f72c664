"""Catalog operations: each write is one transaction holding the change and its event."""
