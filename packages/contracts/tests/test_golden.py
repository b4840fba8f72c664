"""Payloads that must keep parsing forever: tests/golden/<version>/<Model>[.<case>].json."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import tessera_contracts
from pydantic import BaseModel, TypeAdapter
from tessera_contracts import v1, v2

GOLDEN = Path(__file__).parent / "golden"
MODULES: dict[str, ModuleType] = {"v1": v1, "v2": v2, "shared": tessera_contracts}
# Files named after a stream hold a whole envelope, decoded as any event of it.
STREAMS: dict[str, TypeAdapter[Any]] = {v1.CATALOG_STREAM: v1.CATALOG_EVENT_ADAPTER}
FILES = sorted(GOLDEN.glob("*/*.json"))


def parser_for(path: Path) -> TypeAdapter[Any]:
    name = path.name.split(".", 1)[0]
    if name in STREAMS:
        return STREAMS[name]
    target = getattr(MODULES[path.parent.name], name, None)
    assert isinstance(target, type), f"{path}: no model {name!r} in {path.parent.name}"
    assert issubclass(target, BaseModel)
    return TypeAdapter(target)


def test_every_version_has_golden_payloads() -> None:
    assert {path.parent.name for path in FILES} == {"v1", "v2", "shared"}
    assert len(FILES) >= 40


@pytest.mark.parametrize("path", FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_golden_payload_still_parses(path: Path) -> None:
    adapter = parser_for(path)

    value = adapter.validate_json(path.read_bytes())

    # And what a current producer writes from it parses back to the same value.
    assert adapter.validate_json(adapter.dump_json(value)) == value


def test_unknown_fields_are_ignored() -> None:
    product = v1.Product.model_validate_json(
        (GOLDEN / "v1/Product.without-features.json").read_bytes()
    )

    assert "added_later_by_a_newer_producer" not in product.model_dump()


def test_seed_timestamp_without_offset_parses() -> None:
    response = v1.PredictionResponse.model_validate_json(
        (GOLDEN / "v1/PredictionResponse.seed.json").read_bytes()
    )

    assert response.timestamp.tzinfo is None
    assert response.label is None
    assert response.probabilities is None


def test_stream_envelopes_decode_to_their_kind() -> None:
    event = v1.CATALOG_EVENT_ADAPTER.validate_json(
        (GOLDEN / "v1/CATALOG.review.created.json").read_bytes()
    )

    assert isinstance(event.data, v1.ReviewCreated)
    assert event.type == f"catalog.v1.{event.data.kind}"
