"""The fault suite in a bounded form: three of its faults against a real `tessera up`.

The whole suite (`uv run python -m bench.run faults`, every fault in turn) takes
a minute and a half; this runs the same code for a killed NATS, a killed
PostgreSQL and a killed catalog with short outages, and fails on any invariant
the suite checks (docs/reliability.md).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.scenarios.faults import CATALOG_KILL, NATS_KILL, POSTGRES_KILL, QUICK, run_faults
from bench.scenarios.faults.service_logs import service_5xx as _service_5xx


@pytest.mark.timeout(240)
def test_killed_nats_postgres_and_catalog_lose_no_write_or_event_and_answer_no_500() -> None:
    report, checks = run_faults(QUICK, [NATS_KILL, POSTGRES_KILL, CATALOG_KILL])

    failed = [check.what for check in checks if not check.passed]
    assert not failed, report


def test_service_5xx_reads_the_500_behind_a_gateway_502_and_unhandled_errors(
    tmp_path: Path,
) -> None:
    def line(name: str, **record: object) -> str:
        return f"{name:<9} | {json.dumps({'time': '2026-12-01T22:36:17.061Z', **record})}"

    log = tmp_path / "tessera-up.log"
    access = {"logger": "tessera.access", "method": "POST", "route": "/v1/products"}
    log.write_text(
        "\n".join(
            [
                "catalog exited with status -9; restarting in 1 s (restart 1)",
                line("catalog", level="ERROR", message="unhandled InternalClientError in POST"),
                line("catalog", level="INFO", status=500, **access),
                line("gateway", level="INFO", status=502, **access),
                line("catalog", level="INFO", status=503, **access),
                line("catalog", level="INFO", status=201, **access),
            ]
        )
    )

    found = [what for _, what in _service_5xx(log)]

    assert found == [
        "catalog: unhandled InternalClientError in POST",
        "catalog POST /v1/products 500",
    ]
