"""The operation-level breaking-change rules, on deliberately broken (and compatible) tables."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import replace
from pathlib import Path
from typing import Any, Literal

import pytest
from pydantic import BaseModel, Field, create_model
from tessera_contracts import Contract, snapshots, v1, v2
from tessera_contracts.events import CloudEvent
from tessera_contracts.operations import CATALOG_WRITE, JSON, Operation
from tessera_contracts.operations_compat import compare_operations
from tessera_contracts.parameters import IdempotencyHeaders, Limit, PageQuery
from tessera_contracts.v1.operations import NOT_MODIFIED

COMMITTED = Path(__file__).parents[1] / "schemas"
Edit = Callable[[Path], AbstractContextManager[dict[str, Any]]]
ALL_OPERATIONS = (*v1.OPERATIONS, *v2.OPERATIONS)


def changes(old: Operation, new: Operation | None) -> list[str]:
    """The breaking changes from `old` (as released) to `new`, as reports print them."""
    new_document = snapshots.operation_document(new) if new is not None else None
    found = compare_operations(snapshots.operation_document(old), new_document, name=old.key)
    return [str(change) for change in found]


def with_query(operation: Operation, **fields: object) -> Operation:
    """`operation` with its query model extended or overridden by `fields`."""
    assert operation.query is not None
    query = create_model(  # type: ignore[call-overload]
        "ChangedQuery", __base__=operation.query, **fields
    )
    return replace(operation, query=query)


@pytest.mark.parametrize("operation", ALL_OPERATIONS, ids=lambda o: o.key)
def test_committed_form_of_every_operation_compares_equal(operation: Operation) -> None:
    document = snapshots.operation_document(operation)
    committed = json.loads(snapshots.render(document))

    assert compare_operations(committed, document, name=operation.key) == []


class TestDocument:
    def test_parameters_have_wire_name_requiredness_and_constraints(self) -> None:
        parameters = snapshots.operation_document(v1.CREATE_REVIEW)["parameters"]

        assert sorted(parameters) == ["header.Idempotency-Key", "path.product_id"]
        header = parameters["header.Idempotency-Key"]
        assert (header["in"], header["name"], header["required"]) == (
            "header",
            "Idempotency-Key",
            False,
        )
        assert header["schema"]["anyOf"][0]["maxLength"] == 255
        assert parameters["path.product_id"]["required"] is True
        assert parameters["path.product_id"]["schema"]["format"] == "uuid"

    def test_models_with_a_snapshot_are_named(self) -> None:
        document = snapshots.operation_document(v1.CREATE_REVIEW)

        assert document["body"] == {"media_type": JSON, "model": "v1.ReviewCreate"}
        assert document["success"]["model"] == "v1.Review"
        assert document["errors"]["model"] == "Problem"
        assert snapshots.operation_document(v2.INFER)["errors"]["model"] == (
            "v2.InferenceErrorResponse"
        )

    def test_stream_item_without_a_snapshot_is_inline(self) -> None:
        success = snapshots.operation_document(v1.EVENTS)["success"]

        assert success["media_type"] == "text/event-stream"
        assert success["model"] is None
        assert success["stream"]["item"]["schema"]["validation"]["title"].startswith("CloudEvent[")
        assert "catalog.v1.product.created" in success["stream"]["event_types"]

    def test_retry_policy_is_the_derived_one(self) -> None:
        assert snapshots.operation_document(v1.CREATE_PRODUCT)["retry"] == "with_idempotency_key"
        assert snapshots.operation_document(v1.GET_PRODUCT)["retry"] == "always"


class TestBreaking:
    def test_operation_removed(self) -> None:
        assert changes(v1.GET_PRODUCT, None) == [
            "v1.get_product: operation removed: no longer in the table"
        ]

    def test_method_and_path_changed(self) -> None:
        # PUT, like GET, may be retried: only method and path change.
        moved = replace(v1.GET_PRODUCT, method="PUT", path="/v1/items/{product_id}")

        assert changes(v1.GET_PRODUCT, moved) == [
            "v1.get_product: method changed: GET -> PUT",
            "v1.get_product: path changed: /v1/products/{product_id} -> /v1/items/{product_id}",
        ]

    def test_optional_parameter_became_required(self) -> None:
        new = with_query(v1.LIST_PRODUCTS, q=(str, Field(min_length=1, max_length=200)))

        assert "v1.list_products: parameter query.q: parameter became required: was optional" in (
            changes(v1.LIST_PRODUCTS, new)
        )

    def test_new_required_query_parameter(self) -> None:
        new = with_query(v1.LIST_PRODUCTS, tenant=(str, ...))

        assert changes(v1.LIST_PRODUCTS, new) == [
            "v1.list_products: parameter query.tenant: new required parameter: "
            "old clients do not send it"
        ]

    def test_new_required_header_is_named_as_on_the_wire(self) -> None:
        class TenantHeaders(IdempotencyHeaders):
            tenant: str = Field(alias="X-Tenant")

        new = replace(v1.CREATE_PRODUCT, headers=TenantHeaders)

        assert changes(v1.CREATE_PRODUCT, new) == [
            "v1.create_product: parameter header.X-Tenant: new required parameter: "
            "old clients do not send it"
        ]

    def test_parameter_removed(self) -> None:
        class LimitOnly(Contract):
            limit: Limit = 20

        new = replace(v1.LIST_REVIEWS, query=LimitOnly)

        assert changes(v1.LIST_REVIEWS, new) == [
            "v1.list_reviews: parameter query.offset: parameter removed: clients still send it"
        ]

    def test_parameter_narrowed(self) -> None:
        new = with_query(v1.LIST_PRODUCTS, limit=(int, Field(default=20, ge=1, le=100)))

        assert changes(v1.LIST_PRODUCTS, new) == [
            "v1.list_products: parameter query.limit: constraint narrowed: maximum none -> 100"
        ]

    def test_header_narrowed(self) -> None:
        class ShortKey(Contract):
            idempotency_key: str | None = Field(
                default=None,
                alias="Idempotency-Key",
                min_length=1,
                max_length=128,
                pattern=r"^[\x21-\x7e]+$",
            )

        new = replace(v2.CREATE_PRODUCT, headers=ShortKey)

        assert changes(v2.CREATE_PRODUCT, new) == [
            "v2.create_product: parameter header.Idempotency-Key: constraint narrowed: "
            "maxLength 255 -> 128"
        ]

    def test_parameter_restricted_to_values(self) -> None:
        new = with_query(v1.LIST_PRODUCTS, offset=(Literal[0], 0))

        assert changes(v1.LIST_PRODUCTS, new) == [
            "v1.list_products: parameter query.offset: constraint narrowed: now restricted to [0]",
        ]

    def test_parameter_type_changed(self) -> None:
        new = with_query(v1.LIST_PRODUCTS, offset=(str, "0"))

        assert "v1.list_products: parameter query.offset: type changed: integer -> string" in (
            changes(v1.LIST_PRODUCTS, new)
        )

    def test_enum_value_removed(self) -> None:
        old = with_query(v1.LIST_PRODUCTS, sort=(Literal["oldest", "newest"], "oldest"))
        new = with_query(v1.LIST_PRODUCTS, sort=(Literal["oldest"], "oldest"))

        assert changes(old, new) == [
            "v1.list_products: parameter query.sort: enum value removed: 'newest'"
        ]

    def test_parameter_default_changed(self) -> None:
        new = with_query(v1.LIST_PRODUCTS, limit=(int, Field(default=50, ge=1)))

        assert changes(v1.LIST_PRODUCTS, new) == [
            "v1.list_products: parameter query.limit: default changed: 20 -> 50"
        ]

    def test_request_body_changed(self) -> None:
        assert changes(v1.CREATE_REVIEW, replace(v1.CREATE_REVIEW, body=v1.ProductCreate)) == [
            "v1.create_review: request body changed: model v1.ReviewCreate -> v1.ProductCreate"
        ]
        assert changes(v1.SET_INVENTORY, replace(v1.SET_INVENTORY, body=None)) == [
            "v1.set_inventory: request body changed: model v1.InventoryUpdate -> none"
        ]

    def test_success_status_changed(self) -> None:
        assert changes(v1.CREATE_PRODUCT, replace(v1.CREATE_PRODUCT, status=200)) == [
            "v1.create_product: success status changed: 201 -> 200"
        ]

    def test_response_model_changed(self) -> None:
        new = replace(v1.GET_PRODUCT, response=v1.EnrichedProduct)

        assert changes(v1.GET_PRODUCT, new) == [
            "v1.get_product: response changed: model v1.Product -> v1.EnrichedProduct"
        ]

    def test_response_media_type_changed(self) -> None:
        new = replace(v1.EVENTS, stream=None, response=v1.ProductPage)

        assert changes(v1.EVENTS, new) == [
            "v1.events: response changed: media type text/event-stream -> application/json",
            "v1.events: response changed: model none -> v1.ProductPage",
        ]

    def test_stream_item_is_compared_with_the_model_rules(self) -> None:
        assert v1.EVENTS.stream is not None
        stream = replace(v1.EVENTS.stream, item=CloudEvent[v1.ProductCreated])

        found = changes(v1.EVENTS, replace(v1.EVENTS, stream=stream))

        assert found
        assert all(change.startswith("v1.events: stream item.data") for change in found)

    def test_event_type_removed(self) -> None:
        assert v1.EVENTS.stream is not None
        types = tuple(t for t in v1.EVENTS.stream.event_types if t != "catalog.v1.review.created")
        stream = replace(v1.EVENTS.stream, event_types=types)

        assert changes(v1.EVENTS, replace(v1.EVENTS, stream=stream)) == [
            "v1.events: event type removed: catalog.v1.review.created"
        ]

    def test_response_header_removed(self) -> None:
        assert changes(v1.GET_PRODUCT, replace(v1.GET_PRODUCT, response_headers={})) == [
            "v1.get_product: response header removed: ETag"
        ]

    def test_documented_statuses_removed(self) -> None:
        new = replace(v1.GET_PRODUCT, errors=(422,), answers=())

        assert changes(v1.GET_PRODUCT, new) == [
            "v1.get_product: documented status removed: 404 (an error)",
            "v1.get_product: documented status removed: 304 (an answer)",
        ]

    def test_error_body_changed(self) -> None:
        new = replace(v1.GET_PRODUCT, error_model=v2.InferenceErrorResponse, error_media_type=JSON)

        assert changes(v1.GET_PRODUCT, new) == [
            "v1.get_product: error body changed: media type application/problem+json -> "
            "application/json",
            "v1.get_product: error body changed: model Problem -> v2.InferenceErrorResponse",
        ]

    def test_answer_model_changed(self) -> None:
        new = replace(v2.SERVER_READY, answers=(replace(v2.SERVER_READY.answers[0], model=None),))

        assert changes(v2.SERVER_READY, new) == [
            "v2.server_ready: answer 503: response changed: model v2.ServerReadyResponse -> none"
        ]

    def test_validation_status_changed(self) -> None:
        new = replace(v1.PREDICT_OPERATION, validation_status=400)

        assert changes(v1.PREDICT_OPERATION, new) == [
            "v1.predict: validation status changed: 422 -> 400"
        ]

    def test_scope_changed(self) -> None:
        assert changes(v1.GET_PRODUCT, replace(v1.GET_PRODUCT, scope=CATALOG_WRITE)) == [
            "v1.get_product: scope changed: catalog:read -> catalog:write"
        ]

    @pytest.mark.parametrize(
        ("old", "retry", "expected"),
        [
            (v1.PREDICT_OPERATION, None, "v1.predict: retry policy changed: always -> never"),
            (
                v1.CREATE_PRODUCT,
                "always",
                "v1.create_product: retry policy changed: with_idempotency_key -> always",
            ),
            (v1.GET_PRODUCT, "never", "v1.get_product: retry policy changed: always -> never"),
        ],
    )
    def test_any_retry_policy_change(
        self, old: Operation, retry: Literal["always", "never"] | None, expected: str
    ) -> None:
        assert changes(old, replace(old, retry=retry)) == [expected]

    def test_anonymous_access_removed(self) -> None:
        assert changes(v1.GET_PRODUCT, replace(v1.GET_PRODUCT, anonymous=False)) == [
            "v1.get_product: anonymous access removed: callers now need a key"
        ]


class TestCompatible:
    def test_optional_query_parameter_added(self) -> None:
        new = with_query(v1.LIST_PRODUCTS, sort=(Literal["oldest", "newest"], "oldest"))

        assert changes(v1.LIST_PRODUCTS, new) == []

    def test_optional_header_added(self) -> None:
        class TraceHeaders(IdempotencyHeaders):
            trace: str | None = Field(default=None, alias="X-Trace")

        assert changes(v1.CREATE_PRODUCT, replace(v1.CREATE_PRODUCT, headers=TraceHeaders)) == []

    def test_parameter_widened(self) -> None:
        class Wider(Contract):
            offset: int | None = Field(default=0, ge=0)  # no maximum, and null accepted
            limit: int = Field(default=20, ge=0)

        assert changes(v1.LIST_REVIEWS, replace(v1.LIST_REVIEWS, query=Wider)) == []

    def test_pattern_dropped_and_enum_value_added(self) -> None:
        old = with_query(v1.LIST_PRODUCTS, sort=(Literal["oldest"], "oldest"))
        new = with_query(
            v1.LIST_PRODUCTS,
            sort=(Literal["oldest", "newest"], "oldest"),
            category=(str | None, Field(default=None, min_length=1, max_length=64)),
        )

        assert changes(old, new) == []

    def test_statuses_answers_headers_and_anonymous_added(self) -> None:
        new = replace(
            v1.UPDATE_PRODUCT,
            errors=(*v1.UPDATE_PRODUCT.errors, 429),
            answers=(NOT_MODIFIED,),
            response_headers={**v1.UPDATE_PRODUCT.response_headers, "Location": "Where."},
            anonymous=True,
        )

        assert changes(v1.UPDATE_PRODUCT, new) == []

    def test_documentation_and_owner_are_not_compared(self) -> None:
        new = replace(
            v1.GET_PRODUCT,
            summary="Reworded.",
            description="Longer.",
            tags=("other",),
            owner="gateway",
        )

        assert changes(v1.GET_PRODUCT, new) == []

    def test_same_query_model_under_another_class(self) -> None:
        copy: type[BaseModel] = create_model("PageQueryCopy", __base__=PageQuery)

        assert changes(v1.LIST_REVIEWS, replace(v1.LIST_REVIEWS, query=copy)) == []


class TestSnapshotCheck:
    """The committed operation snapshots, through `snapshots.check` as the test suite runs it."""

    def test_every_operation_has_a_committed_snapshot(self) -> None:
        committed = {p.name for p in (COMMITTED / "operations").glob("*.json")}

        assert committed == {f"{o.key}.json" for o in ALL_OPERATIONS}

    def test_a_new_operation_is_missing_not_breaking(self, schemas: Path) -> None:
        # As if v1.get_inventory were added after the snapshots were taken.
        (schemas / "operations/v1.get_inventory.json").unlink()

        report = snapshots.check(schemas)

        assert report.breaking == []
        assert report.missing == ["operations/v1.get_inventory.json"]

    def test_a_snapshot_without_an_operation_is_breaking(self, schemas: Path) -> None:
        shutil.copy(
            schemas / "operations/v1.get_product.json", schemas / "operations/v1.get_legacy.json"
        )

        report = snapshots.check(schemas)

        assert [str(c) for c in report.breaking] == [
            "v1.get_legacy: operation removed: no longer in the table"
        ]
        assert report.stale == ["operations/v1.get_legacy.json"]

    def test_a_changed_table_breaks_the_committed_snapshot(self, schemas: Path, edit: Edit) -> None:
        # As if the released v1.list_products had answered 400 and capped `limit`:
        # the code dropping the 400 breaks, lifting the cap does not (a parameter
        # may accept more).
        with edit(schemas / "operations/v1.list_products.json") as document:
            document["errors"]["statuses"].append(400)
            document["parameters"]["query.limit"]["schema"]["maximum"] = 1000

        report = snapshots.check(schemas)

        assert [str(c) for c in report.breaking] == [
            "v1.list_products: documented status removed: 400 (an error)"
        ]
        assert report.outdated == ["operations/v1.list_products.json"]
