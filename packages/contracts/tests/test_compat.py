"""The breaking-change checker, on deliberately broken (and compatible) schemas."""

from __future__ import annotations

from typing import Annotated, Literal, Union

import pytest
from pydantic import BaseModel, Field
from tessera_contracts import Contract
from tessera_contracts.compat import BreakingChange, ChangeKind, compare_documents, compare_schemas


class Item(Contract):
    sku: str = Field(min_length=1, max_length=64, pattern=r"^[A-Z]+$")
    price: float = Field(ge=0)
    quantity: int = Field(default=0, ge=0, le=100)
    tags: list[str] = Field(default_factory=list, max_length=5)
    state: Literal["draft", "live"] = "draft"
    note: str | None = None


class Order(Contract):
    items: list[Item]
    extras: dict[str, int] = Field(default_factory=dict)


def changes(old: type[BaseModel], new: type[BaseModel]) -> list[tuple[str, ChangeKind]]:
    found = compare_schemas(old.model_json_schema(), new.model_json_schema(), model="v1.Item")
    return [(c.path, c.kind) for c in found]


def redeclared(field: str, annotation: object, *default: object) -> type[BaseModel]:
    """A subclass of `Item` that declares `field` again (with the default, if one is given)."""
    namespace: dict[str, object] = {"__annotations__": {field: annotation}}
    if default:
        namespace[field] = default[0]
    return type("NewItem", (Item,), namespace)


def test_identical_schema_has_no_changes() -> None:
    assert changes(Item, Item) == []


def test_added_optional_field_is_compatible() -> None:
    class NewItem(Item):
        colour: str | None = None
        """Added later."""

    assert changes(Item, NewItem) == []


def test_documentation_changes_are_compatible() -> None:
    class NewItem(Contract):
        sku: str = Field(
            min_length=1, max_length=64, pattern=r"^[A-Z]+$", description="Now documented."
        )
        price: float = Field(ge=0, title="Unit price", examples=[1.5])
        quantity: int = Field(default=0, ge=0, le=100)
        tags: list[str] = Field(default_factory=list, max_length=5)
        state: Literal["draft", "live"] = "draft"
        note: str | None = None

    assert changes(Item, NewItem) == []


def test_removed_field_is_breaking() -> None:
    class NewItem(Contract):
        sku: str = Field(min_length=1, max_length=64, pattern=r"^[A-Z]+$")
        quantity: int = Field(default=0, ge=0, le=100)
        tags: list[str] = Field(default_factory=list, max_length=5)
        state: Literal["draft", "live"] = "draft"
        note: str | None = None

    assert changes(Item, NewItem) == [("price", ChangeKind.FIELD_REMOVED)]


def test_optional_field_becoming_required_is_breaking() -> None:
    class NewItem(Item):
        quantity: int = Field(ge=0, le=100)

    assert ("quantity", ChangeKind.FIELD_BECAME_REQUIRED) in changes(Item, NewItem)


@pytest.mark.parametrize(
    ("field", "annotation_default", "expected_path"),
    [
        ("price", (float, Field(gt=0)), "price"),
        ("price", (float, Field(ge=1)), "price"),
        ("quantity", (int, Field(default=0, ge=0, le=99)), "quantity"),
        ("sku", (str, Field(min_length=2, max_length=64, pattern=r"^[A-Z]+$")), "sku"),
        ("sku", (str, Field(min_length=1, max_length=63, pattern=r"^[A-Z]+$")), "sku"),
        ("sku", (str, Field(min_length=1, max_length=64, pattern=r"^[A-Z]{2,}$")), "sku"),
        ("tags", (list[str], Field(default_factory=list, max_length=4)), "tags"),
        ("note", (str | None, Field(default=None, max_length=10)), "note"),
    ],
)
def test_narrowed_constraint_is_breaking(
    field: str, annotation_default: tuple[object, object], expected_path: str
) -> None:
    assert changes(Item, redeclared(field, *annotation_default)) == [
        (expected_path, ChangeKind.CONSTRAINT_NARROWED)
    ]


@pytest.mark.parametrize(
    ("field", "declaration", "kind"),
    [
        pytest.param("price", (str,), ChangeKind.TYPE_CHANGED, id="changed-type"),
        pytest.param("warehouse", (str,), ChangeKind.NEW_REQUIRED_FIELD, id="new-required-field"),
        pytest.param(
            "quantity",
            (int, Field(default=0, ge=0, le=1000)),
            ChangeKind.CONSTRAINT_WIDENED,
            id="widened-constraint-breaks-old-consumers",
        ),
        pytest.param(
            "quantity",
            (int, Field(default=1, ge=0, le=100)),
            ChangeKind.DEFAULT_CHANGED,
            id="changed-default",
        ),
        pytest.param(
            "state", (Literal["draft"], "draft"), ChangeKind.ENUM_VALUE_REMOVED, id="enum-removed"
        ),
        pytest.param(
            "state",
            (Literal["draft", "live", "archived"], "draft"),
            ChangeKind.ENUM_VALUE_ADDED,
            id="enum-added",
        ),
    ],
)
def test_a_redeclared_field_is_that_one_change(
    field: str, declaration: tuple[object, ...], kind: ChangeKind
) -> None:
    assert changes(Item, redeclared(field, *declaration)) == [(field, kind)]


def test_null_no_longer_accepted_is_a_type_change() -> None:
    class NewItem(Item):
        note: str = ""

    assert ("note", ChangeKind.TYPE_CHANGED) in changes(Item, NewItem)


def test_forbidding_extra_fields_is_breaking() -> None:
    class Strict(Item):
        model_config = {"extra": "forbid"}

    assert changes(Item, Strict) == [("", ChangeKind.CONSTRAINT_NARROWED)]


def test_changes_inside_referenced_models_name_the_path() -> None:
    class NewItem(Item):
        price: float = Field(ge=1)

    class NewOrder(Order):
        items: list[NewItem]  # type: ignore[assignment]

    found = compare_schemas(
        Order.model_json_schema(), NewOrder.model_json_schema(), model="v1.Order"
    )

    assert [str(c) for c in found] == [
        "v1.Order.items[].price: constraint narrowed: minimum 0 -> 1"
    ]


def test_dict_value_changes_are_followed() -> None:
    class NewOrder(Order):
        extras: dict[str, str] = Field(default_factory=dict)  # type: ignore[assignment]

    assert changes(Order, NewOrder) == [("extras{}", ChangeKind.TYPE_CHANGED)]


class Created(Contract):
    kind: Literal["created"] = "created"
    id: int


class Deleted(Contract):
    kind: Literal["deleted"] = "deleted"
    id: int


class Envelope(Contract):
    data: Annotated[Union[Created, Deleted], Field(discriminator="kind")]  # noqa: UP007


def test_discriminated_union_members_are_matched_by_kind() -> None:
    class NewDeleted(Contract):
        kind: Literal["deleted"] = "deleted"
        id: str

    class NewEnvelope(Contract):
        data: Annotated[Union[Created, NewDeleted], Field(discriminator="kind")]  # noqa: UP007

    assert changes(Envelope, NewEnvelope) == [("data(deleted).id", ChangeKind.TYPE_CHANGED)]


def test_union_member_removed_is_breaking() -> None:
    class NewEnvelope(Contract):
        data: Created

    assert changes(Envelope, NewEnvelope) == [("data", ChangeKind.TYPE_CHANGED)]


def test_recursive_models_terminate() -> None:
    class Node(Contract):
        name: str
        children: list[Node] = Field(default_factory=list)

    class NewNode(Contract):
        name: str
        children: list[NewNode] = Field(default_factory=list)
        weight: int

    assert ("weight", ChangeKind.NEW_REQUIRED_FIELD) in changes(Node, NewNode)


class TestDocuments:
    def test_removed_model_is_breaking(self) -> None:
        found = compare_documents({"validation": Item.model_json_schema()}, None, name="v1.Item")

        assert found == [
            BreakingChange("v1.Item", "", ChangeKind.MODEL_REMOVED, "no longer defined")
        ]

    def test_subject_parts_are_named(self) -> None:
        class NewItem(Item):
            price: str  # type: ignore[assignment]

        old = {"subject": "x", "request": {"validation": Item.model_json_schema()}}
        new = {"subject": "x", "request": {"validation": NewItem.model_json_schema()}}

        found = compare_documents(old, new, name="x")

        assert [str(c) for c in found] == ["x request.price: type changed: number -> string"]

    def test_removed_part_is_breaking(self) -> None:
        old = {
            "request": {"validation": Item.model_json_schema()},
            "reply": {"validation": Item.model_json_schema()},
        }
        new = {"request": {"validation": Item.model_json_schema()}}

        assert [c.model for c in compare_documents(old, new, name="x")] == ["x reply"]

    def test_serialization_schema_is_compared_when_stored(self) -> None:
        schema = Item.model_json_schema()
        narrowed = NarrowPrice.model_json_schema()

        found = compare_documents(
            {"validation": schema, "serialization": schema},
            {"validation": schema, "serialization": narrowed},
            name="v1.Item",
        )

        assert [(c.path, c.kind) for c in found] == [("price", ChangeKind.CONSTRAINT_NARROWED)]


class NarrowPrice(Item):
    price: float = Field(ge=1)
