"""Request ids and W3C trace context: taken, generated, bound and passed on."""

from __future__ import annotations

import re

import httpx
import pytest
from tessera_runtime import bind_context, outgoing_headers, request_id
from tessera_runtime.context import current_context, new_context, parse_traceparent

TRACEPARENT_RE = re.compile(r"00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")
INCOMING_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
INCOMING_PARENT = "00f067aa0ba902b7"
INCOMING_TRACEPARENT = f"00-{INCOMING_TRACE}-{INCOMING_PARENT}-01"


def split_traceparent(value: str) -> tuple[str, str, str]:
    match = TRACEPARENT_RE.fullmatch(value)
    assert match is not None, value
    trace_id, span_id, flags = match.groups()
    return trace_id, span_id, flags


class TestRequestId:
    async def test_sane_incoming_id_is_echoed_and_bound(self, client: httpx.AsyncClient) -> None:
        response = await client.get("/v1/products/1", headers={"X-Request-ID": "req-42.a_b"})

        assert response.headers["x-request-id"] == "req-42.a_b"
        body = response.json()
        assert body["request_id"] == "req-42.a_b"
        assert body["outgoing"]["X-Request-ID"] == "req-42.a_b"

    async def test_missing_id_is_generated_as_uuid4_hex(self, client: httpx.AsyncClient) -> None:
        first = await client.get("/v1/products/1")
        second = await client.get("/v1/products/1")

        ids = [first.headers["x-request-id"], second.headers["x-request-id"]]
        assert all(re.fullmatch(r"[0-9a-f]{32}", rid) for rid in ids)
        assert ids[0] != ids[1]
        assert first.json()["request_id"] == ids[0]

    @pytest.mark.parametrize(
        "insane",
        [
            "x" * 129,
            "has space",
            'quote"d',
            "semi;colon",
            "ünïcode",
            "",
        ],
    )
    async def test_insane_id_is_replaced(self, client: httpx.AsyncClient, insane: str) -> None:
        response = await client.get("/v1/products/1", headers=[(b"x-request-id", insane.encode())])

        rid = response.headers["x-request-id"]
        assert rid != insane
        assert re.fullmatch(r"[0-9a-f]{32}", rid)

    async def test_longest_allowed_id_is_kept(self, client: httpx.AsyncClient) -> None:
        rid = "a" * 128

        response = await client.get("/v1/products/1", headers={"X-Request-ID": rid})

        assert response.headers["x-request-id"] == rid

    async def test_header_is_sent_once(self, client: httpx.AsyncClient) -> None:
        response = await client.get("/healthz", headers={"X-Request-ID": "once"})

        assert response.headers.get_list("x-request-id") == ["once"]

    async def test_context_does_not_leak_out_of_the_request(
        self, client: httpx.AsyncClient
    ) -> None:
        # httpx's ASGITransport runs the app in the caller's task, like a test would.
        await client.get("/v1/products/1", headers={"X-Request-ID": "leak-check"})

        assert request_id() is None
        assert outgoing_headers() == {}


class TestTraceparent:
    async def test_incoming_trace_continues_with_a_new_parent_span(
        self, client: httpx.AsyncClient
    ) -> None:
        response = await client.get("/v1/products/1", headers={"traceparent": INCOMING_TRACEPARENT})

        trace_id, span_id, flags = split_traceparent(response.json()["outgoing"]["traceparent"])
        assert trace_id == INCOMING_TRACE
        assert span_id != INCOMING_PARENT
        assert span_id != "0" * 16
        assert flags == "01"

    async def test_missing_traceparent_starts_a_new_trace(self, client: httpx.AsyncClient) -> None:
        first = await client.get("/v1/products/1")
        second = await client.get("/v1/products/1")

        first_trace, _, flags = split_traceparent(first.json()["outgoing"]["traceparent"])
        second_trace, _, _ = split_traceparent(second.json()["outgoing"]["traceparent"])
        assert first_trace != second_trace
        assert first_trace != "0" * 32
        assert flags == "00"

    @pytest.mark.parametrize(
        "invalid",
        [
            "garbage",
            f"00-{'0' * 32}-{INCOMING_PARENT}-01",  # all-zero trace id
            f"00-{INCOMING_TRACE}-{'0' * 16}-01",  # all-zero parent id
            f"ff-{INCOMING_TRACE}-{INCOMING_PARENT}-01",  # forbidden version
            f"00-{INCOMING_TRACE.upper()}-{INCOMING_PARENT}-01",  # upper-case hex
            f"00-{INCOMING_TRACE}-{INCOMING_PARENT}-01-extra",  # v00 has four fields
        ],
    )
    async def test_invalid_traceparent_starts_a_new_trace(
        self, client: httpx.AsyncClient, invalid: str
    ) -> None:
        response = await client.get("/v1/products/1", headers={"traceparent": invalid})

        trace_id, _, _ = split_traceparent(response.json()["outgoing"]["traceparent"])
        assert trace_id not in (INCOMING_TRACE, INCOMING_TRACE.upper(), "0" * 32)

    def test_future_version_is_parsed_ignoring_extra_fields(self) -> None:
        assert parse_traceparent(f"01-{INCOMING_TRACE}-{INCOMING_PARENT}-03-what-ever") == (
            INCOMING_TRACE,
            INCOMING_PARENT,
            "01",  # only the sampled bit is passed on
        )


class TestBindContext:
    def test_binds_from_message_headers_case_insensitively(self) -> None:
        headers = {"x-request-id": "msg-1", "Traceparent": INCOMING_TRACEPARENT}

        with bind_context(headers) as ctx:
            assert request_id() == "msg-1"
            assert ctx.trace_id == INCOMING_TRACE
            out = outgoing_headers()
            assert out["X-Request-ID"] == "msg-1"
            trace_id, span_id, _ = split_traceparent(out["traceparent"])
            assert trace_id == INCOMING_TRACE
            assert span_id == ctx.span_id != INCOMING_PARENT

        assert current_context() is None

    def test_none_starts_a_fresh_context(self) -> None:
        binding = bind_context(None)
        try:
            assert request_id() is not None
            assert set(outgoing_headers()) == {"X-Request-ID", "traceparent"}
        finally:
            binding.reset()
        assert request_id() is None

    def test_nesting_restores_the_outer_context(self) -> None:
        with bind_context({"X-Request-ID": "outer"}):
            with bind_context({"X-Request-ID": "inner"}):
                assert request_id() == "inner"
            assert request_id() == "outer"

    def test_reset_is_idempotent(self) -> None:
        binding = bind_context({"X-Request-ID": "twice"})
        binding.reset()
        binding.reset()

        assert request_id() is None

    def test_insane_message_request_id_is_replaced(self) -> None:
        with bind_context({"X-Request-ID": "bad\nid"}) as ctx:
            assert ctx.request_id != "bad\nid"
            assert re.fullmatch(r"[0-9a-f]{32}", ctx.request_id)


def test_new_context_gives_each_hop_its_own_span() -> None:
    a = new_context("r", INCOMING_TRACEPARENT)
    b = new_context("r", INCOMING_TRACEPARENT)

    assert a.trace_id == b.trace_id == INCOMING_TRACE
    assert a.span_id != b.span_id
    assert a.traceparent == f"00-{INCOMING_TRACE}-{a.span_id}-01"
