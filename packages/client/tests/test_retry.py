"""Retries and correlation headers, through a real flaky server in front of the gateway."""

from __future__ import annotations

import socket
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest
from tessera_client import (
    TesseraClient,
    TesseraConnectionError,
    TesseraError,
    TesseraSyncClient,
    trace_context,
)
from tessera_contracts import v1

from .conftest import Stack, v1_product
from .servers import Forwarder, forwarder

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


@pytest.fixture
def flaky(stack: Stack) -> Iterator[Forwarder]:
    with forwarder(stack.gateway) as server:
        yield server


def _client(
    url: str, stack: Stack, *, max_retries: int = 2, retry_after_max_s: float = 30.0
) -> TesseraClient:
    return TesseraClient(
        url,
        api_key=stack.key,
        retry_backoff_s=0.01,
        max_retries=max_retries,
        retry_after_max_s=retry_after_max_s,
    )


class TestRetries:
    async def test_safe_operation_is_repeated_after_503(
        self, flaky: Forwarder, stack: Stack
    ) -> None:
        async with _client(flaky.url, stack) as client:
            created = await client.v1.create_product(v1_product())
            flaky.seen.clear()
            flaky.fail_next = [(503, {}), (502, {})]

            fetched = await client.v1.get_product(created.id)

        assert fetched == created
        assert len(flaky.seen) == 3
        # One call, one request id, however many attempts.
        assert len({seen.headers["x-request-id"] for seen in flaky.seen}) == 1

    async def test_unsafe_operation_is_not_repeated(self, flaky: Forwarder, stack: Stack) -> None:
        flaky.fail_next = [(503, {})]
        async with _client(flaky.url, stack) as client:
            with pytest.raises(TesseraError) as raised:
                await client.v1.create_product(v1_product())

        assert raised.value.status == 503
        assert len(flaky.seen) == 1

    async def test_create_with_idempotency_key_is_repeated(
        self, flaky: Forwarder, stack: Stack
    ) -> None:
        flaky.fail_next = [(503, {})]
        async with _client(flaky.url, stack) as client:
            created = await client.v1.create_product(v1_product(), idempotency_key=uuid.uuid4().hex)

        assert isinstance(created, v1.Product)
        assert [seen.method for seen in flaky.seen] == ["POST", "POST"]

    async def test_gives_up_after_max_retries(self, flaky: Forwarder, stack: Stack) -> None:
        flaky.fail_next = [(503, {})] * 5
        async with _client(flaky.url, stack, max_retries=2) as client:
            with pytest.raises(TesseraError) as raised:
                await client.v1.list_products()

        assert raised.value.status == 503
        assert len(flaky.seen) == 3

    async def test_retry_after_is_honoured(self, flaky: Forwarder, stack: Stack) -> None:
        flaky.fail_next = [(429, {"Retry-After": "1"})]
        async with _client(flaky.url, stack) as client:
            started = time.monotonic()
            await client.v1.list_products(limit=1)
            elapsed = time.monotonic() - started

        assert elapsed >= 1.0
        assert len(flaky.seen) == 2

    async def test_a_retry_after_beyond_the_cap_raises_at_once(
        self, flaky: Forwarder, stack: Stack
    ) -> None:
        flaky.fail_next = [(503, {"Retry-After": "3600"})]
        async with _client(flaky.url, stack, retry_after_max_s=0.2) as client:
            started = time.monotonic()
            with pytest.raises(TesseraError) as raised:
                await client.v1.list_products(limit=1)

        assert time.monotonic() - started < 5
        assert raised.value.status == 503
        assert raised.value.headers["retry-after"] == "3600"
        assert len(flaky.seen) == 1

    async def test_a_malformed_request_is_not_repeated(
        self, flaky: Forwarder, stack: Stack
    ) -> None:
        async with _client(flaky.url, stack) as client:
            with pytest.raises(httpx.LocalProtocolError):
                await client.send(v1.LIST_PRODUCTS, extra_headers={"bad name": "x"})

        assert flaky.seen == []

    async def test_a_header_value_with_a_line_break_is_refused(
        self, flaky: Forwarder, stack: Stack
    ) -> None:
        async with _client(flaky.url, stack) as client:
            with trace_context(request_id="r-1\r\nX-Scope: admin"):
                with pytest.raises(ValueError, match="X-Request-ID"):
                    await client.v1.list_products(limit=1)
            with pytest.raises(ValueError, match="X-Tenant"):
                await client.send(v1.LIST_PRODUCTS, extra_headers={"X-Tenant": "a\nb"})

        assert flaky.seen == []

    async def test_refused_connection_is_retried_then_raised(self) -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]  # closed once the block ends: nothing listens
        async with TesseraClient(f"http://127.0.0.1:{port}", max_retries=1) as client:
            with pytest.raises(TesseraConnectionError) as raised:
                await client.v1.list_products()

        assert raised.value.attempts == 2

    def test_sync_client_repeats_safe_operations_only(self, flaky: Forwarder, stack: Stack) -> None:
        with TesseraSyncClient(flaky.url, api_key=stack.key, retry_backoff_s=0.01) as client:
            flaky.fail_next = [(503, {})]
            page = client.v1.list_products(limit=1)
            flaky.fail_next = [(503, {})]
            with pytest.raises(TesseraError):
                client.v1.create_product(v1_product())

        assert page.limit == 1
        assert [seen.method for seen in flaky.seen] == ["GET", "GET", "POST"]


class TestCorrelation:
    async def test_each_call_gets_a_request_id_and_the_gateway_starts_its_trace(
        self, flaky: Forwarder, stack: Stack
    ) -> None:
        async with _client(flaky.url, stack) as client:
            reply = await client.send(v1.LIST_PRODUCTS, query={"limit": 1})
            await client.v1.list_products(limit=1)

        first, second = (seen.headers for seen in flaky.seen)
        assert first["x-request-id"] != second["x-request-id"]
        assert reply.request_id == first["x-request-id"]  # the gateway echoes it
        # No sampled parent claimed: the gateway's sampler decides.
        assert "traceparent" not in first
        assert "traceparent" not in second

    async def test_the_callers_context_is_propagated(self, flaky: Forwarder, stack: Stack) -> None:
        async with _client(flaky.url, stack) as client:
            with trace_context(traceparent=TRACEPARENT, request_id="req-42"):
                reply = await client.send(v1.LIST_PRODUCTS, query={"limit": 1})

        assert flaky.seen[0].headers["traceparent"] == TRACEPARENT
        assert flaky.seen[0].headers["x-request-id"] == "req-42"
        assert reply.request_id == "req-42"

    def test_invalid_traceparent_is_refused(self) -> None:
        with pytest.raises(ValueError, match="traceparent"), trace_context(traceparent="00-0-0-01"):
            pass
