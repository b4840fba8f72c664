"""Breaking changes between two snapshots of one HTTP operation.

A snapshot (written by `tessera_contracts.snapshots.operation_document`) holds
what a caller relies on: method, path, scope, anonymous access, retry policy,
each parameter (where, wire name, required, JSON Schema), the request body, the
success answer, the error statuses with their body, the other answers and the
validation status. Clients (tessera-client, the gateway) are built from the
table and deployed at other versions than the servers, so a change breaks
someone when an old client's request is no longer served as before, or the
answer is no longer what it expects:

* the operation removed, its method or path changed;
* a parameter removed, made required, new and required, or narrowed (parameters
  only reach the server, so a widened constraint or an added enum value passes);
* a changed default, since a client that omits the parameter gets other results;
* the request body, the success status or the response (model, media type,
  stream item, a documented response header, an event type) changed;
* a documented error status or other answer (`304`) removed, or the error body
  or the validation status changed;
* the scope changed (keys holding the old one lose access), anonymous access
  removed, or the retry policy changed in either direction: clients and the
  gateway decide from it whether a failed attempt may be repeated.

Adding an operation, an optional parameter, an error status or an answer passes;
so do documentation (summary, descriptions, examples, tags) and the owner, which
only the gateway's routing reads. Model names (`v1.Product`) are compared as
names: the models' own snapshots guard their contents.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tessera_contracts.compat import (
    BreakingChange,
    ChangeKind,
    Schema,
    compare_documents,
    compare_schemas,
)

# Top-level fields any change of which breaks callers, as (key, kind).
_FIXED: tuple[tuple[str, ChangeKind], ...] = (
    ("method", ChangeKind.METHOD_CHANGED),
    ("path", ChangeKind.PATH_CHANGED),
    ("scope", ChangeKind.SCOPE_CHANGED),
    ("retry", ChangeKind.RETRY_CHANGED),
    ("validation_status", ChangeKind.VALIDATION_STATUS_CHANGED),
)


class _Changes:
    """The findings of one comparison, all named after the operation."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.found: list[BreakingChange] = []

    def report(self, kind: ChangeKind, detail: str, *, part: str = "") -> None:
        where = f"{self.name}: {part}" if part else self.name
        self.found.append(BreakingChange(where, "", kind, detail))


def _show(value: Any) -> str:
    return "none" if value is None else str(value)


def _label(ref: Any) -> str:
    """A model reference as reports show it: its name, or the title of an inline schema."""
    if isinstance(ref, Mapping):
        title = str(ref.get("schema", {}).get("validation", {}).get("title", "a model"))
        # Generic models have titles like `CloudEvent[Annotated[Union[...], ...]]`.
        return f"{title.split('[', 1)[0]}[...]" if "[" in title else title
    return _show(ref)


def _compare_ref(
    changes: _Changes, old: Any, new: Any, kind: ChangeKind, *, part: str, what: str
) -> None:
    """Compare two model references: names, or (for models without a snapshot of
    their own) their inline schemas, with the model rules."""
    if isinstance(old, Mapping) and isinstance(new, Mapping):
        label = f"{changes.name}: {' '.join(filter(None, (part, what)))}"
        changes.found += compare_documents(old["schema"], new["schema"], name=label)
    elif old != new:
        changes.report(kind, f"{what} {_label(old)} -> {_label(new)}".strip(), part=part)


def _compare_parameters(changes: _Changes, old: Schema, new: Schema) -> None:
    for key, old_param in old.items():
        part = f"parameter {key}"
        new_param = new.get(key)
        if new_param is None:
            # Clients still send it; the server would ignore or reject it.
            changes.report(ChangeKind.PARAMETER_REMOVED, "clients still send it", part=part)
            continue
        if new_param["required"] and not old_param["required"]:
            changes.report(ChangeKind.PARAMETER_BECAME_REQUIRED, "was optional", part=part)
        old_schema, new_schema = old_param["schema"], new_param["schema"]
        if "default" in old_schema and old_schema.get("default") != new_schema.get("default"):
            changes.report(
                ChangeKind.DEFAULT_CHANGED,
                f"{old_schema['default']!r} -> {new_schema.get('default')!r}",
                part=part,
            )
        changes.found += compare_schemas(
            old_schema, new_schema, model=f"{changes.name}: {part}", accepts_only=True
        )
    for key in sorted(new.keys() - old.keys()):
        if new[key]["required"]:
            changes.report(
                ChangeKind.NEW_REQUIRED_PARAMETER,
                "old clients do not send it",
                part=f"parameter {key}",
            )


def _compare_success(changes: _Changes, old: Schema, new: Schema) -> None:
    if old["status"] != new["status"]:
        changes.report(ChangeKind.STATUS_CHANGED, f"{old['status']} -> {new['status']}")
    if old["media_type"] != new["media_type"]:
        changes.report(
            ChangeKind.RESPONSE_CHANGED,
            f"media type {_show(old['media_type'])} -> {_show(new['media_type'])}",
        )
    _compare_ref(
        changes, old["model"], new["model"], ChangeKind.RESPONSE_CHANGED, part="", what="model"
    )
    old_stream, new_stream = old.get("stream"), new.get("stream")
    if old_stream is not None and new_stream is not None:
        _compare_ref(
            changes,
            old_stream["item"],
            new_stream["item"],
            ChangeKind.RESPONSE_CHANGED,
            part="",
            what="stream item",
        )
        for event_type in old_stream["event_types"]:
            if event_type not in new_stream["event_types"]:
                changes.report(ChangeKind.EVENT_TYPE_REMOVED, event_type)
    for header in old["headers"]:
        if header not in new["headers"]:
            changes.report(ChangeKind.RESPONSE_HEADER_REMOVED, header)


def _compare_errors(changes: _Changes, old: Schema, new: Schema) -> None:
    for status in old["statuses"]:
        if status not in new["statuses"]:
            changes.report(ChangeKind.STATUS_REMOVED, f"{status} (an error)")
    if old["media_type"] != new["media_type"]:
        changes.report(
            ChangeKind.ERROR_BODY_CHANGED, f"media type {old['media_type']} -> {new['media_type']}"
        )
    _compare_ref(
        changes, old["model"], new["model"], ChangeKind.ERROR_BODY_CHANGED, part="", what="model"
    )


def _compare_answers(changes: _Changes, old: Schema, new: Schema) -> None:
    for status, old_answer in old.items():
        new_answer = new.get(status)
        if new_answer is None:
            changes.report(ChangeKind.STATUS_REMOVED, f"{status} (an answer)")
            continue
        _compare_ref(
            changes,
            old_answer["model"],
            new_answer["model"],
            ChangeKind.RESPONSE_CHANGED,
            part=f"answer {status}",
            what="model",
        )


def compare_operations(old: Schema, new: Schema | None, *, name: str) -> list[BreakingChange]:
    """Find the breaking changes between two snapshots of one operation.

    Args:
        old: The committed snapshot (the operation as released).
        new: The snapshot of the current table, or None when it lost the operation.
        name: Name to report the changes under, e.g. `v1.list_products`.

    Returns:
        The breaking changes (see the module docstring), each naming the operation.
    """
    changes = _Changes(name)
    if new is None:
        changes.report(ChangeKind.OPERATION_REMOVED, "no longer in the table")
        return changes.found
    for key, kind in _FIXED:
        if old[key] != new[key]:
            changes.report(kind, f"{_show(old[key])} -> {_show(new[key])}")
    if old["anonymous"] and not new["anonymous"]:
        changes.report(ChangeKind.ANONYMOUS_REMOVED, "callers now need a key")
    _compare_parameters(changes, old["parameters"], new["parameters"])
    old_body, new_body = old["body"] or {}, new["body"] or {}
    if old_body and new_body and old_body["media_type"] != new_body["media_type"]:
        changes.report(
            ChangeKind.BODY_CHANGED,
            f"media type {old_body['media_type']} -> {new_body['media_type']}",
        )
    _compare_ref(
        changes,
        old_body.get("model"),
        new_body.get("model"),
        ChangeKind.BODY_CHANGED,
        part="",
        what="model",
    )
    _compare_success(changes, old["success"], new["success"])
    _compare_errors(changes, old["errors"], new["errors"])
    _compare_answers(changes, old["answers"], new["answers"])
    return changes.found
