"""Strict validation of custom resources against their CRDs (vendored in deploy/tests/crds).

kubernetes-validate knows only built-in kinds. The API server validates a custom
resource against the `openAPIV3Schema` of its CRD's version, and `kubectl apply`
(strict field validation, its default) rejects fields that schema does not
declare; here the same schema, made strict the same way, is checked with
jsonschema, and `metadata` (which every CRD leaves to the API server) is checked
as the ObjectMeta of a built-in kind by kubernetes-validate.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

# jsonschema ships no type information (and types-jsonschema is not in the lockfile).
from jsonschema import Draft4Validator  # type: ignore[import-untyped]
from kubernetes_validate import utils as kubernetes_validate

CRD_DIR = Path(__file__).resolve().parent / "crds"
# The release the vendored files come from (crds/README.md).
PROMETHEUS_OPERATOR_VERSION = "0.93.0"


@dataclass(frozen=True)
class CustomKind:
    """One served version of a CRD: what a resource's apiVersion and kind must be."""

    api_version: str
    kind: str
    schema: Mapping[str, Any]
    operator_version: str
    """The `operator.prometheus.io/version` annotation of the CRD."""


def _strict(schema: Any) -> Any:
    """`schema` with every object closed to the fields it declares.

    A structural schema's object without `additionalProperties` or
    `x-kubernetes-preserve-unknown-fields` keeps only its `properties`: an unknown
    field is dropped by the API server, and rejected under strict field validation.
    """
    if isinstance(schema, list):
        return [_strict(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    if "x-kubernetes-validations" in schema:
        # CEL rules cannot be checked here; fail rather than pass them unchecked.
        raise AssertionError("CRD schema has x-kubernetes-validations: not checkable offline")
    strict: dict[str, Any] = {}
    for key, value in schema.items():
        if key == "properties":
            strict[key] = {name: _strict(sub) for name, sub in value.items()}
        elif key in ("items", "additionalProperties", "not", "anyOf", "allOf", "oneOf"):
            strict[key] = _strict(value)
        else:
            strict[key] = value
    if (
        schema.get("type") == "object"
        and "additionalProperties" not in schema
        and not schema.get("x-kubernetes-preserve-unknown-fields")
    ):
        strict["additionalProperties"] = False
    if schema.get("x-kubernetes-list-type") == "set":
        strict["uniqueItems"] = True
    return strict


@functools.cache
def custom_kinds() -> dict[tuple[str, str], CustomKind]:
    """(apiVersion, kind) -> its served CRD version, for every vendored CRD."""
    kinds = {}
    for path in sorted(CRD_DIR.glob("*.yaml")):
        crd = yaml.safe_load(path.read_text())
        assert crd["kind"] == "CustomResourceDefinition", path.name
        group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
        for version in crd["spec"]["versions"]:
            if not version.get("served"):
                continue
            schema = _strict(copy.deepcopy(version["schema"]["openAPIV3Schema"]))
            # `metadata: {type: object}` in every CRD: checked as ObjectMeta instead.
            schema["properties"]["metadata"] = {"type": "object"}
            api_version = f"{group}/{version['name']}"
            kinds[(api_version, kind)] = CustomKind(
                api_version,
                kind,
                schema,
                crd["metadata"]["annotations"]["operator.prometheus.io/version"],
            )
    return kinds


def is_custom(doc: Mapping[str, Any]) -> bool:
    """Whether `doc`'s kind is one of the vendored CRDs' (by group, any version)."""
    group = str(doc["apiVersion"]).split("/")[0]
    return any(
        kind == doc["kind"] and api_version.split("/")[0] == group
        for api_version, kind in custom_kinds()
    )


def problems(doc: Mapping[str, Any], kubernetes_version: str) -> list[str]:
    """What the API server would reject in the custom resource `doc`, one line each."""
    custom = custom_kinds().get((doc["apiVersion"], doc["kind"]))
    if custom is None:
        return [f"{doc['apiVersion']} {doc['kind']}: no served version of a vendored CRD"]
    found = []
    validator = Draft4Validator(custom.schema)
    for error in sorted(validator.iter_errors(doc), key=lambda e: list(map(str, e.path))):
        found.append(f"{'.'.join(map(str, error.path))}: {error.message}")
    # ObjectMeta is the same in every kind: a ConfigMap carries it to the validator.
    carrier = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": doc["metadata"]}
    try:
        kubernetes_validate.validate(carrier, kubernetes_version, strict=True)
    except kubernetes_validate.ValidationError as error:
        found.append(f"{'.'.join(map(str, error.path))}: {error.message}")
    return found
