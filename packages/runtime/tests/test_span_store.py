"""SpanFileExporter and read_spans with the real OpenTelemetry SDK: what a line holds,
rotation and its bounds, several writing processes, torn and vanishing files."""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SimpleSpanProcessor,
    SpanExportResult,
)
from opentelemetry.trace import Link, SpanKind, Status, StatusCode
from tessera_runtime.span_store import SpanFileExporter, StoredSpan, read_spans

T0 = 1_800_000_000_000_000_000  # an epoch time in ns
MS = 1_000_000


def provider(directory: Path, service: str, **limits: int) -> TracerProvider:
    """A tracer provider of `service` that keeps its spans under `directory`, one by one."""
    tracer_provider = TracerProvider(resource=Resource.create({"service.name": service}))
    tracer_provider.add_span_processor(
        SimpleSpanProcessor(SpanFileExporter(directory, service, **limits))
    )
    return tracer_provider


def by_name(directory: Path) -> dict[str, StoredSpan]:
    return {span.name: span for span in read_spans(directory)}


def files(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.jsonl"))


def disk_bytes(directory: Path) -> int:
    return sum(path.stat().st_size for path in files(directory))


def open_descriptors_of(path: Path) -> list[str]:
    found = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except FileNotFoundError:  # the descriptor os.listdir itself used
            continue
        if target.startswith(str(path)):
            found.append(target)
    return found


class TestWhatALineHolds:
    @pytest.fixture
    def stored(self, tmp_path: Path) -> Iterator[dict[str, StoredSpan]]:
        gateway, catalog = provider(tmp_path, "gateway"), provider(tmp_path, "catalog")
        g, c = gateway.get_tracer("test"), catalog.get_tracer("test")
        server = g.start_span(
            "GET /v1/products/{id}",
            kind=SpanKind.SERVER,
            start_time=T0,
            attributes={"tessera.request_id": "req-1", "http.response.status_code": 200},
        )
        upstream = g.start_span(
            "GET",
            context=trace.set_span_in_context(server),
            kind=SpanKind.CLIENT,
            start_time=T0 + MS,
        )
        # The catalog's server span is a child of the gateway's client span, as the
        # traceparent header makes it across processes.
        handler = c.start_span(
            "GET /v1/products/{id}",
            context=trace.set_span_in_context(upstream),
            kind=SpanKind.SERVER,
            start_time=T0 + 2 * MS,
        )
        failing = c.start_span(
            "catalog.v1.predict request",
            context=trace.set_span_in_context(handler),
            kind=SpanKind.PRODUCER,
            start_time=T0 + 3 * MS,
            links=[Link(server.get_span_context(), {"tessera.reason": "test"})],
        )
        failing.record_exception(TimeoutError("no reply"), timestamp=T0 + 4 * MS)
        failing.set_status(Status(StatusCode.ERROR, "TimeoutError: no reply"))
        failing.end(end_time=T0 + 5 * MS)
        handler.set_status(Status(StatusCode.OK))
        handler.end(end_time=T0 + 6 * MS)
        upstream.end(end_time=T0 + 7 * MS)
        server.end(end_time=T0 + 8 * MS)
        yield {f"{span.service} {span.kind}": span for span in read_spans(tmp_path)}
        gateway.shutdown()
        catalog.shutdown()

    def test_every_span_of_both_services_is_read_back(self, stored: dict[str, StoredSpan]) -> None:
        assert sorted(stored) == [
            "catalog producer",
            "catalog server",
            "gateway client",
            "gateway server",
        ]
        assert len({span.trace_id for span in stored.values()}) == 1
        assert all(len(span.trace_id) == 32 and len(span.span_id) == 16 for span in stored.values())

    def test_parents_services_kinds_and_times(self, stored: dict[str, StoredSpan]) -> None:
        server, client = stored["gateway server"], stored["gateway client"]
        handler, failing = stored["catalog server"], stored["catalog producer"]

        assert server.parent_span_id is None
        assert client.parent_span_id == server.span_id
        assert handler.parent_span_id == client.span_id
        assert failing.parent_span_id == handler.span_id
        assert (server.service, handler.service) == ("gateway", "catalog")
        assert (failing.name, failing.kind) == ("catalog.v1.predict request", "producer")
        assert (server.start_ns, server.end_ns, server.duration_ns) == (T0, T0 + 8 * MS, 8 * MS)
        assert (failing.start_ns, failing.end_ns) == (T0 + 3 * MS, T0 + 5 * MS)
        assert server.attributes == {
            "tessera.request_id": "req-1",
            "http.response.status_code": 200,
        }

    def test_status_links_and_the_exception_event(self, stored: dict[str, StoredSpan]) -> None:
        server, failing = stored["gateway server"], stored["catalog producer"]

        assert (server.status, server.status_message) == ("unset", None)
        assert stored["catalog server"].status == "ok"
        assert (failing.status, failing.status_message) == ("error", "TimeoutError: no reply")
        [link] = failing.links
        assert (link.trace_id, link.span_id) == (server.trace_id, server.span_id)
        assert link.attributes == {"tessera.reason": "test"}
        [event] = failing.events
        assert (event.name, event.time_ns) == ("exception", T0 + 4 * MS)
        assert event.attributes["exception.type"] == "TimeoutError"
        assert event.attributes["exception.message"] == "no reply"


class TestExporter:
    def test_a_resource_without_a_service_name_gets_the_exporters(self, tmp_path: Path) -> None:
        tracer_provider = TracerProvider(resource=Resource.create({}))
        tracer_provider.add_span_processor(
            SimpleSpanProcessor(SpanFileExporter(tmp_path, "catalog"))
        )

        tracer_provider.get_tracer("test").start_span("work").end()
        tracer_provider.shutdown()

        assert by_name(tmp_path)["work"].service == "catalog"

    def test_values_json_cannot_hold_are_kept_as_text(self, tmp_path: Path) -> None:
        tracer_provider = provider(tmp_path, "catalog")
        span = tracer_provider.get_tracer("test").start_span(
            "work", attributes={"huge": 2**70, "ids": (1, 2), "path": "/items/\udcff"}
        )
        span.end()
        tracer_provider.shutdown()

        assert by_name(tmp_path)["work"].attributes == {
            "huge": str(2**70),
            "ids": [1, 2],
            "path": "/items/?",
        }

    def test_batches_are_written_by_shutdown_which_closes_the_file(self, tmp_path: Path) -> None:
        exporter = SpanFileExporter(tmp_path, "catalog")
        tracer_provider = TracerProvider(resource=Resource.create({"service.name": "catalog"}))
        # A long delay: only the flush at shutdown can write these.
        tracer_provider.add_span_processor(
            BatchSpanProcessor(exporter, schedule_delay_millis=60_000)
        )
        tracer = tracer_provider.get_tracer("test")
        for n in range(10):
            tracer.start_span(f"span {n}").end()
        assert tracer_provider.force_flush()
        assert len(list(read_spans(tmp_path))) == 10
        [path] = files(tmp_path)
        assert open_descriptors_of(path)

        tracer.start_span("last").end()
        tracer_provider.shutdown()

        assert len(list(read_spans(tmp_path))) == 11
        assert open_descriptors_of(path) == []
        assert exporter.export([]) is SpanExportResult.FAILURE  # shut down for good

    def test_nothing_is_created_before_the_first_span(self, tmp_path: Path) -> None:
        SpanFileExporter(tmp_path / "traces", "catalog").shutdown()

        assert not (tmp_path / "traces").exists()
        assert list(read_spans(tmp_path / "traces")) == []


def write_numbered(tracer_provider: TracerProvider, count: int, start: int = 0) -> None:
    tracer = tracer_provider.get_tracer("test")
    for n in range(start, start + count):
        tracer.start_span("numbered", attributes={"n": n, "padding": "x" * 100}).end()


def numbers(directory: Path) -> list[int]:
    return sorted(int(str(span.attributes["n"])) for span in read_spans(directory))


class TestRotation:
    def test_old_spans_rotate_out_and_the_total_stays_bounded(self, tmp_path: Path) -> None:
        max_bytes, max_files = 2_000, 3
        tracer_provider = provider(tmp_path, "catalog", max_bytes=max_bytes, max_files=max_files)

        largest = 0
        for n in range(300):
            write_numbered(tracer_provider, 1, start=n)
            largest = max(largest, disk_bytes(tmp_path))
        tracer_provider.shutdown()

        assert largest <= max_bytes * max_files
        assert all(path.stat().st_size <= max_bytes for path in files(tmp_path))
        kept = numbers(tmp_path)
        # The newest spans, none missing among them: only the oldest went.
        assert kept == list(range(300 - len(kept), 300))
        line_size = disk_bytes(tmp_path) // len(kept)
        assert len(kept) >= (max_files - 1) * max_bytes // line_size

    def test_files_of_a_process_that_is_gone_are_deleted_oldest_first(self, tmp_path: Path) -> None:
        # A replica that wrote more than three files' worth and exited.
        run_writers(tmp_path, count=45, max_bytes=2_000, names=("gone",))
        theirs = files(tmp_path)
        assert theirs

        tracer_provider = provider(tmp_path, "catalog", max_bytes=2_000, max_files=3)
        write_numbered(tracer_provider, 60, start=1000)
        tracer_provider.shutdown()

        assert disk_bytes(tmp_path) <= 2_000 * 3
        assert not any(path.exists() for path in theirs)
        assert numbers(tmp_path)[-1] == 1059

    def test_a_writer_whose_file_another_deleted_starts_a_new_one(self, tmp_path: Path) -> None:
        tracer_provider = provider(tmp_path, "catalog")
        write_numbered(tracer_provider, 3)
        [first] = files(tmp_path)

        first.unlink()  # as another replica's cap does to the oldest file
        write_numbered(tracer_provider, 2, start=3)
        tracer_provider.shutdown()

        assert numbers(tmp_path) == [3, 4]
        [second] = files(tmp_path)
        assert second != first

    def test_a_forked_child_writes_a_file_of_its_own(self, tmp_path: Path) -> None:
        tracer_provider = provider(tmp_path, "catalog")
        write_numbered(tracer_provider, 1)
        child = multiprocessing.get_context("fork").Process(
            target=write_numbered, args=(tracer_provider, 1, 1)
        )
        child.start()
        child.join(timeout=60)
        write_numbered(tracer_provider, 1, start=2)
        tracer_provider.shutdown()

        assert child.exitcode == 0
        assert numbers(tmp_path) == [0, 1, 2]
        pids = {path.name.split(".")[1] for path in files(tmp_path)}
        assert pids == {str(os.getpid()), str(child.pid)}


# A replica: waits for "go" on stdin, so that both start writing together.
WRITER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from tessera_runtime.span_store import SpanFileExporter

    directory, writer, count, max_bytes = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    tracer_provider = TracerProvider(resource=Resource.create({"service.name": "catalog"}))
    exporter = SpanFileExporter(directory, "catalog", max_bytes=max_bytes, max_files=3)
    tracer_provider.add_span_processor(BatchSpanProcessor(exporter, max_export_batch_size=64, max_queue_size=max(count, 2048)))
    tracer = tracer_provider.get_tracer("test")
    sys.stdin.readline()
    for n in range(count):
        tracer.start_span("numbered", attributes={"writer": writer, "n": n, "padding": "x" * 200}).end()
    tracer_provider.shutdown()
    """
)


def run_writers(
    directory: Path, count: int, max_bytes: int, names: tuple[str, ...] = ("a", "b")
) -> None:
    """Run a WRITER process per name, all at once, until they exit."""
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(directory), name, str(count), str(max_bytes)],
            stdin=subprocess.PIPE,
        )
        for name in names
    ]
    for writer in writers:
        assert writer.stdin is not None
        writer.stdin.write(b"go\n")
        writer.stdin.close()
    assert [writer.wait(timeout=120) for writer in writers] == [0] * len(names)


def raw_lines(directory: Path) -> list[bytes]:
    return [
        line for path in files(directory) for line in path.read_bytes().splitlines(keepends=True)
    ]


class TestReplicas:
    def test_two_processes_lose_no_span_and_write_only_whole_lines(self, tmp_path: Path) -> None:
        run_writers(tmp_path, count=3_000, max_bytes=64 * 1024 * 1024)  # no rotation

        lines = raw_lines(tmp_path)
        assert all(line.endswith(b"\n") and orjson.loads(line)["v"] == 1 for line in lines)
        spans = list(read_spans(tmp_path))
        assert len(spans) == len(lines) == 6_000
        for writer in ("a", "b"):
            mine = sorted(
                int(str(s.attributes["n"])) for s in spans if s.attributes["writer"] == writer
            )
            assert mine == list(range(3_000))

    def test_two_rotating_processes_stay_within_their_bound(self, tmp_path: Path) -> None:
        max_bytes = 20_000
        run_writers(tmp_path, count=3_000, max_bytes=max_bytes)

        lines = raw_lines(tmp_path)
        assert all(line.endswith(b"\n") and orjson.loads(line)["v"] == 1 for line in lines)
        # (max_files - 1 + live writers) files' worth, at the most.
        assert disk_bytes(tmp_path) <= (3 - 1 + 2) * max_bytes
        assert disk_bytes(tmp_path) >= max_bytes  # the cap deletes no more than it must
        kept = {
            writer: sorted(
                int(str(s.attributes["n"]))
                for s in read_spans(tmp_path)
                if s.attributes["writer"] == writer
            )
            for writer in ("a", "b")
        }
        # What rotated out of each writer's spans are its oldest, and the span written
        # last is kept (the other writer's may all be gone: the budget is the service's).
        for mine in kept.values():
            assert mine == list(range(3_000 - len(mine), 3_000))
        assert 2_999 in kept["a"] + kept["b"]


class TestReading:
    def test_a_torn_last_line_and_foreign_lines_are_skipped(self, tmp_path: Path) -> None:
        tracer_provider = provider(tmp_path, "catalog")
        write_numbered(tracer_provider, 3)
        tracer_provider.shutdown()
        [path] = files(tmp_path)
        whole = path.read_bytes()
        last_line = whole.splitlines(keepends=True)[-1]
        record = orjson.loads(last_line)
        with path.open("ab") as file:
            file.write(b'{"v": 2, "a later format": true}\n')
            file.write(b"not json\n")
            file.write(orjson.dumps(record | {"trace_id": "not hex"}) + b"\n")
            file.write(orjson.dumps(record | {"start_ns": True}) + b"\n")
            file.write(orjson.dumps(record) + b"\n")  # whole: read (a second time)
            file.write(last_line[: len(last_line) // 2])  # a writer killed mid-line

        assert numbers(tmp_path) == [0, 1, 2, 2]

    def test_files_deleted_while_reading_are_skipped_or_read_to_the_end(
        self, tmp_path: Path
    ) -> None:
        tracer_provider = provider(tmp_path, "catalog", max_bytes=1_000, max_files=10)
        write_numbered(tracer_provider, 20)
        tracer_provider.shutdown()
        first, second, *rest = files(tmp_path)
        in_first = len(first.read_bytes().splitlines())
        in_second = len(second.read_bytes().splitlines())

        reading = read_spans(tmp_path)
        started = next(reading)  # `first` is open now
        first.unlink()
        second.unlink()
        remaining = list(reading)

        assert int(str(started.attributes["n"])) == 0
        assert len(remaining) == 20 - 1 - in_second
        assert in_first > 1  # the span after `started` came from the deleted, open file
        assert rest
