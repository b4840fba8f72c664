"""OpenAPI tidying: readable names for the contract models both API versions define."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI

# Pydantic names a model by its module path when two share a class name
# (`v1.Product` and `v2.Product`): `tessera_contracts__v1__catalog__Product`.
_LONG_NAME = re.compile(r"^tessera_contracts__(v\d+)__\w+?__(\w+)$")
_REF = "#/components/schemas/"


def tidy_schema_names(doc: dict[str, Any]) -> dict[str, Any]:
    """Rename `tessera_contracts__v1__catalog__Product` to `v1.Product`, refs included."""
    schemas: dict[str, Any] = doc.get("components", {}).get("schemas", {})
    renames = {}
    for name in schemas:
        match = _LONG_NAME.match(name)
        if match:
            renames[name] = f"{match.group(1)}.{match.group(2)}"
    if not renames:
        return doc
    text = json.dumps(doc)
    for old, new in renames.items():
        text = text.replace(f'"{_REF}{old}"', f'"{_REF}{new}"')
    tidied: dict[str, Any] = json.loads(text)
    tidied["components"]["schemas"] = {
        renames.get(name, name): schema for name, schema in tidied["components"]["schemas"].items()
    }
    return tidied


def install_tidy_openapi(app: FastAPI) -> None:
    build: Callable[[], dict[str, Any]] = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            # build() caches its own result there; ours replaces it.
            app.openapi_schema = tidy_schema_names(build())
        return app.openapi_schema

    # FastAPI's documented way to customise the schema: replace `app.openapi`.
    app.openapi = openapi  # type: ignore[method-assign]
