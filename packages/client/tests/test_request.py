"""How the generic core builds a request from any operation (no server needed)."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest
from pydantic import Field, ValidationError
from tessera_client._request import prepare
from tessera_client._retry import RetryConfig, retry_after_s
from tessera_client._sse import LineSplitter, SseDecoder, SseOverflow, SseParser
from tessera_client._trace import trace_context
from tessera_contracts import Operation, v1, v2
from tessera_contracts.parameters import ProductOffsetQuery


class ScratchQuery(ProductOffsetQuery):
    """A query with one more optional parameter, as a contract change would add it."""

    colour: str | None = Field(default=None, max_length=20)


SCRATCH = Operation(
    id="list_products",
    version="v1",
    method="GET",
    path="/v1/products",
    owner="catalog",
    scope="catalog:read",
    summary="A scratch operation declared in a test.",
    query=ScratchQuery,
    response=v1.ProductPage,
)


class TestPrepare:
    def test_path_values_are_percent_encoded(self) -> None:
        prepared = prepare(v2.MODEL_VERSION_READY, path={"name": "a/b c?", "version": "1.0"})

        assert prepared.url == "/v2/models/a%2Fb%20c%3F/versions/1.0/ready"

    def test_query_sends_only_the_values_given(self) -> None:
        prepared = prepare(v1.LIST_PRODUCTS, query={"q": "lamp", "category": None, "limit": 5})

        assert list(prepared.params.multi_items()) == [("q", "lamp"), ("limit", "5")]

    def test_an_ad_hoc_operations_new_parameter_is_sent(self) -> None:
        prepared = prepare(SCRATCH, query={"colour": "teal", "offset": 3})

        assert dict(prepared.params) == {"colour": "teal", "offset": "3"}
        with pytest.raises(ValidationError):
            prepare(SCRATCH, query={"colour": "x" * 21})

    def test_unknown_parameters_are_refused(self) -> None:
        with pytest.raises(TypeError, match="colour"):
            prepare(v1.LIST_PRODUCTS, query={"colour": "teal"})
        with pytest.raises(TypeError, match="takes no path"):
            prepare(v1.LIST_PRODUCTS, path={"product_id": uuid.uuid4()})

    def test_query_is_validated_by_its_model(self) -> None:
        with pytest.raises(ValidationError, match="q"):
            prepare(v1.LIST_PRODUCTS, query={"q": "nul\x00byte"})

    def test_headers_by_field_name_or_alias(self) -> None:
        by_name = prepare(v1.CREATE_PRODUCT, headers={"idempotency_key": "k-1"})
        by_alias = prepare(v1.CREATE_PRODUCT, headers={"Idempotency-Key": "k-1"})

        assert by_name.headers["Idempotency-Key"] == by_alias.headers["Idempotency-Key"] == "k-1"
        with pytest.raises(ValidationError):
            prepare(v1.CREATE_PRODUCT, headers={"idempotency_key": "has space"})

    def test_patch_body_holds_exactly_the_fields_set(self) -> None:
        prepared = prepare(
            v1.UPDATE_PRODUCT,
            path={"product_id": uuid.uuid4()},
            body=v1.ProductUpdate(price=9.5, features=None),
        )

        assert prepared.content is not None
        assert json.loads(prepared.content) == {"price": 9.5, "features": None}

    def test_correlation_headers_come_from_the_context(self) -> None:
        parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        fresh = prepare(v1.LIST_PRODUCTS)
        with trace_context(traceparent=parent, tracestate="k=v", request_id="r-1"):
            inherited = prepare(v1.LIST_PRODUCTS)

        # No caller context: no traceparent, the gateway's sampler decides.
        assert "traceparent" not in fresh.headers
        assert (inherited.headers["traceparent"], inherited.headers["tracestate"]) == (
            parent,
            "k=v",
        )
        assert inherited.headers["X-Request-ID"] == "r-1"

    def test_a_request_id_set_by_the_caller_replaces_the_new_one(self) -> None:
        prepared = prepare(v1.LIST_PRODUCTS, extra_headers={"x-request-id": "mine"})

        assert prepared.headers.get_list("X-Request-ID") == ["mine"]


class TestSseParser:
    def feed(self, text: str) -> list[tuple[str, str, str | None]]:
        parser = SseParser()
        events = [parser.feed(line) for line in text.split("\n")]
        return [(e.event, e.data, e.id) for e in events if e is not None]

    def test_fields_comments_and_multiline_data(self) -> None:
        text = ": ping\nevent: a\nid: 1\ndata: x\ndata:  y\n\ndata: z\n\n"

        assert self.feed(text) == [("a", "x\n y", "1"), ("message", "z", "1")]

    def test_an_id_only_event_moves_the_position(self) -> None:
        assert self.feed("id: 5\n\n: keep-alive\n\n") == [("message", "", "5")]

    def test_retry_is_read(self) -> None:
        parser = SseParser()
        for line in ("retry: 250", "retry: soon", ""):
            parser.feed(line)

        assert parser.retry_ms == 250


class TestRetryTiming:
    def test_retry_after_seconds_and_date(self) -> None:
        later = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)

        assert retry_after_s("7") == 7.0
        assert 25 < (retry_after_s(later) or 0) <= 30
        assert retry_after_s("soon") is None

    def test_backoff_is_capped(self) -> None:
        config = RetryConfig(backoff_s=1.0, backoff_max_s=0.5)

        assert all(0 <= config.backoff(n) <= 0.5 for n in range(10))


class TestHeaderValues:
    @pytest.mark.parametrize("value", ["a\r\nInjected: 1", "a\nb", "caf\u00e9", "tab\there"])
    def test_extra_header_values_must_be_printable_ascii(self, value: str) -> None:
        with pytest.raises(ValueError, match="X-Tenant"):
            prepare(v1.LIST_PRODUCTS, extra_headers={"X-Tenant": value})

    def test_trace_context_values_are_checked(self) -> None:
        parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        with trace_context(request_id="r\r\nX: y"), pytest.raises(ValueError, match="X-Request-ID"):
            prepare(v1.LIST_PRODUCTS)
        with (
            trace_context(traceparent=parent, tracestate="k=v\n"),
            pytest.raises(ValueError, match="tracestate"),
        ):
            prepare(v1.LIST_PRODUCTS)


class TestDotSegments:
    @pytest.mark.parametrize(("version", "encoded"), [(".", "%2E"), ("..", "%2E%2E")])
    def test_a_dot_segment_is_encoded(self, version: str, encoded: str) -> None:
        prepared = prepare(v2.MODEL_VERSION_READY, path={"name": "x", "version": version})

        assert prepared.url == f"/v2/models/x/versions/{encoded}/ready"

    def test_dots_inside_a_segment_stay(self) -> None:
        prepared = prepare(v2.MODEL_VERSION_READY, path={"name": "x", "version": "..1"})

        assert prepared.url == "/v2/models/x/versions/..1/ready"


class TestLineSplitter:
    def test_only_cr_lf_and_crlf_end_lines(self) -> None:
        splitter = LineSplitter()

        lines = list(splitter.feed("a\u2028b\u2029c\u0085d\x0be\x0cf\x1cg\r1\n2\r\n3\n".encode()))

        assert lines == ["a\u2028b\u2029c\u0085d\x0be\x0cf\x1cg", "1", "2", "3"]

    def test_a_crlf_split_between_chunks_is_one_line_end(self) -> None:
        splitter = LineSplitter()
        chunks = [b"data: a\r", b"\ndata: b\r", b"", b"\n\r", b"x\n"]

        assert [line for chunk in chunks for line in splitter.feed(chunk)] == [
            "data: a",
            "data: b",
            "",
            "x",
        ]

    def test_a_utf8_sequence_split_between_chunks_is_decoded_whole(self) -> None:
        splitter = LineSplitter()
        encoded = "é\u2028\n".encode()

        assert [*splitter.feed(encoded[:1]), *splitter.feed(encoded[1:])] == ["é\u2028"]

    def test_a_line_beyond_the_cap_is_refused(self) -> None:
        splitter = LineSplitter(max_line_bytes=8)
        assert list(splitter.feed(b"12345")) == []

        assert list(splitter.feed(b"678\n")) == ["12345678"]
        assert list(splitter.feed(b"12345")) == []
        with pytest.raises(SseOverflow):
            list(splitter.feed(b"6789"))

    def test_lines_before_an_overflow_come_first(self) -> None:
        lines = LineSplitter(max_line_bytes=4).feed(b"ab\ncd\nefghij\n")

        assert [next(lines), next(lines)] == ["ab", "cd"]
        with pytest.raises(SseOverflow):
            next(lines)

    def test_event_data_beyond_the_cap_is_refused(self) -> None:
        decoder = SseDecoder(max_data_bytes=10)

        assert [e.data for e in decoder.feed(b"data: 1234\ndata: 1234\n\n")] == ["1234\n1234"]
        with pytest.raises(SseOverflow):
            list(decoder.feed(b"data: 1234\ndata: 12345\n"))


class TestDigits:
    def test_retry_field_takes_ascii_digits_only(self) -> None:
        parser = SseParser()
        for line in ("retry: 250", "retry: ²", "retry: ٣", ""):
            parser.feed(line)

        assert parser.retry_ms == 250

    def test_retry_after_takes_ascii_digits_only(self) -> None:
        assert retry_after_s("²") is None
        assert retry_after_s("12") == 12.0

    def test_a_retry_after_beyond_the_cap_ends_the_retries(self) -> None:
        config = RetryConfig(retry_after_max_s=5.0)
        request = httpx.Request("GET", "http://x/")

        def after(value: str) -> httpx.Response:
            return httpx.Response(503, headers={"Retry-After": value}, request=request)

        assert config.pause(0, after("5")) == 5.0
        assert config.pause(0, after("6")) is None
