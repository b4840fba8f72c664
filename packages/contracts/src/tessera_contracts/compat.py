"""Breaking-change checker: compares a committed JSON Schema snapshot to the current one.

Models are shared by producers and consumers that are deployed at different
versions, and both sides validate. So a change breaks someone when either

* the new model rejects something the old one accepted (an old producer's
  message no longer parses): a field removed, a new required field, a type
  no longer accepted, a constraint narrowed, an enum value removed; or
* the new model may produce something the old one rejects (an old consumer
  chokes): a type or enum value added, a constraint widened.

Adding an optional field is the one change that is neither: consumers ignore
unknown fields (`extra="ignore"`). Defaults changing is reported too, since a
client that omits the field gets different behaviour.

HTTP operations have their own rules (`tessera_contracts.operations_compat`);
their parameters are compared here with `accepts_only`, since only the server
validates them.

Run `python -m tessera_contracts.compat --check` (or `--update`) from the repo;
see docs/contracts.md.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

Schema = Mapping[str, Any]


class ChangeKind(StrEnum):
    """What kind of breaking change was found."""

    MODEL_REMOVED = "model removed"
    FIELD_REMOVED = "field removed"
    NEW_REQUIRED_FIELD = "new required field"
    FIELD_BECAME_REQUIRED = "field became required"
    TYPE_CHANGED = "type changed"
    CONSTRAINT_NARROWED = "constraint narrowed"
    CONSTRAINT_WIDENED = "constraint widened"
    ENUM_VALUE_REMOVED = "enum value removed"
    ENUM_VALUE_ADDED = "enum value added"
    DEFAULT_CHANGED = "default changed"
    # HTTP operations (see `tessera_contracts.operations_compat`).
    OPERATION_REMOVED = "operation removed"
    METHOD_CHANGED = "method changed"
    PATH_CHANGED = "path changed"
    SCOPE_CHANGED = "scope changed"
    ANONYMOUS_REMOVED = "anonymous access removed"
    RETRY_CHANGED = "retry policy changed"
    PARAMETER_REMOVED = "parameter removed"
    NEW_REQUIRED_PARAMETER = "new required parameter"
    PARAMETER_BECAME_REQUIRED = "parameter became required"
    BODY_CHANGED = "request body changed"
    STATUS_CHANGED = "success status changed"
    RESPONSE_CHANGED = "response changed"
    RESPONSE_HEADER_REMOVED = "response header removed"
    EVENT_TYPE_REMOVED = "event type removed"
    STATUS_REMOVED = "documented status removed"
    ERROR_BODY_CHANGED = "error body changed"
    VALIDATION_STATUS_CHANGED = "validation status changed"


# What a schema that only validates input (a request parameter) may do: accepting
# more breaks no client, since nothing but the server reads the value.
_WIDENING: frozenset[ChangeKind] = frozenset(
    {ChangeKind.CONSTRAINT_WIDENED, ChangeKind.ENUM_VALUE_ADDED}
)


@dataclass(frozen=True, slots=True)
class BreakingChange:
    """One breaking change, located by model and field path."""

    model: str
    """Model (or subject part, or operation) the change is in, e.g. `v1.Product`,
    `v1.list_products` or `v1.list_products: parameter query.limit`."""
    path: str
    """Field path inside the model, e.g. `price` or `items[].price`; empty for the model."""
    kind: ChangeKind
    """What kind of change."""
    detail: str
    """Old and new values, e.g. `minimum 0 -> 1`."""

    def __str__(self) -> str:
        where = f"{self.model}.{self.path}" if self.path else self.model
        return f"{where}: {self.kind}: {self.detail}"


# Bounds as (keyword, exclusive keyword or None, True for a lower bound).
# Everything not compared here (title, description, examples) only documents.
_BOUNDS: tuple[tuple[str, str | None, bool], ...] = (
    ("minimum", "exclusiveMinimum", True),
    ("maximum", "exclusiveMaximum", False),
    ("minLength", None, True),
    ("maxLength", None, False),
    ("minItems", None, True),
    ("maxItems", None, False),
    ("minProperties", None, True),
    ("maxProperties", None, False),
)


@dataclass
class _Walk:
    """State of one comparison: both documents (for $ref) and the findings."""

    model: str
    old_root: Schema
    new_root: Schema
    accepts_only: bool = False
    """The schema only validates input: changes that accept more are compatible."""
    changes: list[BreakingChange] = field(default_factory=list)
    # Pairs of $ref targets being compared, so recursive models terminate.
    active: set[tuple[str, str]] = field(default_factory=set)

    def report(self, path: str, kind: ChangeKind, detail: str) -> None:
        if self.accepts_only and kind in _WIDENING:
            return
        self.changes.append(BreakingChange(self.model, path, kind, detail))


def _resolve(node: Schema, root: Schema) -> tuple[Schema, str | None]:
    """Follow `$ref` (and single-item `allOf`) to the schema it names, keeping siblings."""
    ref_name = None
    while True:
        if "$ref" in node:
            ref = str(node["$ref"])
            if not ref.startswith("#/"):
                raise ValueError(f"only local $ref is supported, got {ref!r}")
            target: Any = root
            for part in ref[2:].split("/"):
                target = target[part]
            ref_name = ref.rsplit("/", 1)[-1]
            siblings = {k: v for k, v in node.items() if k != "$ref"}
            node = {**target, **siblings}
        elif "allOf" in node and len(node["allOf"]) == 1:
            siblings = {k: v for k, v in node.items() if k != "allOf"}
            node = {**node["allOf"][0], **siblings}
        else:
            return node, ref_name


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def _flatten(node: Schema, root: Schema) -> Iterator[tuple[str, Schema, str | None]]:
    """Split a schema into branches of one JSON type each: (type, schema, $ref name)."""
    node, ref_name = _resolve(node, root)
    union = node.get("anyOf") or node.get("oneOf")
    if union is not None:
        for branch in union:
            yield from _flatten(branch, root)
        return
    types = node.get("type")
    if types is None and "const" in node:
        types = _json_type(node["const"])
    if types is None and "enum" in node:
        types = sorted({_json_type(v) for v in node["enum"]})
    if types is None:
        yield "any", node, ref_name
        return
    for json_type in [types] if isinstance(types, str) else types:
        yield json_type, node, ref_name


def _discriminator(node: Schema) -> str | None:
    for prop in node.get("properties", {}).values():
        if "const" in prop:
            return str(prop["const"])
    return None


def _branches(node: Schema, root: Schema) -> dict[str, tuple[Schema, str | None]]:
    flat = list(_flatten(node, root))
    objects = sum(1 for json_type, _, _ in flat if json_type == "object")
    branches: dict[str, tuple[Schema, str | None]] = {}
    for json_type, schema, ref_name in flat:
        key = json_type
        if json_type == "object" and objects > 1:
            # Several models in one union: match them by discriminator value
            # (stable on the wire), else by class name.
            key = f"object {_discriminator(schema) or ref_name or len(branches)}"
        branches[key] = (schema, ref_name)
    return branches


def _compare(walk: _Walk, old: Schema, new: Schema, path: str) -> None:
    old_branches = _branches(old, walk.old_root)
    new_branches = _branches(new, walk.new_root)
    added_only = old_branches.keys() <= new_branches.keys() or "any" in new_branches
    if old_branches.keys() != new_branches.keys() and not (walk.accepts_only and added_only):
        walk.report(
            path,
            ChangeKind.TYPE_CHANGED,
            f"{' | '.join(sorted(old_branches))} -> {' | '.join(sorted(new_branches))}",
        )
    for key in sorted(old_branches.keys() & new_branches.keys()):
        (old_node, old_ref), (new_node, new_ref) = old_branches[key], new_branches[key]
        pair = (old_ref, new_ref) if old_ref and new_ref else None
        if pair is not None:
            if pair in walk.active:
                continue  # already comparing these two models further up: recursion
            walk.active.add(pair)
        branch_path = (
            f"{path}({key.removeprefix('object ')})" if key.startswith("object ") else path
        )
        _compare_branch(walk, old_node, new_node, branch_path)
        if pair is not None:
            walk.active.discard(pair)


def _compare_branch(walk: _Walk, old: Schema, new: Schema, path: str) -> None:
    _compare_values(walk, old, new, path)
    _compare_bounds(walk, old, new, path)
    _compare_object(walk, old, new, path)
    if "items" in old and "items" in new:
        _compare(walk, old["items"], new["items"], f"{path}[]")
    for index, (old_item, new_item) in enumerate(
        zip(old.get("prefixItems", []), new.get("prefixItems", []), strict=False)
    ):
        _compare(walk, old_item, new_item, f"{path}[{index}]")


def _allowed_values(node: Schema) -> list[Any] | None:
    # A one-value Literal is published as `const`, several as `enum`.
    if "enum" in node:
        return list(node["enum"])
    return [node["const"]] if "const" in node else None


def _compare_values(walk: _Walk, old: Schema, new: Schema, path: str) -> None:
    old_values, new_values = _allowed_values(old), _allowed_values(new)
    if old_values is not None and new_values is not None:
        for value in old_values:
            if value not in new_values:
                walk.report(path, ChangeKind.ENUM_VALUE_REMOVED, repr(value))
        for value in new_values:
            if value not in old_values:
                walk.report(path, ChangeKind.ENUM_VALUE_ADDED, repr(value))
    elif new_values is not None:
        walk.report(path, ChangeKind.CONSTRAINT_NARROWED, f"now restricted to {new_values!r}")
    elif old_values is not None:
        walk.report(path, ChangeKind.CONSTRAINT_WIDENED, f"no longer restricted to {old_values!r}")
    for keyword in ("pattern", "format", "multipleOf"):
        before, after = old.get(keyword), new.get(keyword)
        if before == after:
            continue
        if before is None:
            walk.report(path, ChangeKind.CONSTRAINT_NARROWED, f"{keyword} added: {after!r}")
        elif after is None:
            walk.report(path, ChangeKind.CONSTRAINT_WIDENED, f"{keyword} removed: {before!r}")
        else:
            # Two regexes (or formats) cannot be compared for inclusion, so any
            # change may reject old values or admit values old consumers reject.
            walk.report(path, ChangeKind.CONSTRAINT_NARROWED, f"{keyword} {before!r} -> {after!r}")


def _bound(node: Schema, inclusive: str, exclusive: str | None) -> tuple[float, bool] | None:
    """The bound a schema sets, as (value, exclusive), or None."""
    if exclusive is not None and isinstance(node.get(exclusive), int | float):
        return float(node[exclusive]), True
    return (float(node[inclusive]), False) if inclusive in node else None


def _show(bound: tuple[float, bool] | None) -> str:
    if bound is None:
        return "none"
    value = int(bound[0]) if bound[0].is_integer() else bound[0]
    return f"{value} (exclusive)" if bound[1] else str(value)


def _compare_bounds(walk: _Walk, old: Schema, new: Schema, path: str) -> None:
    for inclusive, exclusive, lower in _BOUNDS:
        before, after = _bound(old, inclusive, exclusive), _bound(new, inclusive, exclusive)
        if before == after:
            continue
        detail = f"{inclusive} {_show(before)} -> {_show(after)}"
        if before is None or after is None:
            narrowed = before is None
        elif lower:
            # A lower bound narrows when it rises, or turns exclusive at the same value.
            narrowed = after > before
        else:
            narrowed = (-after[0], after[1]) > (-before[0], before[1])
        kind = ChangeKind.CONSTRAINT_NARROWED if narrowed else ChangeKind.CONSTRAINT_WIDENED
        walk.report(path, kind, detail)


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _compare_object(walk: _Walk, old: Schema, new: Schema, path: str) -> None:
    old_props: Mapping[str, Schema] = old.get("properties", {})
    new_props: Mapping[str, Schema] = new.get("properties", {})
    old_required, new_required = set(old.get("required", ())), set(new.get("required", ()))
    for name, old_prop in old_props.items():
        where = _join(path, name)
        if name not in new_props:
            walk.report(where, ChangeKind.FIELD_REMOVED, "no longer in the model")
            continue
        new_prop = new_props[name]
        if name in new_required and name not in old_required:
            walk.report(where, ChangeKind.FIELD_BECAME_REQUIRED, "was optional")
        if (
            "default" in old_prop
            and "default" in new_prop
            and old_prop["default"] != new_prop["default"]
        ):
            walk.report(
                where,
                ChangeKind.DEFAULT_CHANGED,
                f"{old_prop['default']!r} -> {new_prop['default']!r}",
            )
        _compare(walk, old_prop, new_prop, where)
    for name in new_props.keys() - old_props.keys():
        if name in new_required:
            walk.report(_join(path, name), ChangeKind.NEW_REQUIRED_FIELD, "old messages lack it")
    # Absent additionalProperties means "allowed", as in JSON Schema.
    before, after = old.get("additionalProperties", True), new.get("additionalProperties", True)
    if isinstance(before, Mapping) and isinstance(after, Mapping):
        _compare(walk, before, after, f"{path}{{}}")
    elif before is not False and after is False:
        walk.report(path, ChangeKind.CONSTRAINT_NARROWED, "additionalProperties now false")
    elif before is False and after is not False:
        walk.report(path, ChangeKind.CONSTRAINT_WIDENED, "additionalProperties no longer false")
    elif isinstance(after, Mapping) and before is True:
        walk.report(path, ChangeKind.CONSTRAINT_NARROWED, "additionalProperties now constrained")
    elif isinstance(before, Mapping) and after is True:
        walk.report(
            path, ChangeKind.CONSTRAINT_WIDENED, "additionalProperties no longer constrained"
        )


def compare_schemas(
    old: Schema, new: Schema, *, model: str, accepts_only: bool = False
) -> list[BreakingChange]:
    """Find the breaking changes between two JSON Schemas of one model.

    Args:
        old: The committed schema (the contract as released).
        new: The schema of the current code.
        model: Name to report the changes under, e.g. `v1.Product`.
        accepts_only: The schema only says what a server accepts (a request
            parameter), so accepting more (a constraint widened, an enum value or
            a type added) is compatible; only narrowing breaks.

    Returns:
        The breaking changes, empty when `new` is a compatible evolution of `old`.
    """
    walk = _Walk(model, old, new, accepts_only)
    _compare(walk, old, new, "")
    return walk.changes


def compare_documents(old: Schema, new: Schema | None, *, name: str) -> list[BreakingChange]:
    """Compare two snapshot documents (see `tessera_contracts.snapshots`).

    A document holds one or more parts (`request`, `reply`, `payload`, or the
    model itself), each with a `validation` and optionally a `serialization`
    schema; every part of the old document must still be compatible.

    Args:
        old: The committed snapshot document.
        new: The current document, or None when the model no longer exists.
        name: Name to report the changes under.

    Returns:
        The breaking changes.
    """
    if new is None:
        return [BreakingChange(name, "", ChangeKind.MODEL_REMOVED, "no longer defined")]
    changes: list[BreakingChange] = []
    for part, label in _parts(old, name):
        new_part = _part(new, part)
        if new_part is None:
            changes.append(BreakingChange(label, "", ChangeKind.MODEL_REMOVED, "no longer defined"))
            continue
        old_part = _part(old, part)
        assert old_part is not None
        for mode in ("validation", "serialization"):
            # A part stores `serialization` only where it differs from `validation`.
            old_schema = old_part.get(mode, old_part["validation"])
            new_schema = new_part.get(mode, new_part["validation"])
            for change in compare_schemas(old_schema, new_schema, model=label):
                if change not in changes:
                    changes.append(change)
    return changes


def _part(document: Schema, part: str | None) -> Schema | None:
    if part is None:
        return document if "validation" in document else None
    value = document.get(part)
    return value if isinstance(value, Mapping) and "validation" in value else None


def _parts(document: Schema, name: str) -> Sequence[tuple[str | None, str]]:
    if "validation" in document:
        return [(None, name)]
    return [
        (key, f"{name} {key}")
        for key, value in sorted(document.items())
        if isinstance(value, Mapping) and "validation" in value
    ]


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: `python -m tessera_contracts.compat --check | --update`.

    Args:
        argv: Arguments without the program name; `sys.argv[1:]` by default.

    Returns:
        The exit status: 0 when the snapshots match (or were written), else 1.
    """
    # Imported here: snapshots imports this module, and the checker itself
    # must stay usable without the model registry.
    from tessera_contracts.snapshots import run_cli

    return run_cli(argv)


if __name__ == "__main__":
    raise SystemExit(main())
