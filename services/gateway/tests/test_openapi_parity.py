"""The gateway documents each proxied operation exactly as the service that owns it.

Both documents come from the same `Operation`, so for every proxied operation
they must agree on its parameters (name, location, required-ness and schema
with its constraints), its request body and its responses (statuses and
schemas), apart from what the gateway adds of its own (401, 403, 413, 429 and
502-504 problems, and 503, which a service behind it may answer too). The two
documents name their components differently (`v1.Product` here,
`tessera_contracts__v1__catalog__Product` there), so schemas are compared with
every `$ref` resolved in its own document.

The documents are built from the app objects (`openapi()` needs no lifespan,
so nothing is connected).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import PostgresDsn
from tessera_catalog.app import create_app as create_catalog
from tessera_catalog.settings import Settings as CatalogSettings
from tessera_contracts.operations import CATALOG, INFERENCE, Operation
from tessera_gateway.api.proxied import GATEWAY_ERRORS, proxied_operations
from tessera_gateway.app import create_app as create_gateway
from tessera_gateway.settings import Settings
from tessera_inference.app import create_app as create_inference
from tessera_inference.settings import Settings as InferenceSettings
from tessera_stack.testing import Json

_REF = "#/components/schemas/"
_GATEWAY_OWN = frozenset(str(status) for status in GATEWAY_ERRORS)


def _documents() -> dict[str, Json]:
    # Never connected: only the apps' routes are read.
    catalog = create_catalog(
        CatalogSettings(database_url=PostgresDsn("postgresql://u@127.0.0.1:9/x"))
    )
    return {
        "gateway": create_gateway(Settings()).openapi(),
        CATALOG: catalog.openapi(),
        INFERENCE: create_inference(InferenceSettings(nats_enabled=False)).openapi(),
    }


DOCUMENTS = _documents()


def resolve(node: Any, document: Json, seen: tuple[str, ...] = ()) -> Any:
    """`node` with every `$ref` into `document`'s components replaced by its schema
    (a reference back into a schema being resolved is left as its name)."""
    if isinstance(node, list):
        return [resolve(item, document, seen) for item in node]
    if not isinstance(node, dict):
        return node
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith(_REF):
        name = ref.removeprefix(_REF)
        if name in seen:
            return {"$ref": f"(recursive) {name}"}
        target = document["components"]["schemas"][name]
        rest = {key: value for key, value in node.items() if key != "$ref"}
        return resolve(target, document, (*seen, name)) | resolve(rest, document, seen)
    return {key: resolve(value, document, seen) for key, value in node.items()}


def _parameters(operation: Json, document: Json) -> Json:
    return {
        f"{parameter['in']} {parameter['name']}": {
            "required": parameter.get("required", False),
            "schema": resolve(parameter.get("schema"), document),
        }
        for parameter in operation.get("parameters", [])
    }


def _content(entry: Json, document: Json) -> Json:
    """Each media type's schema (`schema`, or `itemSchema` of an event stream)."""
    return {
        media_type: {
            key: resolve(part[key], document) for key in ("schema", "itemSchema") if key in part
        }
        for media_type, part in entry.get("content", {}).items()
    }


def _request_body(operation: Json, document: Json) -> Json | None:
    body = operation.get("requestBody")
    if body is None:
        return None
    return {"required": body.get("required", False), "content": _content(body, document)}


def _responses(operation: Json, document: Json) -> Json:
    return {
        status: {
            "content": _content(response, document),
            "headers": sorted(response.get("headers", {})),
        }
        for status, response in operation.get("responses", {}).items()
        if status not in _GATEWAY_OWN
    }


def _described(operation: Operation, source: str) -> Json:
    document = DOCUMENTS[source]
    item = document["paths"].get(operation.path, {}).get(operation.method.lower())
    if item is None:
        pytest.fail(
            f"{operation.key}: {source} does not document {operation.method} {operation.path}"
        )
    return {
        "parameters": _parameters(item, document),
        "request body": _request_body(item, document),
        "responses": _responses(item, document),
    }


def _differences(part: str, gateway: Any, service: Any) -> Iterator[str]:
    """One line per differing entry (a parameter, a status) of `part`."""
    if isinstance(gateway, dict) and isinstance(service, dict) and part != "request body":
        for name in sorted(gateway.keys() | service.keys()):
            if gateway.get(name) != service.get(name):
                yield (
                    f"{part} {name}:\n    gateway: {_dump(gateway.get(name))}\n"
                    f"    service: {_dump(service.get(name))}"
                )
    elif gateway != service:
        yield f"{part}:\n    gateway: {_dump(gateway)}\n    service: {_dump(service)}"


def _dump(value: Any) -> str:
    return "(absent)" if value is None else json.dumps(value, sort_keys=True)


@pytest.mark.parametrize("operation", proxied_operations(), ids=lambda op: op.key)
def test_gateway_documents_the_operation_as_its_owner(operation: Operation) -> None:
    gateway = _described(operation, "gateway")
    service = _described(operation, operation.owner)

    mismatches = [
        line for part in gateway for line in _differences(part, gateway[part], service[part])
    ]

    assert not mismatches, f"{operation.key} ({operation.owner}):\n" + "\n".join(mismatches)


def test_the_comparison_sees_a_difference() -> None:
    # A constraint the service does not share is reported, and a $ref is compared
    # by the schema it names, not by its name.
    gateway: Json = {"components": {"schemas": {"v1.P": {"type": "integer", "minimum": 1}}}}
    service: Json = {"components": {"schemas": {"long__P": {"type": "integer"}}}}

    same_name = resolve({"$ref": _REF + "v1.P"}, gateway)
    other = resolve({"$ref": _REF + "long__P"}, service)

    assert same_name == {"type": "integer", "minimum": 1}
    assert list(_differences("parameters", {"query n": same_name}, {"query n": other}))
    assert not list(_differences("parameters", {"query n": other}, {"query n": dict(other)}))
