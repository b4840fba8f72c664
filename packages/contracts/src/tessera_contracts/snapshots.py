"""JSON Schema snapshots of every contract: the registry, their generation and the CLI.

Layout under `packages/contracts/schemas/` (found next to this package's `src/`):

* `v1/<Name>.json`, `v2/<Name>.json`, `shared/<Name>.json`: one model each;
* `subjects/<subject>.json`: a subject's `payload`, or its `request` and `reply`;
* `streams/<STREAM>.json`: the `event` any message of a stream decodes as;
* `operations/<version>.<id>.json`: one HTTP operation of a version's `OPERATIONS`
  (see `operation_document`), compared by `tessera_contracts.operations_compat`.

Each model part is `{"validation": schema}`, plus `"serialization": schema`
when Pydantic's two modes differ. Files are written with sorted keys, so
regenerating an unchanged contract changes no byte.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from pydantic import BaseModel, TypeAdapter

from tessera_contracts import v1, v2
from tessera_contracts._base import RequestSubject, Subject
from tessera_contracts.compat import BreakingChange, compare_documents
from tessera_contracts.health import HealthReport
from tessera_contracts.operations import EVENT_STREAM, JSON, Operation
from tessera_contracts.operations_compat import compare_operations
from tessera_contracts.problem import FieldError, Problem

Document = dict[str, Any]

DEFAULT_SCHEMAS_DIR = Path(__file__).resolve().parents[2] / "schemas"
"""`packages/contracts/schemas` when running from the repository (not from a wheel)."""

_VERSIONS: dict[str, ModuleType] = {"v1": v1, "v2": v2}
_SHARED: tuple[type[BaseModel], ...] = (Problem, FieldError, HealthReport)
# Streams a reader consumes whole, with the adapter that decodes any of their messages.
_STREAMS: dict[str, tuple[str, TypeAdapter[Any]]] = {
    v1.CATALOG_STREAM: (v1.CATALOG_SUBJECTS, v1.CATALOG_EVENT_ADAPTER),
}
OPERATIONS_DIR = "operations"


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The current schema `document` of one contract (to compare with, or write to,
    its committed file), its `relpath` under the schemas directory (`v1/Product.json`)
    and its `name` in reports (`v1.Product`, `inference.v1.predict`)."""

    name: str
    relpath: str
    document: Document


def model_part(schema_of: BaseModel | type[BaseModel] | TypeAdapter[Any]) -> Document:
    """The snapshot part of a model or type adapter.

    Args:
        schema_of: A model class or a `TypeAdapter`.

    Returns:
        `{"validation": ...}`, plus `"serialization": ...` if it differs.
    """
    if isinstance(schema_of, TypeAdapter):
        validation = schema_of.json_schema(mode="validation")
        serialization = schema_of.json_schema(mode="serialization")
    else:
        validation = schema_of.model_json_schema(mode="validation")
        serialization = schema_of.model_json_schema(mode="serialization")
    part: Document = {"validation": validation}
    if serialization != validation:
        part["serialization"] = serialization
    return part


def _models(module: ModuleType) -> Iterator[type[BaseModel]]:
    for name in module.__all__:
        value = getattr(module, name)
        if isinstance(value, type) and issubclass(value, BaseModel):
            yield value


def _subjects(module: ModuleType) -> Iterator[Subject[Any] | RequestSubject[Any, Any]]:
    for name in module.__all__:
        value = getattr(module, name)
        if isinstance(value, Subject | RequestSubject):
            yield value


def _model_ref(model: type[BaseModel], version: str) -> str | Document:
    """How an operation snapshot names a model: `v1.Product` (the operation's own
    version first) or `Problem` when the model has a snapshot of its own, else its
    schema inline (`{"schema": ...}`), so that the operation snapshot guards it."""
    for candidate in (version, *_VERSIONS):
        module = _VERSIONS.get(candidate)
        if module is not None and any(m is model for m in _models(module)):
            return f"{candidate}.{model.__name__}"
    if model in _SHARED:
        return model.__name__
    return {"schema": model_part(model)}


def _parameters(operation: Operation) -> Document:
    parameters: Document = {}
    for location, model in (
        ("path", operation.path_params),
        ("query", operation.query),
        ("header", operation.headers),
    ):
        if model is None:
            continue
        # By alias, as on the wire: a header model's fields are named `Idempotency-Key`.
        schema = model.model_json_schema(by_alias=True, mode="validation")
        required = set(schema.get("required", ()))
        for wire_name, prop in schema.get("properties", {}).items():
            param_schema = dict(prop)
            if "$defs" in schema and "$ref" in json.dumps(prop):
                # Keeps the parameter's schema self-contained for the `$ref`s in it.
                param_schema["$defs"] = schema["$defs"]
            parameters[f"{location}.{wire_name}"] = {
                "in": location,
                "name": wire_name,
                "required": location == "path" or wire_name in required,
                "schema": param_schema,
            }
    return parameters


def operation_document(operation: Operation) -> Document:
    """The snapshot of one operation: what its callers rely on, without documentation.

    Args:
        operation: An operation of a version's table.

    Returns:
        Method, path, owner, scope, anonymous access, retry policy, parameters
        (by `<in>.<wire name>`), body, success answer, errors, other answers and
        the validation status; models by name (see `_model_ref`).
    """

    def ref(model: type[BaseModel] | None) -> str | Document | None:
        return None if model is None else _model_ref(model, operation.version)

    stream = operation.stream
    media_type = EVENT_STREAM if stream else (JSON if operation.response else None)
    return {
        "operation": operation.key,
        "method": operation.method,
        "path": operation.path,
        "owner": operation.owner,
        "scope": operation.scope,
        "anonymous": operation.anonymous,
        "retry": operation.retry_policy,
        "parameters": _parameters(operation),
        "body": None
        if operation.body is None
        else {"media_type": JSON, "model": ref(operation.body)},
        "success": {
            "status": operation.status,
            "media_type": media_type,
            "model": ref(operation.response),
            "stream": None
            if stream is None
            else {"item": ref(stream.item), "event_types": list(stream.event_types)},
            "headers": sorted(operation.response_headers),
        },
        "errors": {
            "statuses": sorted(set(operation.errors)),
            "media_type": operation.error_media_type,
            "model": ref(operation.error_model),
        },
        "answers": {str(a.status): {"model": ref(a.model)} for a in operation.answers},
        "validation_status": operation.validation_status,
    }


def current_snapshots() -> list[Snapshot]:
    """Every contract of the current code, in a stable order.

    Returns:
        One snapshot per model of each version and of the shared models, per
        subject, per stream, and per operation of each version's `OPERATIONS`.
    """
    snapshots: list[Snapshot] = []
    for version, module in _VERSIONS.items():
        for model in _models(module):
            snapshots.append(
                Snapshot(
                    f"{version}.{model.__name__}",
                    f"{version}/{model.__name__}.json",
                    model_part(model),
                )
            )
        for subject in _subjects(module):
            document: Document = {"subject": subject.name}
            if isinstance(subject, Subject):
                document["payload"] = model_part(subject.model)
            else:
                document["request"] = model_part(subject.request)
                document["reply"] = model_part(subject.reply)
            snapshots.append(Snapshot(subject.name, f"subjects/{subject.name}.json", document))
    for model in _SHARED:
        snapshots.append(
            Snapshot(model.__name__, f"shared/{model.__name__}.json", model_part(model))
        )
    for stream, (subjects, adapter) in _STREAMS.items():
        document = {"stream": stream, "subjects": subjects, "event": model_part(adapter)}
        snapshots.append(Snapshot(f"stream {stream}", f"streams/{stream}.json", document))
    for module in _VERSIONS.values():
        operations: Sequence[Operation] = getattr(module, "OPERATIONS", ())
        for operation in operations:
            snapshots.append(
                Snapshot(
                    operation.key,
                    f"{OPERATIONS_DIR}/{operation.key}.json",
                    operation_document(operation),
                )
            )
    return snapshots


def render(document: Document) -> str:
    """Serialize a document the way it is committed.

    Args:
        document: A snapshot document.

    Returns:
        Indented JSON with sorted keys and a final newline.
    """
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


@dataclass(frozen=True, slots=True)
class Report:
    """How the committed snapshots relate to the current code."""

    breaking: list[BreakingChange]
    """Breaking changes, naming model and field."""
    outdated: list[str]
    """Committed files whose content differs compatibly (or not at all) from the code."""
    missing: list[str]
    """Contracts without a committed file (new models, subjects or versions)."""
    stale: list[str]
    """Committed files of contracts that no longer exist (also reported as breaking)."""

    @property
    def clean(self) -> bool:
        """True when the committed snapshots are exactly the current contracts."""
        return not (self.breaking or self.outdated or self.missing or self.stale)


def check(schemas_dir: Path = DEFAULT_SCHEMAS_DIR) -> Report:
    """Compare the committed snapshots with the current contracts.

    Args:
        schemas_dir: The snapshots directory.

    Returns:
        What is breaking, outdated, missing and stale.
    """
    current = {s.relpath: s for s in current_snapshots()}
    committed = {
        p.relative_to(schemas_dir).as_posix(): p for p in sorted(schemas_dir.rglob("*.json"))
    }
    breaking: list[BreakingChange] = []
    outdated: list[str] = []
    for relpath, path in committed.items():
        text = path.read_text(encoding="utf-8")
        snapshot = current.get(relpath)
        compare = compare_documents
        name = relpath.removesuffix(".json")
        if relpath.startswith(f"{OPERATIONS_DIR}/"):
            compare = compare_operations
            name = name.removeprefix(f"{OPERATIONS_DIR}/")  # the key: `v1.list_products`
        breaking += compare(
            json.loads(text),
            snapshot.document if snapshot else None,
            name=snapshot.name if snapshot else name,
        )
        if snapshot is not None and render(snapshot.document) != text:
            outdated.append(relpath)
    missing = sorted(current.keys() - committed.keys())
    stale = sorted(committed.keys() - current.keys())
    return Report(breaking, outdated, missing, stale)


def update(schemas_dir: Path = DEFAULT_SCHEMAS_DIR) -> list[str]:
    """Write every current snapshot and delete those of removed contracts.

    Args:
        schemas_dir: The snapshots directory.

    Returns:
        The relative paths written or deleted.
    """
    report = check(schemas_dir) if schemas_dir.exists() else None
    touched: list[str] = []
    for snapshot in current_snapshots():
        path = schemas_dir / snapshot.relpath
        text = render(snapshot.document)
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
            touched.append(snapshot.relpath)
    for relpath in report.stale if report else []:
        (schemas_dir / relpath).unlink()
        touched.append(relpath)
    return touched


def run_cli(argv: Sequence[str] | None = None) -> int:
    """Implement `python -m tessera_contracts.compat`.

    Args:
        argv: Arguments without the program name.

    Returns:
        The exit status.
    """
    parser = argparse.ArgumentParser(
        prog="python -m tessera_contracts.compat",
        description="Check or refresh the committed JSON Schema snapshots of the contracts.",
    )
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument(
        "--check", action="store_true", help="fail unless the snapshots match the code"
    )
    action.add_argument("--update", action="store_true", help="rewrite the snapshots from the code")
    parser.add_argument(
        "--allow-breaking",
        action="store_true",
        help="with --update: write even if the change breaks a released contract",
    )
    parser.add_argument(
        "--schemas", type=Path, default=DEFAULT_SCHEMAS_DIR, help="snapshots directory"
    )
    args = parser.parse_args(argv)
    out = sys.stdout
    # --update may create the directory, but only where it belongs: an explicit
    # --schemas, or the default one inside the repository (not in a wheel's site-packages).
    creatable = (
        args.schemas != DEFAULT_SCHEMAS_DIR or (args.schemas.parent / "pyproject.toml").is_file()
    )
    if not args.schemas.is_dir() and not (args.update and creatable):
        out.write(f"snapshot directory {args.schemas} not found; pass --schemas\n")
        return 1
    report = check(args.schemas)
    for change in report.breaking:
        out.write(f"BREAKING {change}\n")
    if args.update:
        if report.breaking and not args.allow_breaking:
            out.write(
                "refusing to update: breaking changes belong in the next version "
                "(or pass --allow-breaking for an unreleased contract)\n"
            )
            return 1
        touched = update(args.schemas)
        out.write(f"{len(touched)} snapshot(s) written or removed in {args.schemas}\n")
        for relpath in touched:
            out.write(f"  {relpath}\n")
        return 0
    for relpath in report.outdated:
        out.write(f"outdated {relpath}\n")
    for relpath in report.missing:
        out.write(f"missing {relpath}\n")
    if report.clean:
        out.write("snapshots match the contracts\n")
        return 0
    out.write(
        "run `uv run python -m tessera_contracts.compat --update` after reviewing the above\n"
    )
    return 1
