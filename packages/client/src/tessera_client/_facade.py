"""What the generated facade is made of: a request built once, performed by either core.

Each operation of `_generated` is one method that builds a `Call` (the
operation, its arguments, and what the answer becomes). `performed` turns that
method into the one the client shows: awaited on a facade over an `AsyncCore`,
blocking on one over a `SyncCore`, with the same parameters, name and
docstring. So the async and the blocking client cannot differ in what they send.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Concatenate, Generic, ParamSpec, Self, TypeVar, overload

from pydantic import BaseModel
from tessera_contracts import Operation

from tessera_client._core import AsyncCore, SyncCore
from tessera_client._request import Arguments, Reply

P = ParamSpec("P")
R = TypeVar("R")
M = TypeVar("M", bound=BaseModel)
C = TypeVar("C", AsyncCore, SyncCore)


@dataclass(frozen=True, slots=True)
class Call(Generic[R]):
    """One request of an operation, and what its answer becomes."""

    operation: Operation
    arguments: Arguments
    answer: Callable[[Reply], R]


def returning(model: type[M]) -> Callable[[Reply], M]:
    """The answer of an operation with a response model: the body, as that model."""

    def answer(reply: Reply) -> M:
        if not isinstance(reply.value, model):
            raise TypeError(f"expected a {model.__name__} body, got {type(reply.value).__name__}")
        return reply.value

    return answer


def no_content(reply: Reply) -> None:
    """The answer of an operation without a response model (204): nothing."""
    return None


class Facade(Generic[C]):
    """The operations of one version over a core (`client.v1`, `client.v2`)."""

    def __init__(self, core: C) -> None:
        self._core: C = core


class performed(Generic[P, R]):
    """Make a `Call`-building method the method that performs it, async or blocking."""

    def __init__(self, build: Callable[Concatenate[Any, P], Call[R]]) -> None:
        self._build = build
        self.__doc__ = build.__doc__
        self.__name__ = build.__name__
        # The parameters the caller passes: those of `build` after `self`.
        parameters = list(inspect.signature(build).parameters.values())[1:]
        self._signature = inspect.Signature(parameters)

    @overload
    def __get__(self, facade: None, owner: type[Any]) -> Self: ...

    @overload
    def __get__(
        self, facade: Facade[AsyncCore], owner: type[Any]
    ) -> Callable[P, Coroutine[Any, Any, R]]: ...

    @overload
    def __get__(self, facade: Facade[SyncCore], owner: type[Any]) -> Callable[P, R]: ...

    def __get__(self, facade: Facade[Any] | None, owner: type[Any]) -> Any:
        if facade is None:
            return self
        core = facade._core
        build = self._build
        method: Callable[..., Any]
        if isinstance(core, AsyncCore):

            async def awaited(*args: Any, **kwargs: Any) -> Any:
                call = build(facade, *args, **kwargs)
                return call.answer(await core.send(call.operation, **call.arguments))

            method = awaited
        else:

            def blocking(*args: Any, **kwargs: Any) -> Any:
                call = build(facade, *args, **kwargs)
                return call.answer(core.send(call.operation, **call.arguments))

            method = blocking
        method.__name__ = self.__name__
        method.__qualname__ = f"{type(facade).__qualname__}.{self.__name__}"
        method.__doc__ = self.__doc__
        method.__signature__ = self._signature  # type: ignore[union-attr]
        return method
