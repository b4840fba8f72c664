"""The catalog operations both versions declare alike.

v1 and v2 serve products at the same paths with the same statuses, headers and
scopes; only the models (and so the examples) differ. Each version calls these
with its own models, so what a product operation is stays in one place.
"""

from __future__ import annotations

from typing import Any, Final, NamedTuple

from pydantic import BaseModel

from tessera_contracts.operations import (
    CATALOG,
    CATALOG_READ,
    CATALOG_WRITE,
    Answer,
    Method,
    Operation,
)
from tessera_contracts.parameters import (
    IdempotencyHeaders,
    IfMatchHeaders,
    IfNoneMatchHeaders,
    ProductPath,
)

PRODUCT_ETAG: Final = {"ETag": "The product's version, for If-Match and If-None-Match."}
PRODUCT_CREATED_HEADERS: Final = {"Location": "The new product's URL.", **PRODUCT_ETAG}
NOT_MODIFIED: Final = Answer(304, "Not Modified: the product still has the ETag you sent.")


def catalog_read(version: str, id: str, path: str, summary: str, **fields: Any) -> Operation:
    """A GET at `/{version}{path}` with scope `catalog:read`, callable anonymously."""
    return _catalog(version, id, "GET", path, summary, scope=CATALOG_READ, anonymous=True, **fields)


def catalog_write(
    version: str, id: str, method: Method, path: str, summary: str, **fields: Any
) -> Operation:
    """A catalog change at `/{version}{path}`: scope `catalog:write`."""
    return _catalog(version, id, method, path, summary, scope=CATALOG_WRITE, **fields)


def _catalog(
    version: str, id: str, method: Method, path: str, summary: str, **fields: Any
) -> Operation:
    # Owned by the catalog and tagged with its version unless said otherwise; a
    # `{product_id}` in a path is always a `ProductPath`.
    defaults: dict[str, Any] = {"owner": CATALOG, "tags": (f"catalog {version}",)}
    if "{product_id}" in path:
        defaults["path_params"] = ProductPath
    return Operation(
        id=id,
        version=version,
        method=method,
        path=f"/{version}{path}",
        summary=summary,
        **(defaults | fields),
    )


def _create_product(
    version: str, body: type[BaseModel], example: dict[str, Any], response: type[BaseModel]
) -> Operation:
    return catalog_write(
        version,
        "create_product",
        "POST",
        "/products",
        "Create a product; 201 with Location and ETag. Idempotent with an Idempotency-Key.",
        headers=IdempotencyHeaders,
        body=body,
        body_examples={"a lamp": example},
        status=201,
        response=response,
        response_headers=PRODUCT_CREATED_HEADERS,
        errors=(409, 422),
    )


def _get_product(version: str, response: type[BaseModel]) -> Operation:
    return catalog_read(
        version,
        "get_product",
        "/products/{product_id}",
        "Get one product, with its ETag (If-None-Match gives 304 when unchanged).",
        headers=IfNoneMatchHeaders,
        response=response,
        response_headers=PRODUCT_ETAG,
        errors=(404, 422),
        answers=(NOT_MODIFIED,),
    )


def _update_product(
    version: str, body: type[BaseModel], example: dict[str, Any], response: type[BaseModel]
) -> Operation:
    return catalog_write(
        version,
        "update_product",
        "PATCH",
        "/products/{product_id}",
        "Change some fields; with If-Match, only if the product is still at that ETag (else 412).",
        headers=IfMatchHeaders,
        body=body,
        body_examples={"new price": example},
        response=response,
        response_headers=PRODUCT_ETAG,
        errors=(404, 409, 412, 422),
    )


def _delete_product(version: str) -> Operation:
    return catalog_write(
        version,
        "delete_product",
        "DELETE",
        "/products/{product_id}",
        "Delete a product with its reviews and inventory; If-Match is honoured.",
        headers=IfMatchHeaders,
        status=204,
        errors=(404, 412, 422),
    )


def _get_enriched_product(version: str, summary: str, response: type[BaseModel]) -> Operation:
    return catalog_read(
        version,
        "get_enriched_product",
        "/products/{product_id}/enriched",
        summary,
        description="A part that fails or is slow is left out and named in `degraded`.",
        response=response,
        errors=(404, 422, 503),
    )


class ProductOperations(NamedTuple):
    """The product operations of one version, in the order of its table."""

    create: Operation
    get: Operation
    update: Operation
    delete: Operation
    get_enriched: Operation


def product_operations(
    version: str,
    *,
    product: type[BaseModel],
    create: tuple[type[BaseModel], dict[str, Any]],
    update: tuple[type[BaseModel], dict[str, Any]],
    enriched: tuple[type[BaseModel], str],
) -> ProductOperations:
    """The version's product operations from its models: `create` and `update` are the
    body model with an example, `enriched` the response model with its summary."""
    return ProductOperations(
        _create_product(version, *create, product),
        _get_product(version, product),
        _update_product(version, *update, product),
        _delete_product(version),
        _get_enriched_product(version, enriched[1], enriched[0]),
    )
