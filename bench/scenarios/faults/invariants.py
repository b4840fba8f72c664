"""The invariants the run fails on, checked against the database and the stream themselves."""

from __future__ import annotations

import collections
import signal
from dataclasses import dataclass

import asyncpg
import nats
from tessera_contracts import v1
from tessera_stack.process import run_sync

from bench.scenarios.faults.injection import RECOVERY_TIMEOUT_S, FaultResult
from bench.scenarios.faults.observations import (
    Observations,
    answers_summary,
    created_product_id,
    is_unacceptable_5xx,
)
from bench.scenarios.faults.service_logs import service_5xx
from bench.scenarios.faults.stack import SERVICES, Stack
from bench.scenarios.faults.workload import CLIENT_TIMEOUT_S, SSE_READ_TIMEOUT_S


@dataclass
class Check:
    what: str
    passed: bool
    figures: str


def stream_events(stack: Stack, first: int) -> dict[int, str | None]:
    """Every event of stream CATALOG after `first`: sequence -> created product id (or None)."""

    async def read() -> dict[int, str | None]:
        client = await nats.connect(stack.nats.url, connect_timeout=2)
        try:
            jetstream = client.jetstream()
            info = await jetstream.stream_info(v1.CATALOG_STREAM)
            events: dict[int, str | None] = {}
            for sequence in range(first + 1, int(info.state.last_seq) + 1):
                message = await jetstream.get_msg(v1.CATALOG_STREAM, sequence)
                events[sequence] = created_product_id((message.data or b"").decode())
            return events
        finally:
            await client.close()

    return run_sync(read())


def stored_products(stack: Stack) -> dict[str, str]:
    """sku -> id of every product this scenario wrote that is in the database."""

    async def read() -> dict[str, str]:
        connection = await asyncpg.connect(stack.database_url)
        try:
            rows = await connection.fetch(
                "SELECT sku, id::text FROM products WHERE sku LIKE 'FLT-%'"
            )
            return {row["sku"]: row["id"] for row in rows}
        finally:
            await connection.close()

    return run_sync(read())


def check_invariants(
    stack: Stack, seen: Observations, first: int, results: list[FaultResult]
) -> list[Check]:
    acknowledged = {w.sku: w.product_id for w in seen.writes if w.product_id is not None}
    stored = stored_products(stack)
    lost = sorted(sku for sku, product in acknowledged.items() if stored.get(sku) != product)
    stream = stream_events(stack, first)
    created = collections.Counter(p for p in stream.values() if p is not None)
    twice = sorted(p for p, count in created.items() if count > 1)
    not_on_stream = sorted(p for p in acknowledged.values() if p not in created)
    delivered = collections.Counter(event.sequence for event in seen.events)
    sse_missing = sorted(set(stream) - set(delivered))
    sse_twice = sorted(s for s, count in delivered.items() if count > 1)
    sse_unknown = sorted(set(delivered) - set(stream))
    attempts = list(seen.attempts())
    statuses = collections.Counter(a.status for a in attempts)
    bad_5xx = {s: n for s, n in statuses.items() if is_unacceptable_5xx(s)}
    read_500 = sum(1 for r in seen.reads if is_unacceptable_5xx(r.status))
    logged_5xx = collections.Counter(what for _, what in service_5xx(stack.log_file))
    hung = sum(1 for a in attempts if a.timed_out)
    sigterm = [r for r in results if r.fault.sig == signal.SIGTERM]
    in_flight = sum(r.in_flight for r in sigterm)
    in_flight_answered = sum(r.in_flight_answered for r in sigterm)
    not_recovered = [f"{r.fault.name} ({r.fault.how})" for r in results if not r.recovered]
    all_ready = all(stack.ready(name) for name in SERVICES)
    return [
        Check(
            "no write answered 201 is lost",
            not lost,
            f"{len(acknowledged)} answered 201, {len(acknowledged) - len(lost)} of them in the database"
            + (f"; missing: {', '.join(lost[:5])}" if lost else ""),
        ),
        Check(
            "each product's `product.created` is on stream CATALOG exactly once",
            not twice and not not_on_stream,
            f"{len(created)} products on the stream ({len(stream)} events), "
            f"{len(not_on_stream)} acknowledged ones missing, {len(twice)} twice",
        ),
        Check(
            "every event of the stream reaches the SSE reader exactly once",
            not sse_missing and not sse_twice and not sse_unknown,
            f"{len(delivered)} of {len(stream)} delivered, {len(sse_missing)} missing"
            + (f" (sequences {', '.join(map(str, sse_missing[:10]))})" if sse_missing else "")
            + f", "
            f"{len(sse_twice)} twice, {len(seen.sse_connects)} (re)connections, "
            f"{seen.sse_stalls} stalls of {SSE_READ_TIMEOUT_S:g} s",
        ),
        Check(
            "no 500 (no 5xx but 502/503/504, at the client or in any service's log)",
            not bad_5xx and read_500 == 0 and not logged_5xx,
            f"writes: {answers_summary(attempts)}; enriched reads with another 5xx: {read_500}; "
            "in the services' logs: "
            + ("; ".join(f"{n} x `{what}`" for what, n in logged_5xx.most_common()) or "none"),
        ),
        Check(
            f"no hung request (no answer within {CLIENT_TIMEOUT_S:g} s)",
            hung == 0,
            f"{hung} of {len(attempts)} write attempts",
        ),
        Check(
            "requests in flight at a SIGTERM are answered",
            in_flight_answered == in_flight,
            f"{in_flight_answered} of {in_flight}",
        ),
        Check(
            "every fault is recovered from without a manual restart",
            not not_recovered and all_ready and stack.up_running,
            (
                "all recovered"
                if not not_recovered
                else f"not within {RECOVERY_TIMEOUT_S:g} s: {'; '.join(not_recovered)}"
            )
            + (
                ", every service ready at the end"
                if all_ready
                else ", NOT every service ready at the end"
            )
            + ("" if stack.up_running else ", tessera up exited"),
        ),
    ]
