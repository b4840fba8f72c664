"""The committed JSON Schema snapshots guard every contract against breaking changes."""

from __future__ import annotations

import contextlib
import io
import json
import shutil
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from tessera_contracts import compat, snapshots, v1, v2

COMMITTED = Path(__file__).parents[1] / "schemas"
Edit = Callable[[Path], AbstractContextManager[dict[str, Any]]]
UPDATE = "uv run python -m tessera_contracts.compat --update"


def test_snapshot_directory_is_the_committed_one() -> None:
    assert snapshots.DEFAULT_SCHEMAS_DIR == COMMITTED.resolve()


def test_current_contracts_break_no_committed_snapshot() -> None:
    # Models, subjects, streams and the HTTP operations (schemas/operations/).
    report = snapshots.check(COMMITTED)

    assert not report.breaking, "breaking changes (put them in the next version):\n" + "\n".join(
        str(change) for change in report.breaking
    )


def test_every_contract_has_an_up_to_date_snapshot() -> None:
    report = snapshots.check(COMMITTED)

    assert (report.missing, report.outdated, report.stale) == ([], [], []), (
        f"review, then run `{UPDATE}`"
    )


def test_snapshots_cover_every_version_and_subject() -> None:
    relpaths = {s.relpath for s in snapshots.current_snapshots()}

    assert {"v1/PredictionRequest.json", "v2/Money.json", "shared/Problem.json"} <= relpaths
    assert "subjects/inference.v1.predict.json" in relpaths
    assert "subjects/catalog.v1.product.created.json" in relpaths
    assert "streams/CATALOG.json" in relpaths


def test_snapshots_cover_every_operation() -> None:
    relpaths = {s.relpath for s in snapshots.current_snapshots()}

    for operation in (*v1.OPERATIONS, *v2.OPERATIONS):
        assert f"operations/{operation.key}.json" in relpaths
        assert (COMMITTED / f"operations/{operation.key}.json").is_file()


def test_generation_is_deterministic() -> None:
    first = [snapshots.render(s.document) for s in snapshots.current_snapshots()]

    assert first == [snapshots.render(s.document) for s in snapshots.current_snapshots()]


def test_request_subject_snapshot_has_request_and_reply() -> None:
    document = json.loads((COMMITTED / "subjects/inference.v1.predict.json").read_text())

    assert document["subject"] == "inference.v1.predict"
    assert document["request"]["validation"]["title"] == "PredictionRequest"
    assert document["reply"]["validation"]["title"] == "PredictionResponse"


class TestCommandLine:
    def run(self, *args: str) -> int:
        return compat.main(list(args))

    def check(self, schemas: Path) -> tuple[int, str]:
        """`--check --schemas <schemas>`: its exit status and what it printed."""
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            status = self.run("--check", "--schemas", str(schemas))
        return status, printed.getvalue()

    def test_check_passes_on_the_committed_snapshots(self, schemas: Path) -> None:
        status, out = self.check(schemas)

        assert status == 0
        assert "snapshots match" in out

    def test_check_names_model_and_field_of_a_break(self, schemas: Path, edit: Edit) -> None:
        # As if the released v1.Product had a field the code no longer has.
        with edit(schemas / "v1/Product.json") as document:
            document["validation"]["properties"]["legacy_code"] = {"type": "string"}

        status, out = self.check(schemas)

        assert status == 1
        assert "BREAKING v1.Product.legacy_code: field removed" in out

    def test_check_names_operation_and_change_of_a_break(self, schemas: Path, edit: Edit) -> None:
        # As if the released v1.get_product had needed catalog:write and answered 410.
        with edit(schemas / "operations/v1.get_product.json") as document:
            document["errors"]["statuses"].append(410)
            document["scope"] = "catalog:write"

        status, out = self.check(schemas)

        assert status == 1
        assert "BREAKING v1.get_product: scope changed: catalog:write -> catalog:read" in out
        assert "BREAKING v1.get_product: documented status removed: 410 (an error)" in out

    def test_update_refuses_an_operation_break_and_removes_its_stale_snapshot(
        self, schemas: Path
    ) -> None:
        stale = schemas / "operations/v1.get_legacy.json"
        shutil.copy(schemas / "operations/v1.get_product.json", stale)

        assert self.run("--update", "--schemas", str(schemas)) == 1
        assert stale.exists()
        assert self.run("--update", "--allow-breaking", "--schemas", str(schemas)) == 0
        assert not stale.exists()
        assert snapshots.check(schemas).clean

    def test_update_refuses_a_break_unless_allowed(self, schemas: Path, edit: Edit) -> None:
        path = schemas / "v1/ReviewSummary.json"
        with edit(path) as document:
            document["validation"]["properties"]["count"]["maximum"] = 10  # the code widened it

        assert self.run("--update", "--schemas", str(schemas)) == 1
        assert json.loads(path.read_text())["validation"]["properties"]["count"]["maximum"] == 10

        assert self.run("--update", "--allow-breaking", "--schemas", str(schemas)) == 0
        assert snapshots.check(schemas).clean

    def test_missing_snapshot_fails_check_and_update_writes_it(self, schemas: Path) -> None:
        (schemas / "v2/Money.json").unlink()

        status, out = self.check(schemas)

        assert status == 1
        assert "missing v2/Money.json" in out
        assert self.run("--update", "--schemas", str(schemas)) == 0
        assert (schemas / "v2/Money.json").read_text() == (COMMITTED / "v2/Money.json").read_text()

    def test_snapshot_of_a_removed_model_is_breaking(self, schemas: Path) -> None:
        shutil.copy(schemas / "v1/Review.json", schemas / "v1/Comment.json")

        status, out = self.check(schemas)

        assert status == 1
        assert "BREAKING v1/Comment: model removed" in out

    def test_outdated_but_compatible_snapshot_is_reported(self, schemas: Path, edit: Edit) -> None:
        with edit(schemas / "v1/Review.json") as document:
            document["validation"]["description"] = "An older wording."

        status, out = self.check(schemas)

        assert status == 1
        assert "outdated v1/Review.json" in out
        assert "BREAKING" not in out

    def test_unknown_directory_is_an_error(self, tmp_path: Path) -> None:
        status, out = self.check(tmp_path / "nope")

        assert status == 1
        assert "not found" in out
