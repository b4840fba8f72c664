"""tessera-contracts depends on Pydantic only: service teams can install it alone."""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

PACKAGE = Path(__file__).parents[1]
# Pydantic and what it depends on; everything else must come from the stdlib.
ALLOWED = {"pydantic", "pydantic_core", "typing_extensions", "annotated_types", "typing_inspection"}


def test_only_runtime_dependency_is_pydantic() -> None:
    project = tomllib.loads((PACKAGE / "pyproject.toml").read_text())["project"]

    assert [d.split(">")[0].split("=")[0].strip() for d in project["dependencies"]] == ["pydantic"]


@pytest.mark.parametrize(
    "code",
    [
        pytest.param(
            "import tessera_contracts, tessera_contracts.compat, tessera_contracts.snapshots, "
            "tessera_contracts.conversions\n",
            id="importing every module",
        ),
        # The gateway serves this document: generating it must not need more either.
        pytest.param(
            "from tessera_contracts.asyncapi import asyncapi_document\nasyncapi_document()\n",
            id="generating the AsyncAPI document",
        ),
    ],
)
def test_loads_nothing_but_pydantic_and_the_stdlib(code: str) -> None:
    report = "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))\n"
    result = subprocess.run(
        [sys.executable, "-c", f"import json, sys\n{code}{report}"],
        capture_output=True,
        text=True,
        check=True,
    )

    loaded = set(json.loads(result.stdout))
    foreign = loaded - set(sys.stdlib_module_names) - ALLOWED - {"tessera_contracts"}
    assert not {m for m in foreign if not m.startswith("_")}, foreign


def test_package_is_typed() -> None:
    assert (PACKAGE / "src/tessera_contracts/py.typed").is_file()
