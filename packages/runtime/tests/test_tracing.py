"""Tracing: when it is on, what the server spans and service spans hold, and off meaning off.

The spans are exported for real, over OTLP/HTTP, to a receiver of the test's own.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import APIRouter
from opentelemetry import context as otel_context
from opentelemetry import trace
from tessera_runtime import ServiceError, create_service_app, outgoing_headers, tracing
from tessera_runtime.tracing import configure_tracing, flush_tracing
from tessera_stack.otlp_receiver import OtlpReceiver, ReceivedSpan, otlp_receiver

INCOMING_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
INCOMING_PARENT = "00f067aa0ba902b7"


class Broken(ServiceError):
    status_code = 500


def _router() -> APIRouter:
    router = APIRouter()

    @router.get("/things/{thing_id}")
    async def thing(thing_id: int) -> dict[str, object]:
        with tracing.span("load thing", attributes={"thing.id": thing_id}):
            inner = outgoing_headers()
        return {
            "outer": outgoing_headers(),
            "inner": inner,
            "current_span_valid": trace.get_current_span().get_span_context().is_valid,
        }

    @router.get("/broken")
    async def broken() -> None:
        raise Broken("the thing broke")

    @router.get("/crash")
    async def crash() -> None:
        raise RuntimeError("unexpected")

    return router


@pytest.fixture
def receiver() -> Iterator[OtlpReceiver]:
    with otlp_receiver() as running:
        yield running


def _traced(receiver: OtlpReceiver, **more: str) -> dict[str, str]:
    return {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint, **more}


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    app = create_service_app(title="things", version="1.2.3", routers=[_router()])
    async with LifespanManager(app) as manager:
        # raise_app_exceptions=False: the bug's 500 reaches the client as a server sends it.
        transport = httpx.ASGITransport(app=manager.app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://things") as running:
            yield running
    configure_tracing("things", "1.2.3", environ={})


def _exported(receiver: OtlpReceiver, count: int) -> list[ReceivedSpan]:
    flush_tracing()
    return receiver.wait_for(lambda spans: len(spans) >= count)


class TestConfiguration:
    def test_off_without_a_collector_or_span_directory(self) -> None:
        assert configure_tracing("things", "1", environ={}) is False
        assert tracing.tracer() is None

    @pytest.mark.parametrize(
        "switch", [{"OTEL_SDK_DISABLED": "true"}, {"OTEL_TRACES_EXPORTER": "none"}]
    )
    def test_the_standard_switches_turn_it_off(
        self, receiver: OtlpReceiver, switch: dict[str, str]
    ) -> None:
        assert configure_tracing("things", "1", environ=_traced(receiver, **switch)) is False
        assert tracing.tracer() is None

    def test_on_with_an_otlp_endpoint(self, receiver: OtlpReceiver) -> None:
        try:
            assert configure_tracing("things", "1", environ=_traced(receiver)) is True
            assert tracing.tracer() is not None
        finally:
            configure_tracing("things", "1", environ={})


class TestServerSpans:
    async def test_a_request_is_a_server_span_named_after_its_route(
        self, receiver: OtlpReceiver, client: httpx.AsyncClient
    ) -> None:
        configure_tracing("things", "1.2.3", environ=_traced(receiver))
        response = await client.get("/things/7", headers={"X-Request-ID": "req-7"})
        assert response.status_code == 200

        spans = _exported(receiver, 2)
        server = next(s for s in spans if s.kind == "server")
        assert server.name == "GET /things/{thing_id}"
        assert server.service == "things"
        assert server.parent_span_id is None
        assert server.attributes["http.route"] == "/things/{thing_id}"
        assert server.attributes["http.response.status_code"] == 200
        assert server.attributes["tessera.request_id"] == "req-7"
        assert server.status == "unset"
        # The response names the server span: the trace a client finds it by.
        _, trace_id, span_id, flags = response.headers["traceparent"].split("-")
        assert (trace_id, span_id, flags) == (server.trace_id, server.span_id, "01")

    async def test_a_span_inside_the_request_is_its_child_and_the_parent_of_calls_made_in_it(
        self, receiver: OtlpReceiver, client: httpx.AsyncClient
    ) -> None:
        configure_tracing("things", "1.2.3", environ=_traced(receiver))
        body = (await client.get("/things/7")).json()

        spans = _exported(receiver, 2)
        server = next(s for s in spans if s.kind == "server")
        inner = next(s for s in spans if s.name == "load thing")
        assert inner.parent_span_id == server.span_id
        assert inner.trace_id == server.trace_id
        assert inner.attributes["thing.id"] == 7
        assert body["inner"]["traceparent"] == f"00-{inner.trace_id}-{inner.span_id}-01"
        assert body["outer"]["traceparent"] == f"00-{server.trace_id}-{server.span_id}-01"
        assert body["inner"]["X-Request-ID"] == body["outer"]["X-Request-ID"]

    async def test_an_incoming_traceparent_is_the_parent(
        self, receiver: OtlpReceiver, client: httpx.AsyncClient
    ) -> None:
        configure_tracing("things", "1.2.3", environ=_traced(receiver))
        traceparent = f"00-{INCOMING_TRACE}-{INCOMING_PARENT}-01"
        await client.get("/things/1", headers={"traceparent": traceparent})

        server = next(s for s in _exported(receiver, 2) if s.kind == "server")
        assert (server.trace_id, server.parent_span_id) == (INCOMING_TRACE, INCOMING_PARENT)

    async def test_an_unsampled_caller_is_followed_and_nothing_is_exported(
        self, receiver: OtlpReceiver, client: httpx.AsyncClient
    ) -> None:
        configure_tracing("things", "1.2.3", environ=_traced(receiver))
        traceparent = f"00-{INCOMING_TRACE}-{INCOMING_PARENT}-00"
        unsampled = await client.get("/things/1", headers={"traceparent": traceparent})
        await client.get("/things/2")  # sampled: shows the export works

        spans = _exported(receiver, 2)
        assert INCOMING_TRACE not in {s.trace_id for s in spans}
        _, trace_id, _, flags = unsampled.headers["traceparent"].split("-")
        assert (trace_id, flags) == (INCOMING_TRACE, "00")

    async def test_a_zero_ratio_samples_no_new_trace(
        self, receiver: OtlpReceiver, client: httpx.AsyncClient
    ) -> None:
        configure_tracing("things", "1.2.3", environ=_traced(receiver, OTEL_TRACES_SAMPLER_ARG="0"))
        responses = [await client.get("/things/1") for _ in range(20)]
        # Unsampled requests take tracing-off's path: no span, inside either.
        assert {r.json()["current_span_valid"] for r in responses} == {False}
        assert all(r.json()["inner"] == r.json()["outer"] for r in responses)
        # A sampled parent still wins over the ratio (parent-based).
        traceparent = f"00-{INCOMING_TRACE}-{INCOMING_PARENT}-01"
        await client.get("/things/2", headers={"traceparent": traceparent})

        spans = _exported(receiver, 2)
        assert {s.trace_id for s in spans} == {INCOMING_TRACE}
        assert all(r.headers["traceparent"].endswith("-00") for r in responses)

    async def test_probes_and_scrapes_are_not_traced(
        self, receiver: OtlpReceiver, client: httpx.AsyncClient
    ) -> None:
        configure_tracing("things", "1.2.3", environ=_traced(receiver))
        for path in ("/healthz", "/metrics"):
            assert (await client.get(path)).status_code == 200
        await client.get("/things/3")

        spans = _exported(receiver, 2)
        assert {s.attributes.get("http.route") for s in spans if s.kind == "server"} == {
            "/things/{thing_id}"
        }

    @pytest.mark.parametrize("path", ["/broken", "/crash"])
    async def test_a_500_marks_the_span_as_an_error_with_the_exception(
        self, receiver: OtlpReceiver, client: httpx.AsyncClient, path: str
    ) -> None:
        configure_tracing("things", "1.2.3", environ=_traced(receiver))
        assert (await client.get(path)).status_code == 500

        server = _exported(receiver, 1)[0]
        assert server.name == f"GET {path}"
        assert server.status == "error"
        assert "exception" in server.events

    async def test_a_404_is_not_a_server_error(
        self, receiver: OtlpReceiver, client: httpx.AsyncClient
    ) -> None:
        configure_tracing("things", "1.2.3", environ=_traced(receiver))
        assert (await client.get("/nowhere")).status_code == 404

        server = _exported(receiver, 1)[0]
        assert server.status == "unset"
        assert server.attributes["http.response.status_code"] == 404


class TestOff:
    async def test_switched_off_nothing_is_recorded_and_the_cheap_context_still_flows(
        self, receiver: OtlpReceiver, client: httpx.AsyncClient
    ) -> None:
        # A collector is configured, and the standard switch says no.
        assert not configure_tracing(
            "things", "1.2.3", environ=_traced(receiver, OTEL_TRACES_EXPORTER="none")
        )
        traceparent = f"00-{INCOMING_TRACE}-{INCOMING_PARENT}-01"
        response = await client.get("/things/1", headers={"traceparent": traceparent})

        body = response.json()
        # tracing.span is a no-op: the inner call names the request's own hop.
        assert body["inner"] == body["outer"]
        assert body["current_span_valid"] is False
        _, trace_id, span_id, _ = response.headers["traceparent"].split("-")
        assert trace_id == INCOMING_TRACE
        assert body["outer"]["traceparent"] == f"00-{trace_id}-{span_id}-01"
        flush_tracing()
        assert receiver.requests == 0


class TestSampling:
    async def test_a_ratio_keeps_about_that_share_of_new_traces(
        self, receiver: OtlpReceiver, client: httpx.AsyncClient
    ) -> None:
        configure_tracing(
            "things", "1.2.3", environ=_traced(receiver, OTEL_TRACES_SAMPLER_ARG="0.25")
        )
        responses = [await client.get("/things/1") for _ in range(400)]

        sampled = [r for r in responses if r.headers["traceparent"].endswith("-01")]
        # Binomial(400, 0.25): mean 100, standard deviation 8.7; 5 of them either way.
        assert 56 <= len(sampled) <= 144
        servers = [s for s in _exported(receiver, 2 * len(sampled)) if s.kind == "server"]
        assert {s.trace_id for s in servers} == {
            r.headers["traceparent"].split("-")[1] for r in sampled
        }

    def test_an_sdk_sampler_named_in_the_environment_decides_instead(
        self, receiver: OtlpReceiver, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("OTEL_TRACES_SAMPLER", "always_off")
        configure_tracing(
            "things", "1", environ=_traced(receiver, OTEL_TRACES_SAMPLER="always_off")
        )
        try:
            with tracing.span("dropped", parent=otel_context.Context()) as dropped:
                assert dropped is not None  # the SDK was asked, and said no
                assert not dropped.is_recording()
        finally:
            configure_tracing("things", "1", environ={})

    def test_a_ratio_that_is_no_number_keeps_everything(self, receiver: OtlpReceiver) -> None:
        for ratio in ("nan", "inf", "many"):
            assert configure_tracing(
                "things", "1", environ=_traced(receiver, OTEL_TRACES_SAMPLER_ARG=ratio)
            )
            with tracing.span("kept", parent=otel_context.Context()) as kept:
                assert kept is not None
                assert kept.is_recording()
        configure_tracing("things", "1", environ={})

    def test_a_new_trace_linked_to_a_sampled_one_is_kept_at_any_ratio(
        self, receiver: OtlpReceiver
    ) -> None:
        configure_tracing("things", "1", environ=_traced(receiver, OTEL_TRACES_SAMPLER_ARG="0"))
        try:
            sampled = tracing.link_to(f"00-{INCOMING_TRACE}-{INCOMING_PARENT}-01")
            unsampled = tracing.link_to(f"00-{INCOMING_TRACE}-{INCOMING_PARENT}-00")
            assert sampled is not None
            assert unsampled is not None
            root = otel_context.Context()
            with tracing.span("relay", parent=root, links=[sampled]) as linked:
                assert linked is not None
                assert linked.is_recording()
            # Not kept: no SDK span at all, as with tracing off.
            with tracing.span("relay", parent=root, links=[unsampled]) as other:
                assert other is None
            with tracing.span("relay", parent=root) as alone:
                assert alone is None
        finally:
            configure_tracing("things", "1", environ={})

    async def test_a_method_of_the_clients_own_is_folded(
        self, receiver: OtlpReceiver, client: httpx.AsyncClient
    ) -> None:
        configure_tracing("things", "1.2.3", environ=_traced(receiver))
        await client.request("FROBNICATE", "/things/1")

        server = _exported(receiver, 1)[0]
        assert server.name.startswith("HTTP ")
        assert server.attributes["http.request.method"] == "_OTHER"
        assert server.attributes["http.request.method_original"] == "FROBNICATE"
