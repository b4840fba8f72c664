"""`tessera trace` on spans written by the real SDK and SpanFileExporter, with known times;
and what `tessera up` tells its services about where spans go."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import (
    Link,
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
)
from tessera_runtime.span_store import SpanFileExporter, read_spans
from tessera_runtime.tracing import TRACE_DIR_VARIABLE, otlp_traces_endpoint
from tessera_stack.cli import main
from tessera_stack.local.services import (
    LocalStack,
    service_environment,
)
from tessera_stack.trace_view import collect, find, render

T0 = 1_800_000_000_000_000_000  # an epoch time in ns
MS = 1_000_000
COLUMNS = 140
REQUEST_ID = "0af7651916cd43dd8448eb211c80319c"  # 32 hex, as the services' own request ids are
LATER_REQUEST = "later-1"


@dataclass(frozen=True)
class Stored:
    """The ids of the spans the `data_dir` fixture wrote."""

    data_dir: Path
    request: str  # trace id of the enriched request
    request_spans: dict[str, str]  # span id by name
    batch: str  # trace id of the inference batch, which links to two requests
    other_request: str
    later: str  # trace id of the root that ended last


class Services:
    def __init__(self, directory: Path) -> None:
        self._providers: dict[str, TracerProvider] = {}
        self._directory = directory

    def tracer(self, service: str) -> trace.Tracer:
        if service not in self._providers:
            provider = TracerProvider(resource=Resource.create({"service.name": service}))
            provider.add_span_processor(
                SimpleSpanProcessor(SpanFileExporter(self._directory, service))
            )
            self._providers[service] = provider
        return self._providers[service].get_tracer("test")

    def shutdown(self) -> None:
        for provider in self._providers.values():
            provider.shutdown()


def span(
    services: Services,
    service: str,
    name: str,
    start_ms: float,
    end_ms: float,
    parent: trace.Span | None = None,
    *,
    kind: SpanKind = SpanKind.INTERNAL,
    attributes: dict[str, str] | None = None,
    links: list[Link] | None = None,
    error: Exception | None = None,
) -> trace.Span:
    """A finished span of `service` from `start_ms` to `end_ms` after T0."""
    started = services.tracer(service).start_span(
        name,
        context=None if parent is None else trace.set_span_in_context(parent),
        kind=kind,
        attributes=attributes,
        links=links,
        start_time=T0 + int(start_ms * MS),
    )
    if error is not None:
        started.record_exception(error)
        started.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"))
    started.end(end_time=T0 + int(end_ms * MS))
    return started


def ids(one: trace.Span) -> tuple[str, str]:
    """Trace id and span id of `one`, in hex as stored."""
    context = one.get_span_context()
    return format(context.trace_id, "032x"), format(context.span_id, "016x")


def remote_parent(trace_id: int, span_id: int) -> NonRecordingSpan:
    """A parent of another process, never stored here (sampled, as its traceparent says)."""
    flags = TraceFlags(TraceFlags.SAMPLED)
    return NonRecordingSpan(SpanContext(trace_id, span_id, is_remote=True, trace_flags=flags))


@pytest.fixture
def stored(tmp_path: Path) -> Stored:
    services = Services(tmp_path / "traces")
    request = {"tessera.request_id": REQUEST_ID}
    # The enriched request: gateway 0-20 ms, catalog 2-16 ms, its queries and NATS request.
    root = span(services, "gateway", "GET /v1/products/{product_id}/enriched", 0, 20,
                kind=SpanKind.SERVER, attributes=request)  # fmt: skip
    upstream = span(services, "gateway", "GET", 1, 18, root, kind=SpanKind.CLIENT)
    catalog = span(services, "catalog", "GET /v1/products/{product_id}/enriched", 2, 16,
                   upstream, kind=SpanKind.SERVER, attributes=request)  # fmt: skip
    # Exported in another order than they started: the view orders by start.
    span(services, "catalog", "SELECT reviews", 5, 7, catalog, kind=SpanKind.CLIENT)
    span(services, "catalog", "SELECT products", 3, 4, catalog, kind=SpanKind.CLIENT)
    predict = span(services, "catalog", "send inference.v1.predict", 8, 15, catalog,
                   kind=SpanKind.CLIENT, error=TimeoutError("no reply"))  # fmt: skip
    # A span whose parent was never stored (a caller outside the run).
    root_trace = root.get_span_context().trace_id
    span(services, "catalog", "outbox relay", 17, 19, remote_parent(root_trace, 0xF067AA0BA902B7),
         kind=SpanKind.PRODUCER)  # fmt: skip
    # Another request, and the one inference batch that served both.
    other = span(services, "gateway", "GET /v1/predictions", 4, 14, kind=SpanKind.SERVER,
                 attributes={"tessera.request_id": "other-1"})  # fmt: skip
    batch = span(services, "inference", "inference batch", 10, 12,
                 links=[Link(predict.get_span_context()), Link(other.get_span_context())])  # fmt: skip
    # Later: another trace, whose root ends last; its request id is also on a consumer
    # span of a second trace (work its event caused).
    later = span(services, "gateway", "GET /v1/products", 30, 31, kind=SpanKind.SERVER,
                 attributes={"tessera.request_id": LATER_REQUEST})  # fmt: skip
    span(services, "gateway", "deliver catalog.v1.product.created", 31, 40,
         remote_parent(0x1234, 0x5678),
         kind=SpanKind.CONSUMER, attributes={"tessera.request_id": LATER_REQUEST})  # fmt: skip
    services.shutdown()
    return Stored(
        data_dir=tmp_path,
        request=ids(root)[0],
        request_spans={"root": ids(root)[1], "predict": ids(predict)[1]},
        batch=ids(batch)[0],
        other_request=ids(other)[0],
        later=ids(later)[0],
    )


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["trace", *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture(autouse=True)
def columns(monkeypatch: pytest.MonkeyPatch) -> None:
    # shutil.get_terminal_size reads COLUMNS first: the width the waterfall is scaled to.
    monkeypatch.setenv("COLUMNS", str(COLUMNS))


ROW = re.compile(
    r"(?P<mark>[ !])(?P<service>\S+) +(?P<name>.+?) +(?P<start>-?\d+\.\d\d) +"
    r"(?P<duration>\d+\.\d\d) +(?P<status>unset|ok|error) +\|(?P<bar>[ =]+)\|"
)


@dataclass(frozen=True)
class Row:
    mark: str
    service: str
    name: str  # with its indentation
    start: str
    duration: str
    status: str
    bar: str
    line: str


def rows(out: str) -> list[Row]:
    """The span rows of a waterfall, the name cut at its column (as the header places it)."""
    header = next(line for line in out.splitlines() if line.startswith(" service "))
    name_from, name_to = header.index("  span ") + 2, header.index("start ms") - 3
    found = []
    for line in out.splitlines():
        match = ROW.fullmatch(line)
        if match:
            found.append(
                Row(
                    mark=match["mark"],
                    service=match["service"],
                    name=line[name_from:name_to].rstrip(),
                    start=match["start"],
                    duration=match["duration"],
                    status=match["status"],
                    bar=match["bar"],
                    line=line,
                )
            )
    return found


class TestFindingATrace:
    def test_by_trace_id(self, stored: Stored, capsys: pytest.CaptureFixture[str]) -> None:
        code, out, _ = run(capsys, stored.request, "--data-dir", str(stored.data_dir))

        assert code == 0
        header = out.splitlines()[0]
        assert header == (
            f"trace {stored.request}  request {REQUEST_ID}  7 spans  "
            "services gateway, catalog  total 20.00 ms"
        )

    def test_by_traceparent(self, stored: Stored, capsys: pytest.CaptureFixture[str]) -> None:
        traceparent = f"00-{stored.request}-{stored.request_spans['root']}-01"

        code, out, _ = run(capsys, traceparent, "--data-dir", str(stored.data_dir))

        assert code == 0
        assert out.startswith(f"trace {stored.request}  ")

    def test_by_request_id_although_it_looks_like_a_trace_id(
        self, stored: Stored, capsys: pytest.CaptureFixture[str]
    ) -> None:
        code, out, _ = run(capsys, REQUEST_ID, "--data-dir", str(stored.data_dir))

        assert code == 0
        assert out.startswith(f"trace {stored.request}  request {REQUEST_ID}  7 spans")

    def test_a_request_in_several_traces_shows_where_it_began_and_names_the_rest(
        self, stored: Stored, capsys: pytest.CaptureFixture[str]
    ) -> None:
        code, out, _ = run(capsys, LATER_REQUEST, "--data-dir", str(stored.data_dir))

        assert code == 0
        first, second = out.splitlines()[:2]
        assert first.startswith(f"trace {stored.later}  request {LATER_REQUEST}  1 span  ")
        assert second == f"request {LATER_REQUEST} is also in traces {0x1234:032x}"

    def test_last_is_the_trace_whose_root_ended_last(
        self, stored: Stored, capsys: pytest.CaptureFixture[str]
    ) -> None:
        # The consumer span ends later still, but it is no root.
        code, out, _ = run(capsys, "--last", "--data-dir", str(stored.data_dir))

        assert code == 0
        assert out.startswith(f"trace {stored.later}  request {LATER_REQUEST}  1 span  ")

    def test_last_is_the_request_that_ended_last_not_the_background_work_after_it(
        self, tmp_path: Path
    ) -> None:
        services = Services(tmp_path)
        span(services, "gateway", "GET /v1/products", 0, 5, kind=SpanKind.SERVER)
        # A request that came with a traceparent: its server span's parent is not stored.
        entered = span(services, "gateway", "POST /v1/products", 10, 20, remote_parent(7, 0xABC),
                       kind=SpanKind.SERVER)  # fmt: skip
        # Then the relay's publish of the event it wrote: a root, but no request.
        span(services, "catalog", "publish catalog.v1.product.created", 21, 22,
             kind=SpanKind.PRODUCER, links=[Link(entered.get_span_context())])  # fmt: skip
        services.shutdown()

        found = find(read_spans(tmp_path), None)

        assert found is not None
        assert found.trace_id == ids(entered)[0]

    def test_without_roots_last_is_the_latest_span(self, tmp_path: Path) -> None:
        services = Services(tmp_path)
        for n, end_ms in enumerate((5, 9, 7)):
            span(services, "catalog", f"consume {n}", 0, end_ms, remote_parent(n + 1, 0xABC),
                 kind=SpanKind.CONSUMER)  # fmt: skip
        services.shutdown()

        found = find(read_spans(tmp_path), None)

        assert found is not None
        assert found.trace_id == f"{2:032x}"

    def test_unknown_id_is_exit_1(self, stored: Stored, capsys: pytest.CaptureFixture[str]) -> None:
        code, out, err = run(capsys, "no-such-request", "--data-dir", str(stored.data_dir))

        assert code == 1
        assert out == ""
        directory = stored.data_dir / "traces"
        assert (
            err == f"tessera trace: no spans of trace/request no-such-request under {directory}\n"
        )

    def test_a_missing_directory_says_who_keeps_spans_there(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        code, _, err = run(capsys, "--last", "--data-dir", str(tmp_path / "none"))

        assert code == 1
        assert f"{tmp_path / 'none' / 'traces'} does not exist" in err
        assert "`tessera up` keeps its services' spans there while it runs" in err

    def test_an_empty_directory_has_no_last_trace(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        (tmp_path / "traces").mkdir()

        code, _, err = run(capsys, "--last", "--data-dir", str(tmp_path))

        assert code == 1
        assert err == f"tessera trace: no spans under {tmp_path / 'traces'}\n"

    def test_an_id_or_last_is_required(self, capsys: pytest.CaptureFixture[str]) -> None:
        with pytest.raises(SystemExit) as exit_info:
            main(["trace"])

        assert exit_info.value.code == 2
        assert "one of the arguments TRACE_ID|REQUEST_ID --last is required" in (
            capsys.readouterr().err
        )


class TestWaterfall:
    @pytest.fixture
    def out(self, stored: Stored, capsys: pytest.CaptureFixture[str]) -> str:
        code, printed, _ = run(capsys, stored.request, "--data-dir", str(stored.data_dir))
        assert code == 0
        return printed

    def test_tree_order_with_children_indented_under_their_parents(self, out: str) -> None:
        assert [(row.service, row.name) for row in rows(out)] == [
            ("gateway", "GET /v1/products/{product_id}/enriched"),
            ("gateway", "  GET"),
            ("catalog", "    GET /v1/products/{product_id}/enriched"),
            ("catalog", "      SELECT products"),
            ("catalog", "      SELECT reviews"),
            ("catalog", "      send inference.v1.predict"),
            ("catalog", "^ outbox relay"),
            ("inference", "inference batch"),
        ]
        assert out.splitlines()[-1].startswith("^ its parent span is not stored")

    def test_offsets_durations_and_status(self, out: str) -> None:
        assert [(row.start, row.duration, row.status) for row in rows(out)][:7] == [
            ("0.00", "20.00", "unset"),
            ("1.00", "17.00", "unset"),
            ("2.00", "14.00", "unset"),
            ("3.00", "1.00", "unset"),
            ("5.00", "2.00", "unset"),
            ("8.00", "7.00", "error"),
            ("17.00", "2.00", "unset"),
        ]

    def test_bars_are_scaled_to_the_terminal(self, out: str) -> None:
        assert all(len(line) <= COLUMNS for line in out.splitlines())
        root, upstream, *_ = rows(out)
        width = len(root.bar)
        assert width >= 20
        assert root.bar == "=" * width  # the root spans the whole trace
        # 1 ms to 18 ms of 20: from the 20th to the 90th hundredth of the width.
        bar = upstream.bar
        assert bar.index("=") == width // 20
        assert bar.rindex("=") + 1 == -(-width * 18 // 20)

    def test_an_error_is_marked_with_its_message_and_not_coloured_in_a_pipe(self, out: str) -> None:
        marked = [row for row in rows(out) if row.mark == "!"]
        assert [row.name.strip() for row in marked] == ["send inference.v1.predict"]
        lines = out.splitlines()
        after = lines[lines.index(marked[0].line) + 1]
        assert after.strip() == "! error: TimeoutError: no reply"
        assert "\x1b[" not in out

    def test_on_a_terminal_error_lines_are_red(self, stored: Stored) -> None:
        found = find(read_spans(stored.data_dir / "traces"), stored.request)
        assert found is not None
        trace_shown = collect(read_spans(stored.data_dir / "traces"), found)

        lines = render(trace_shown, columns=COLUMNS, color=True)

        red = [line for line in lines if line.startswith("\x1b[31m")]
        assert len(red) == 2  # the row and its error line
        assert all(line.endswith("\x1b[0m") for line in red)
        assert "send inference.v1.predict" in red[0]
        assert "! error: TimeoutError: no reply" in red[1]

    def test_a_batch_linking_here_from_another_trace_is_shown(
        self, stored: Stored, out: str
    ) -> None:
        lines = out.splitlines()
        row = rows(out)[-1]
        start = lines.index(row.line) - 1
        assert lines[start] == "spans of other traces linking to this one:"
        assert (row.service, row.name.strip(), row.start, row.duration) == (
            "inference",
            "inference batch",
            "10.00",
            "2.00",
        )
        predict = stored.request_spans["predict"]
        assert lines[start + 2].strip() == (
            f"in trace {stored.batch}, links to 1 span here: {predict}"
        )

    def test_the_batch_lists_the_spans_it_links_to(
        self, stored: Stored, capsys: pytest.CaptureFixture[str]
    ) -> None:
        code, out, _ = run(capsys, stored.batch, "--data-dir", str(stored.data_dir))

        assert code == 0
        lines = out.splitlines()
        assert lines[0].startswith(f"trace {stored.batch}  1 span  services inference  ")
        assert lines[3].strip() == (
            f"links: 2 spans in 2 other traces: {stored.request}, {stored.other_request}"
        )

    def test_links_within_the_trace_name_the_span_ids(self, tmp_path: Path) -> None:
        services = Services(tmp_path)
        root = span(services, "inference", "worker", 0, 10)
        first = span(services, "inference", "a", 1, 2, root)
        batch = span(services, "inference", "batch", 3, 4, root,
                     links=[Link(root.get_span_context()), Link(first.get_span_context())])  # fmt: skip
        services.shutdown()
        found = find(read_spans(tmp_path), ids(batch)[0])
        assert found is not None

        lines = render(collect(read_spans(tmp_path), found), columns=COLUMNS, color=False)

        assert lines[-1].strip() == (
            f"links: 2 spans of this trace: {ids(root)[1]}, {ids(first)[1]}"
        )


class TestWhereSpansGo:
    def stack(self, tmp_path: Path, trace_dir: Path | None) -> LocalStack:
        return LocalStack(
            data_dir=tmp_path,
            host="127.0.0.1",
            ports={"gateway": 18000, "catalog": 18001, "inference": 18002},
            database_url="postgresql://tessera@127.0.0.1:5555/tessera",
            nats_url="nats://127.0.0.1:4444",
            trace_dir=trace_dir,
        )

    def test_every_service_keeps_its_spans_in_the_trace_dir(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.delenv("OTEL_BSP_SCHEDULE_DELAY", raising=False)
        env = service_environment(self.stack(tmp_path, tmp_path / "traces"))

        assert {name: e[TRACE_DIR_VARIABLE] for name, e in env.items()} == {
            name: str(tmp_path / "traces") for name in ("gateway", "catalog", "inference")
        }
        # Exported within half a second, so `tessera trace --last` sees a request at once.
        assert {e["OTEL_BSP_SCHEDULE_DELAY"] for e in env.values()} == {"500"}

    def test_with_a_collector_no_service_writes_spans_to_disk(self, tmp_path: Path) -> None:
        env = service_environment(self.stack(tmp_path, None))

        assert all(TRACE_DIR_VARIABLE not in e for e in env.values())

    @pytest.mark.parametrize(
        ("environ", "endpoint"),
        [
            ({}, None),
            ({"OTEL_EXPORTER_OTLP_ENDPOINT": " "}, None),
            ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://otel:4318/"}, "http://otel:4318/v1/traces"),
            (
                {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://otel:4318/v1/traces"},
                "http://otel:4318/v1/traces",
            ),
        ],
    )
    def test_the_collector_comes_from_the_otlp_variables(
        self, environ: dict[str, str], endpoint: str | None
    ) -> None:
        assert otlp_traces_endpoint(environ) == endpoint
