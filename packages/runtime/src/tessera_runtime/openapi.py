"""OpenAPI that documents errors as they are served: ``application/problem+json`` Problem bodies."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable
from typing import Any

from fastapi.routing import iter_route_contexts
from pydantic.json_schema import models_json_schema
from starlette.routing import BaseRoute
from tessera_contracts.operations import EVENT_STREAM, Operation
from tessera_contracts.problem import PROBLEM_MEDIA_TYPE, Problem

from tessera_runtime.problems import status_title

__all__ = ["PROBLEM_RESPONSES", "operation_openapi", "problem_openapi", "problem_responses"]

_REF_PREFIX = "#/components/schemas/"
_JSON = "application/json"
# FastAPI's default 422 body, which our handler never sends.
_FASTAPI_VALIDATION_SCHEMAS = ("HTTPValidationError", "ValidationError")


def problem_responses(*status_codes: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` entries documenting Problem bodies for the given statuses.

    Example: ``@router.get("/{id}", responses=problem_responses(404, 503))``.
    """
    return {
        code: {
            "model": Problem,
            "description": status_title(code),
            "content": {PROBLEM_MEDIA_TYPE: {}},
        }
        for code in status_codes
    }


PROBLEM_RESPONSES: dict[int | str, dict[str, Any]] = problem_responses(404, 422, 500)
"""The errors most routes can return; pass as ``responses=PROBLEM_RESPONSES``."""


def _problem_ref(schemas: dict[str, Any]) -> str:
    if "Problem" not in schemas:
        _, defs = models_json_schema(
            [(Problem, "serialization")], ref_template=_REF_PREFIX + "{model}"
        )
        for name, schema in defs.get("$defs", {}).items():
            schemas.setdefault(name, schema)
    return _REF_PREFIX + "Problem"


def problem_openapi(schema: dict[str, Any]) -> dict[str, Any]:
    """Rewrite a FastAPI OpenAPI document so error responses are Problem bodies.

    * Every default 422 (``HTTPValidationError`` as ``application/json``) becomes a
      ``Problem`` as ``application/problem+json``, which is what the handler sends.
    * A ``responses=`` entry that declares ``application/problem+json`` with a
      ``model`` gets that model's schema under ``application/problem+json``
      (FastAPI files a ``model`` under the route's ``application/json``).
    * ``HTTPValidationError`` / ``ValidationError`` are dropped once unreferenced.

    Args:
        schema: the document from ``FastAPI.openapi()``; not modified.

    Returns:
        The rewritten copy.
    """
    # FastAPI shares dicts between the document and the routes' responses=
    # arguments; work on a copy so nothing outside this document changes.
    doc = copy.deepcopy(schema)
    schemas: dict[str, Any] = doc.setdefault("components", {}).setdefault("schemas", {})
    problem_ref = _problem_ref(schemas)
    validation_ref = _REF_PREFIX + "HTTPValidationError"

    for path_item in doc.get("paths", {}).values():
        for operation in path_item.values():
            if not isinstance(operation, dict):
                continue
            for response in operation.get("responses", {}).values():
                content = response.get("content")
                if not isinstance(content, dict):
                    continue
                json_schema = content.get(_JSON, {}).get("schema", {})
                if json_schema.get("$ref") == validation_ref:
                    del content[_JSON]
                    content[PROBLEM_MEDIA_TYPE] = {"schema": {"$ref": problem_ref}}
                elif PROBLEM_MEDIA_TYPE in content and "schema" not in content[PROBLEM_MEDIA_TYPE]:
                    moved = content.pop(_JSON, {}).get("schema")
                    content[PROBLEM_MEDIA_TYPE] = {"schema": moved or {"$ref": problem_ref}}

    for name in _FASTAPI_VALIDATION_SCHEMAS:
        # In this order: ValidationError is referenced by HTTPValidationError only.
        if name in schemas and f'"{_REF_PREFIX}{name}"' not in json.dumps(doc):
            del schemas[name]
    return doc


def operation_openapi(schema: dict[str, Any], routes: Iterable[BaseRoute]) -> dict[str, Any]:
    """Document each contract operation's answers as its declaration says, in place.

    * No 422 where invalid input is another status (the Open Inference Protocol's
      400): FastAPI adds one to every operation with parameters.
    * An event stream's success is `text/event-stream` with an `itemSchema`, one
      event as OpenAPI 3.2 describes Server-Sent Events (and FastAPI's own SSE
      routes document them): `id`, `event`, and `data` the JSON of one item.

    Args:
        schema: the document; changed in place.
        routes: the app's routes; those serving an `Operation` are documented.

    Returns:
        `schema`.
    """
    # Imported here: tessera_runtime.operations imports this module.
    from tessera_runtime.operations import OperationRoute

    # Included routers stay nested in FastAPI: their route contexts give each
    # original route with the path it is served at.
    for context in iter_route_contexts(list(routes)):
        route = context.original_route
        if not isinstance(route, OperationRoute) or not route.include_in_schema:
            continue
        operation = route.operation
        document = schema["paths"][context.path_format][operation.method.lower()]
        responses = document["responses"]
        if operation.validation_status != 422:
            responses.pop("422", None)
        if operation.stream is not None:
            success = responses[str(operation.status)]
            content = success.get("content", {})
            item_ref: dict[str, Any] = next(
                (part["schema"] for part in content.values() if "schema" in part), {}
            )
            success["content"] = {EVENT_STREAM: {"itemSchema": _event_schema(operation, item_ref)}}
    return schema


def _event_schema(operation: Operation, item_ref: dict[str, Any]) -> dict[str, Any]:
    assert operation.stream is not None
    return {
        "type": "object",
        # Every event has an `id`; one with nothing else only tells the client its
        # position (where the stream starts), which dispatches no message.
        "required": ["id"],
        "dependentRequired": {"data": ["event"]},
        "properties": {
            "id": {
                "type": "string",
                "pattern": "^[0-9]+$",
                "description": operation.stream.id_description,
            },
            "event": {"type": "string", "enum": list(operation.stream.event_types)},
            "data": {
                "type": "string",
                "contentMediaType": _JSON,
                "contentSchema": item_ref,
            },
            "retry": {"type": "integer", "minimum": 0},
        },
    }
