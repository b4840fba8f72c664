"""FastAPI dependencies on the lifespan state, the same way in every service.

A service's lifespan yields its `State`; FastAPI copies it onto each request
(`request.state`). `from_state("products", Products)` is the dependency that
returns one entry of it, typed. Each call makes a new function: that function is
the dependency's identity, so tests replace it with
`app.dependency_overrides[get_products] = ...`.

The dependency is `async def`: FastAPI runs a plain `def` one on its thread pool,
a thread hop per request that costs more than the lookup.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from fastapi import Request

__all__ = ["from_state"]

T = TypeVar("T")


def from_state(name: str, kind: type[T]) -> Callable[[Request], Awaitable[T]]:
    """The dependency returning `request.state.<name>`, of type `kind`."""

    async def dependency(request: Request) -> T:
        value: T = getattr(request.state, name)
        return value

    dependency.__name__ = dependency.__qualname__ = f"get_{name}"
    dependency.__doc__ = f"The lifespan state's `{name}` ({kind.__name__})."
    return dependency
