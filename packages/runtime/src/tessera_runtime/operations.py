"""Serve a contract `Operation` with a handler: the route, its parameters and its docs.

A service writes what an operation *does*; everything the contract says (path,
path/query/header parameters with their constraints, body, statuses, errors,
documentation) comes from the `Operation`::

    router = APIRouter()

    @implements(router, v1.GET_PRODUCT)
    async def get_product(
        product_id: UUID, headers: IfNoneMatchHeaders, products: ProductsDep
    ) -> Response: ...

The handler names the parts of the request it uses: each path parameter by its
name, `query`, `headers` and `body`; each is validated by the operation's
model (the handler's annotation is for the type checker and must be that
model). Its other parameters are FastAPI dependencies (`Annotated[..., Depends()]`)
or `Request`. Every declared part is validated whether the handler uses it or
not, so a request is checked against the contract, never against a copy.

Path parameters are validated field by field (type and constraints of the path
model's fields): FastAPI has query and header models but no path models, so a
validator on a path model as a whole would not run here. The contract's path
models have none.
"""

from __future__ import annotations

import inspect
import weakref
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Annotated, Any, TypeVar, get_args, get_origin, get_type_hints

from fastapi import APIRouter, Body, Header, Path, Query, Request, Response, params
from fastapi.openapi.models import Example
from fastapi.routing import APIRoute
from starlette.background import BackgroundTasks
from tessera_contracts.operations import Operation

from tessera_runtime.openapi import problem_responses
from tessera_runtime.problems import status_title

__all__ = [
    "OperationRoute",
    "implements",
    "operation_endpoint",
    "operation_id",
    "operation_route_kwargs",
    "with_route_kwargs",
]

Handler = Callable[..., Awaitable[Any]]
H = TypeVar("H", bound=Handler)

_ROLES = ("query", "headers", "body")
_PLAIN_TYPES = (Request, Response, BackgroundTasks)


# Endpoint -> the operation it serves. Kept beside the endpoint rather than passed to
# the route, because `include_router` re-creates routes from their endpoints.
_SERVES: weakref.WeakKeyDictionary[Callable[..., Any], Operation] = weakref.WeakKeyDictionary()


class OperationRoute(APIRoute):
    """A route that serves a contract operation (`operation` says which)."""

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        operation = _SERVES.get(endpoint)
        if operation is None:
            raise TypeError(
                f"{getattr(endpoint, '__qualname__', endpoint)!r} at {path} serves no "
                "operation: build its endpoint with operation_endpoint (or implements)"
            )
        super().__init__(path, endpoint, **kwargs)
        self.operation = operation


def _declared_parameters(operation: Operation) -> dict[str, Any]:
    """The annotation, with its FastAPI marker, of every part the operation declares."""
    declared: dict[str, Any] = {}
    if operation.path_params is not None:
        for name, info in operation.path_params.model_fields.items():
            declared[name] = Annotated[
                (info.annotation, *info.metadata, Path(description=info.description))
            ]
    if operation.query is not None:
        declared["query"] = Annotated[operation.query, Query()]
    if operation.headers is not None:
        declared["headers"] = Annotated[operation.headers, Header()]
    if operation.body is not None:
        examples: dict[str, Example] = {
            name: {"value": value} for name, value in operation.body_examples.items()
        }
        declared["body"] = Annotated[operation.body, Body(openapi_examples=examples or None)]
    return declared


def _bare(annotation: Any) -> Any:
    return get_args(annotation)[0] if get_origin(annotation) is Annotated else annotation


def _fits(annotation: Any, expected: Any) -> bool:
    """Whether a handler's annotation of a part is the operation's model.

    A type variable is a generic handler that serves the same operation of several
    versions (`body: CreateT`): the type checker binds it per version, and here the
    operation's model must be within its bound or constraints.
    """
    bare = _bare(annotation)
    if not isinstance(bare, TypeVar):
        return bool(bare == expected)
    if bare.__constraints__:
        return expected in bare.__constraints__
    bound = bare.__bound__
    return bound is None or (isinstance(bound, type) and issubclass(expected, bound))


def _is_dependency(annotation: Any) -> bool:
    if get_origin(annotation) is Annotated:
        return any(isinstance(marker, params.Depends) for marker in annotation.__metadata__)
    return isinstance(annotation, type) and issubclass(annotation, _PLAIN_TYPES)


def operation_endpoint(operation: Operation, handler: Handler) -> Handler:
    """An endpoint for FastAPI whose signature is the operation's parts plus the
    handler's dependencies; it calls `handler` with the arguments it names.

    Raises:
        TypeError: the handler names a part the operation does not declare, annotates
            a part with another type than the operation's, or has a parameter that
            is neither a part nor a dependency.
    """
    declared = _declared_parameters(operation)
    hints = get_type_hints(handler, include_extras=True)
    handler_params = inspect.signature(handler).parameters
    dependencies: list[inspect.Parameter] = []
    for name, parameter in handler_params.items():
        annotation = hints.get(name, inspect.Parameter.empty)
        if name in declared:
            expected = _bare(declared[name])
            if annotation is not inspect.Parameter.empty and not _fits(annotation, expected):
                raise TypeError(
                    f"{handler.__qualname__}: {name} is {expected!r} in {operation.key}, "
                    f"not {annotation!r}"
                )
        elif name in _ROLES or not _is_dependency(annotation):
            raise TypeError(
                f"{handler.__qualname__}: {operation.key} declares no {name!r}, and it is "
                "not a dependency (Annotated[..., Depends(...)]) or Request"
            )
        else:
            dependencies.append(
                parameter.replace(kind=inspect.Parameter.KEYWORD_ONLY, annotation=annotation)
            )
    parts = [
        inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=annotation)
        for name, annotation in declared.items()
    ]
    passed = tuple(handler_params)
    endpoint: Handler
    if len(passed) == len(parts) + len(dependencies):

        async def endpoint(**arguments: Any) -> Any:
            return await handler(**arguments)

    else:

        async def endpoint(**arguments: Any) -> Any:
            return await handler(**{name: arguments[name] for name in passed})

    # FastAPI reads the parameters from here. No docstring: the operation's
    # description is the documentation, not the handler's.
    endpoint.__signature__ = inspect.Signature(parts + dependencies)  # type: ignore[attr-defined]
    endpoint.__name__ = handler.__name__
    endpoint.__qualname__ = handler.__qualname__
    _SERVES[endpoint] = operation
    return endpoint


def operation_id(operation: Operation) -> str:
    """The operation's OpenAPI `operationId`, `v1_get_product`; also its `operation`
    label in the runtime's per-operation metrics."""
    return f"{operation.version}_{operation.id}"


def _error_responses(operation: Operation, statuses: Iterable[int]) -> dict[int | str, Any]:
    return {
        status: {
            "model": operation.error_model,
            "description": operation.error_descriptions.get(status, status_title(status)),
            "content": {operation.error_media_type: {}},
        }
        for status in statuses
    }


def operation_route_kwargs(
    operation: Operation, *, extra_errors: Iterable[int] = ()
) -> dict[str, Any]:
    """`APIRoute` arguments of an operation (everything but the path and endpoint).

    Args:
        operation: the operation.
        extra_errors: problem statuses the server adds of its own (the gateway's
            401, 403, 429, ...), documented as `Problem` bodies.
    """
    own = set(operation.errors)
    responses: dict[int | str, Any] = problem_responses(*sorted(set(extra_errors) - own))
    responses |= _error_responses(operation, sorted(own))
    for answer in operation.answers:
        entry: dict[str, Any] = {"description": answer.description}
        if answer.model is not None:
            entry["model"] = answer.model
        responses[answer.status] = entry
    if operation.stream is not None:
        # Filed under the route's media type for now; `operation_openapi` rewrites it
        # into an event stream's `itemSchema`.
        responses[operation.status] = {
            "model": operation.stream.item,
            "description": operation.description or operation.summary,
        }
    kwargs: dict[str, Any] = {
        "methods": [operation.method],
        "status_code": operation.status,
        "response_model": operation.response,
        "responses": responses,
        "summary": operation.summary,
        "description": operation.description,
        "operation_id": operation_id(operation),
        "name": operation.key,
        "tags": list(operation.tags) or None,
    }
    if operation.response_headers:
        kwargs["openapi_extra"] = {
            "responses": {
                str(operation.status): {
                    "headers": {
                        name: {"description": text, "schema": {"type": "string"}}
                        for name, text in operation.response_headers.items()
                    }
                }
            }
        }
    return kwargs


def with_route_kwargs(contract: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    """The contract's route arguments plus a server's own (`response_class`,
    `dependencies`, `response_model_exclude_none`, ...); `openapi_extra` is merged.

    Raises:
        TypeError: `extra` would replace what the contract says (its statuses,
            responses, response model, documentation).
    """
    overlap = (contract.keys() & extra.keys()) - {"openapi_extra"}
    if overlap:
        raise TypeError(f"the operation's contract decides {sorted(overlap)}, not the server")
    merged = contract | dict(extra)
    if "openapi_extra" in contract and "openapi_extra" in extra:
        merged["openapi_extra"] = _merge(contract["openapi_extra"], extra["openapi_extra"])
    return merged


def _merge(base: Mapping[str, Any], more: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in more.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def implements(
    router: APIRouter,
    *operations: Operation,
    extra_errors: Iterable[int] = (),
    route_class: type[OperationRoute] = OperationRoute,
    **route_kwargs: Any,
) -> Callable[[H], H]:
    """Decorator: serve each of `operations` with the decorated handler on `router`.

    Args:
        router: where the routes go.
        operations: what the handler serves (the same operation of several
            versions, say).
        extra_errors: problem statuses this server answers besides the operation's.
        route_class: an `OperationRoute` subclass (one that renders errors its own way).
        route_kwargs: the server's own `APIRoute` arguments; the contract's parts
            cannot be overridden (see `with_route_kwargs`).
    """
    errors = tuple(extra_errors)

    def register(handler: H) -> H:
        for operation in operations:
            contract = operation_route_kwargs(operation, extra_errors=errors)
            router.add_api_route(
                operation.path,
                operation_endpoint(operation, handler),
                route_class_override=route_class,
                **with_route_kwargs(contract, route_kwargs),
            )
        return handler

    return register
