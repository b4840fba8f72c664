"""The scenario's Markdown section: a row per fault, why requests failed, the invariants."""

from __future__ import annotations

import collections
import signal
from pathlib import Path

from bench.harness import markdown_table
from bench.scenarios.faults.injection import FaultResult
from bench.scenarios.faults.invariants import Check
from bench.scenarios.faults.observations import Observations, answers_summary
from bench.scenarios.faults.plan import Timing
from bench.scenarios.faults.service_logs import service_5xx, supervisor_lines
from bench.scenarios.faults.workload import WRITE_GIVE_UP_S, WRITERS


def format_seconds(value: float | None) -> str:
    """A recovery time as the report shows it (None: not recovered)."""
    return "not recovered" if value is None else f"{value:.1f} s"


def fault_rows(
    seen: Observations, results: list[FaultResult], logged_errors: list[tuple[float, str]]
) -> list[list[object]]:
    """One table row per fault; `logged_errors` are `service_5xx` of `tessera up`'s output."""
    rows: list[list[object]] = []
    for index, r in enumerate(results):
        attempts = seen.attempts_during(r.started, r.ended)
        # A fault's window runs until the next one starts.
        until = results[index + 1].wall_started if index + 1 < len(results) else float("inf")
        errors = sum(1 for at, _ in logged_errors if r.wall_started <= at < until)
        rows.append(
            [
                f"{r.fault.name}: {r.fault.how}",
                answers_summary(attempts),
                errors,
                "-" if r.fault.service is None else format_seconds(r.ready_s),
                format_seconds(r.writes_s)
                if any(a.status != 201 for a in attempts)
                else "never failed",
                format_seconds(r.events_s),
                f"{format_seconds(r.prediction_s)} ({r.degraded_reads} enriched reads degraded)"
                if r.fault.service == "inference"
                else "-",
                f"{r.in_flight_answered} of {r.in_flight}"
                if r.fault.sig == signal.SIGTERM
                else "-",
            ]
        )
    return rows


def render_report(
    quick: bool,
    timing: Timing,
    seen: Observations,
    results: list[FaultResult],
    checks: list[Check],
    log_file: Path,
) -> str:
    """The section `bench.run` prints (and `--write` records), from `tessera up`'s `log_file`."""
    supervisor = supervisor_lines(log_file)
    lines = [
        "### Faults under load (`tessera up`)",
        "",
        f"{WRITERS} writers POST products through the gateway (Idempotency-Key on each, "
        f"retried with the same key), an enriched reader and an SSE reader run throughout; "
        f"servers stay down {timing.down_s:g} s. Times of the server faults count from the "
        "server's restart; those of the service faults from the signal.",
        "",
        markdown_table(
            [
                "fault",
                "write answers during the fault",
                "5xx or unhandled errors in the services' logs",
                "service ready again",
                "201s again",
                "SSE caught up",
                "prediction back",
                "in flight at SIGTERM answered",
            ],
            fault_rows(seen, results, service_5xx(log_file)),
        ),
        "",
        "Why requests failed, by fault (writes: distinct answers, each retried with its key):",
        "",
    ]
    for r in results:
        if r.fault.sig == signal.SIGTERM and r.in_flight_dropped:
            dropped = collections.Counter(r.in_flight_dropped)
            lines.append(
                f"- {r.fault.name}, {r.fault.how}: requests in flight at the signal not answered: "
                + "; ".join(f"{n} x `{why}`" for why, n in dropped.most_common())
            )
        if r.failure_details:
            shown = "; ".join(f"`{d}`" for d in r.failure_details[:3])
            more = len(r.failure_details) - 3
            lines.append(
                f"- {r.fault.name}, {r.fault.how}: writes answered {shown}"
                + (f" (+{more} more)" if more > 0 else "")
            )
    unanswered = [w for w in seen.writes if w.product_id is None]
    last_answers = collections.Counter(
        (w.attempts[-1].detail or w.attempts[-1].error or "?") if w.attempts else "not sent"
        for w in unanswered
    )
    lines += [
        "",
        f"Writes that ended without a 201 (given up after {WRITE_GIVE_UP_S:g} s, a final 4xx, "
        f"or cut short by the end of the run): {len(unanswered)}"
        + (
            ": " + "; ".join(f"{n} x `{a}`" for a, n in last_answers.most_common())
            if unanswered
            else ""
        ),
        "",
        "Invariants:",
        "",
    ]
    lines += [f"- {'PASS' if c.passed else 'FAIL'}: {c.what}: {c.figures}" for c in checks]
    lines += ["", "What `tessera up` printed about the services it restarted:", "", "```"]
    lines += [*supervisor, "```"]
    if quick:
        lines += ["", "_A --quick run: shorter outages._"]
    return "\n".join(lines)
