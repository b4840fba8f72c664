"""The runner's parsing and bookkeeping, which every recorded number goes through."""

import sys
import types
from pathlib import Path

import pytest

import bench.run
from bench.harness import BenchError, ScenarioFailed, markdown_table, parse_wrk
from bench.run import replace_section

WRK_OUTPUT = """\
Running 10s test @ http://127.0.0.1:8000/v1/products/1
  2 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    10.12ms    2.01ms  40.00ms   90.00%
    Req/Sec     3.10k   200.00     3.50k    70.00%
  Latency Distribution
     50%  850.00us
     75%   11.00ms
     90%   12.00ms
     99%    1.20s
  61234 requests in 10.00s, 20.00MB read
  Socket errors: connect 3, read 1, write 0, timeout 7
  Non-2xx or 3xx responses: 12
Requests/sec:   6123.40
Transfer/sec:      2.00MB
"""


class TestParseWrk:
    def test_reads_throughput_percentiles_in_ms_and_errors(self) -> None:
        result = parse_wrk(WRK_OUTPUT)

        assert result.requests_per_s == pytest.approx(6123.40)
        assert result.p50_ms == pytest.approx(0.85)
        assert result.p99_ms == pytest.approx(1200.0)
        assert result.requests == 61234
        assert (result.connect_errors, result.read_errors, result.timeouts) == (3, 1, 7)
        assert result.non_2xx == 12

    def test_clean_run_has_zero_errors(self) -> None:
        clean = "\n".join(
            line
            for line in WRK_OUTPUT.splitlines()
            if "errors" not in line and "Non-2xx" not in line
        )

        result = parse_wrk(clean)

        assert (result.connect_errors, result.timeouts, result.non_2xx) == (0, 0, 0)

    def test_garbage_is_an_error_not_a_zero(self) -> None:
        with pytest.raises(BenchError, match="could not parse"):
            parse_wrk("unable to connect to 127.0.0.1:1 Connection refused")


class TestReplaceSection:
    def test_appends_then_replaces_only_its_own_block(self) -> None:
        document = "# Benchmarks\n"

        once = replace_section(document, "gateway", "first")
        both = replace_section(once, "catalog", "other")
        again = replace_section(both, "gateway", "second")

        assert "first" not in again
        assert "second" in again
        assert "other" in again
        assert again.count("<!-- bench:gateway:begin -->") == 1


def test_markdown_table_has_a_row_per_entry() -> None:
    table = markdown_table(["a", "b"], [[1, 2], [3, 4]])

    assert table.splitlines() == ["| a | b |", "|---|---|", "| 1 | 2 |", "| 3 | 4 |"]


def test_a_failed_scenario_is_reported_written_to_its_document_and_fails_the_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    document = tmp_path / "reliability.md"
    document.write_text(
        "# Reliability\n\n<!-- bench:fake:begin -->\nold\n<!-- bench:fake:end -->\n"
    )

    def run(quick: bool) -> str:
        raise ScenarioFailed("1 invariant(s) failed", "- FAIL: no 500")

    scenario = types.ModuleType("bench.scenarios.fake")
    scenario.run = run  # type: ignore[attr-defined]
    scenario.DOCUMENT = document  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "bench.scenarios.fake", scenario)
    monkeypatch.setattr(bench.run, "available", lambda: ["fake"])

    status = bench.run.main(["--write", "fake"])

    assert status == 1
    text = document.read_text()
    assert "- FAIL: no 500" in text
    assert "old" not in text
