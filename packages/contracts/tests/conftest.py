"""Sample contracts shared by the tests, and copies of the committed snapshots to break."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from tessera_contracts import snapshots, v1, v2

COMMITTED = Path(__file__).parents[1] / "schemas"
PRODUCT_ID = UUID("3f1c2a4e-8b6d-4c1a-9e2f-5a7b8c9d0e1f")
CREATED = datetime(2025, 1, 10, 8, 0, tzinfo=UTC)
# First ten measurements of sample 0 of scikit-learn's breast-cancer data (malignant).
FEATURES = [17.99, 10.38, 122.8, 1001.0, 0.1184, 0.2776, 0.3001, 0.1471, 0.2419, 0.07871]


_PRODUCT: dict[str, Any] = {
    "id": PRODUCT_ID,
    "sku": "TSR-0001",
    "name": "Tessera Diagnostic Panel",
    "category": "diagnostics",
    "created_at": CREATED,
    "updated_at": CREATED,
}
"""What the v1 and the v2 sample product share."""


@pytest.fixture
def product() -> v1.Product:
    return v1.Product(
        **_PRODUCT,
        description="Ten-measurement cytology panel.",
        price=129.99,
        currency="USD",
        features=FEATURES,
        version=3,
    )


@pytest.fixture
def product_v2() -> v2.Product:
    return v2.Product(
        **_PRODUCT,
        description="",
        price=v2.Money(amount=Decimal("129.99"), currency="USD"),
        features=None,
        version=1,
    )


@pytest.fixture
def review() -> v1.Review:
    return v1.Review(
        id=UUID("c0ffee00-1234-4abc-8def-0123456789ab"),
        product_id=PRODUCT_ID,
        rating=4,
        title="Reliable",
        body="Results matched the lab within a day.",
        author="dr.okafor",
        created_at=CREATED,
    )


@pytest.fixture
def inventory() -> v1.Inventory:
    return v1.Inventory(product_id=PRODUCT_ID, quantity=120, reserved=15, updated_at=CREATED)


@pytest.fixture
def prediction() -> v1.PredictionResponse:
    return v1.PredictionResponse(
        prediction=0,
        confidence=0.9873,
        model_version="v1.0",
        timestamp=CREATED,
        processing_time_ms=2.1,
        label="malignant",
        probabilities={"malignant": 0.9873, "benign": 0.0127},
    )


@pytest.fixture
def schemas(tmp_path: Path) -> Path:
    """A copy of the committed snapshots (`schemas/`), to change on purpose."""
    copy = tmp_path / "schemas"
    shutil.copytree(COMMITTED, copy)
    return copy


@contextmanager
def _editing(path: Path) -> Iterator[dict[str, Any]]:
    document = json.loads(path.read_text())
    yield document
    path.write_text(snapshots.render(document))


@pytest.fixture
def edit() -> Callable[[Path], AbstractContextManager[dict[str, Any]]]:
    """`with edit(path) as document:` changes a snapshot file in place."""
    return _editing
