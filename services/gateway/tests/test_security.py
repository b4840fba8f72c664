"""Authentication, scopes, rate limits and body limits, in front of the real catalog."""

from __future__ import annotations

import functools
import logging
from collections.abc import AsyncIterator

import httpx
import pytest
from pydantic import HttpUrl
from tessera_contracts.problem import Problem
from tessera_stack import testing
from tessera_stack.testing import product_body

from .conftest import Clock, Keys, MakeGateway, Tap, in_front_of, serve

PRODUCTS = "/v1/products"


@pytest.fixture
def before_catalog(make_gateway: MakeGateway, catalog_url: str) -> MakeGateway:
    """`make_gateway` in front of the real catalog: `async with before_catalog(**settings)`."""
    return functools.partial(make_gateway, catalog_url=HttpUrl(catalog_url))


def assert_problem(response: httpx.Response, status: int) -> Problem:
    problem = testing.assert_problem(response, status)
    assert "Traceback" not in response.text
    return problem


class TestAuthentication:
    async def test_write_without_key_is_401_with_challenge(
        self, gateway: httpx.AsyncClient
    ) -> None:
        response = await gateway.post(PRODUCTS, json=product_body("SEC-0001"))

        assert_problem(response, 401)
        assert response.headers["www-authenticate"].startswith("Bearer")

    async def test_invalid_key_is_401_even_for_reads(
        self, gateway: httpx.AsyncClient, keys: Keys
    ) -> None:
        forged = keys.reader[:-4] + "AAAA"

        bearer = await gateway.get(PRODUCTS, headers=Keys.bearer(forged))
        header = await gateway.get(PRODUCTS, headers={"X-API-Key": "tsk_nobody_secret"})
        scheme = await gateway.get(PRODUCTS, headers={"Authorization": f"Basic {keys.reader}"})

        for response in (bearer, header, scheme):
            assert_problem(response, 401)
            assert "www-authenticate" in response.headers

    async def test_missing_scope_is_403(self, gateway: httpx.AsyncClient, keys: Keys) -> None:
        response = await gateway.post(
            PRODUCTS, json=product_body("SEC-0002"), headers=Keys.bearer(keys.reader)
        )

        problem = assert_problem(response, 403)
        assert "catalog:write" in (problem.detail or "")

    async def test_x_api_key_header_works(self, gateway: httpx.AsyncClient, keys: Keys) -> None:
        response = await gateway.post(
            PRODUCTS, json=product_body("SEC-0003"), headers={"X-API-Key": keys.writer}
        )

        assert response.status_code == 201

    async def test_anonymous_reads_can_be_turned_off(
        self, before_catalog: MakeGateway, keys: Keys
    ) -> None:
        async with before_catalog(anonymous_reads=False) as gateway:
            anonymous = await gateway.get(PRODUCTS)
            with_key = await gateway.get(PRODUCTS, headers=Keys.bearer(keys.reader))

        assert_problem(anonymous, 401)
        assert with_key.status_code == 200

    async def test_keys_never_reach_the_logs(
        self, gateway: httpx.AsyncClient, keys: Keys, caplog: pytest.LogCaptureFixture
    ) -> None:
        caplog.set_level(logging.DEBUG)
        forged = keys.writer[:-4] + "AAAA"

        await gateway.post(
            PRODUCTS, json=product_body("SEC-0004"), headers=Keys.bearer(keys.writer)
        )
        await gateway.get(PRODUCTS, headers={"X-API-Key": forged})
        await gateway.get(PRODUCTS, headers=Keys.bearer(keys.reader))

        assert caplog.records  # the access log saw these requests
        for record in caplog.records:
            text = repr(record.__dict__) + record.getMessage()
            for secret in (keys.writer, keys.reader, forged):
                assert secret not in text


class TestForwardedHeaders:
    async def test_credentials_stay_and_correlation_goes_on(
        self, make_gateway: MakeGateway, catalog_url: str, keys: Keys
    ) -> None:
        tap = Tap(catalog_url)
        trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
        async with serve(tap) as tapped, make_gateway(catalog_url=HttpUrl(tapped)) as gateway:
            response = await gateway.post(
                PRODUCTS,
                json=product_body("SEC-0101"),
                headers={
                    "Authorization": f"Bearer {keys.writer}",
                    "X-Request-ID": "req-sec-0101",
                    "traceparent": f"00-{trace_id}-00f067aa0ba902b7-01",
                    "Idempotency-Key": "sec-0101",
                },
            )

        assert response.status_code == 201
        assert response.headers["x-request-id"] == "req-sec-0101"
        [(method, path, seen)] = tap.seen
        assert (method, path) == ("POST", PRODUCTS)
        assert "authorization" not in seen
        assert "x-api-key" not in seen
        assert seen["x-request-id"] == "req-sec-0101"
        assert seen["idempotency-key"] == "sec-0101"
        version, trace, parent, flags = seen["traceparent"].split("-")
        assert (version, trace, flags) == ("00", trace_id, "01")
        assert parent != "00f067aa0ba902b7"  # the gateway is a hop of its own


class TestRateLimit:
    async def test_bucket_empties_into_429_with_retry_after(
        self, before_catalog: MakeGateway, keys: Keys
    ) -> None:
        # A clock of the test's own: a slow machine's real seconds would refill the bucket.
        clock = Clock()
        async with before_catalog(clock=clock, rate_limit_burst=2, rate_limit_per_s=0.5) as gateway:
            reader = Keys.bearer(keys.reader)
            first = await gateway.get(PRODUCTS, headers=reader)
            second = await gateway.get(PRODUCTS, headers=reader)
            limited = await gateway.get(PRODUCTS, headers=reader)
            # Another key (and anonymous callers) have buckets of their own.
            other = await gateway.get(PRODUCTS, headers=Keys.bearer(keys.writer))
            anonymous = await gateway.get(PRODUCTS)

        assert (first.status_code, second.status_code) == (200, 200)
        assert first.headers["ratelimit-limit"] == "2"
        assert first.headers["ratelimit-remaining"] == "1"
        assert second.headers["ratelimit-remaining"] == "0"
        assert first.headers["ratelimit-policy"] == "2;w=4"
        assert_problem(limited, 429)
        assert limited.headers["retry-after"] == "2"
        assert limited.headers["ratelimit-remaining"] == "0"
        assert other.status_code == 200
        assert anonymous.status_code == 200

    async def test_anonymous_callers_are_limited_by_address(
        self, before_catalog: MakeGateway
    ) -> None:
        async with before_catalog(
            anonymous_rate_limit_burst=1, anonymous_rate_limit_per_s=0.1
        ) as gateway:
            first = await gateway.get(PRODUCTS)
            second = await gateway.get(PRODUCTS)

        assert first.status_code == 200
        assert_problem(second, 429)
        assert second.headers["retry-after"] == "10"


class TestFailedAuthenticationLimit:
    async def test_wrong_keys_from_one_address_are_blocked_after_the_burst(
        self, before_catalog: MakeGateway, keys: Keys
    ) -> None:
        async with before_catalog(auth_failure_burst=10, auth_failure_rate_per_s=0.01) as gateway:
            wrong = [
                await gateway.get(PRODUCTS, headers=Keys.bearer(f"tsk_reader_guess{n}"))
                for n in range(300)
            ]
            # Blocked: keys are not checked at all, so a right guess tells nothing.
            right_key = await gateway.get(PRODUCTS, headers=Keys.bearer(keys.reader))
            other_scheme = await gateway.get(PRODUCTS, headers={"Authorization": "Basic eDp5"})
            anonymous = await gateway.get(PRODUCTS)

        assert [r.status_code for r in wrong] == [401] * 10 + [429] * 290
        problem = assert_problem(wrong[-1], 429)
        assert "failed API key checks" in (problem.detail or "")
        # One attempt back at 0.01/s: up to 100 s, less what the bucket refilled meanwhile.
        assert 50 <= int(wrong[-1].headers["retry-after"]) <= 100
        assert_problem(right_key, 429)
        assert_problem(other_scheme, 429)
        assert anonymous.status_code == 200  # without a key: not an attempt, not blocked

    async def test_missing_keys_and_missing_scopes_are_no_failed_attempts(
        self, before_catalog: MakeGateway, keys: Keys
    ) -> None:
        async with before_catalog(auth_failure_burst=1, auth_failure_rate_per_s=0.01) as gateway:
            no_key = [await gateway.post(PRODUCTS, json={}) for _ in range(5)]
            no_scope = [
                await gateway.get(PRODUCTS, headers=Keys.bearer(keys.predictor)) for _ in range(5)
            ]
            first_wrong = await gateway.get(PRODUCTS, headers=Keys.bearer("tsk_reader_nope"))
            second_wrong = await gateway.get(PRODUCTS, headers=Keys.bearer("tsk_reader_nope"))

        assert {r.status_code for r in no_key} == {401}
        assert {r.status_code for r in no_scope} == {403}
        assert first_wrong.status_code == 401
        assert second_wrong.status_code == 429

    async def test_the_block_lifts_as_the_bucket_refills(
        self, before_catalog: MakeGateway, keys: Keys
    ) -> None:
        clock = Clock()
        async with before_catalog(
            clock=clock, auth_failure_burst=1, auth_failure_rate_per_s=4.0
        ) as gateway:
            await gateway.get(PRODUCTS, headers=Keys.bearer("tsk_reader_nope"))
            blocked = await gateway.get(PRODUCTS, headers=Keys.bearer(keys.reader))
            clock.now += 0.2  # not yet: one attempt is back after 0.25 s
            still_blocked = await gateway.get(PRODUCTS, headers=Keys.bearer(keys.reader))
            clock.now += 0.05
            unblocked = await gateway.get(PRODUCTS, headers=Keys.bearer(keys.reader))

        assert_problem(blocked, 429)
        assert blocked.headers["retry-after"] == "1"
        assert_problem(still_blocked, 429)
        assert unblocked.status_code == 200


class TestClientAddress:
    """The per-address limits key on the address uvicorn takes from `X-Forwarded-For`
    (the test client is a trusted proxy: 127.0.0.1), an IPv6 address by its /64."""

    @staticmethod
    def from_(address: str) -> dict[str, str]:
        return {"X-Forwarded-For": address}

    async def test_anonymous_callers_of_one_ipv6_64_share_a_bucket(
        self, before_catalog: MakeGateway
    ) -> None:
        async with before_catalog(
            anonymous_rate_limit_burst=1, anonymous_rate_limit_per_s=0.01
        ) as gateway:
            statuses = {
                address: (await gateway.get(PRODUCTS, headers=self.from_(address))).status_code
                for address in (
                    "2001:db8:1:2::1",
                    "2001:db8:1:2:ffff:ffff:ffff:fffe",  # the same /64
                    "2001:db8:1:3::1",  # the next /64
                    "203.0.113.7",
                    "203.0.113.8",  # IPv4: per address
                    "::ffff:203.0.113.9",
                    "203.0.113.9",  # the same IPv4 client, mapped or not
                )
            }

        assert statuses == {
            "2001:db8:1:2::1": 200,
            "2001:db8:1:2:ffff:ffff:ffff:fffe": 429,
            "2001:db8:1:3::1": 200,
            "203.0.113.7": 200,
            "203.0.113.8": 200,
            "::ffff:203.0.113.9": 200,
            "203.0.113.9": 429,
        }

    async def test_failed_key_checks_from_one_ipv6_64_share_a_budget(
        self, before_catalog: MakeGateway, keys: Keys
    ) -> None:
        async with before_catalog(auth_failure_burst=1, auth_failure_rate_per_s=0.01) as gateway:
            reader = Keys.bearer(keys.reader)
            wrong = await gateway.get(
                PRODUCTS, headers=Keys.bearer("tsk_reader_nope") | self.from_("2001:db8:a:b::1")
            )
            same_64 = await gateway.get(PRODUCTS, headers=reader | self.from_("2001:db8:a:b::2"))
            other_64 = await gateway.get(PRODUCTS, headers=reader | self.from_("2001:db8:a:c::1"))

        assert wrong.status_code == 401
        assert_problem(same_64, 429)
        assert other_64.status_code == 200


class TestBodyLimit:
    @pytest.mark.parametrize("framing", ["content-length", "chunked"])
    async def test_a_body_over_the_limit_is_413_and_never_forwarded(
        self, make_gateway: MakeGateway, catalog_url: str, keys: Keys, framing: str
    ) -> None:
        async def chunks() -> AsyncIterator[bytes]:
            for _ in range(100):
                yield b"x" * 500

        tap = Tap(catalog_url)
        async with in_front_of(tap, make_gateway, max_body_bytes=1000) as gateway:
            if framing == "content-length":  # refused from the header, before reading
                body = product_body("SEC-0201", description="x" * 2000)
                response = await gateway.post(PRODUCTS, json=body, headers=Keys.bearer(keys.writer))
            else:  # no length to check up front: cut off as it arrives
                headers = Keys.bearer(keys.writer) | {"Content-Type": "application/json"}
                response = await gateway.post(PRODUCTS, content=chunks(), headers=headers)

        assert_problem(response, 413)
        assert tap.seen == []

    async def test_body_within_the_limit_goes_through(
        self, before_catalog: MakeGateway, keys: Keys
    ) -> None:
        async with before_catalog(max_body_bytes=1000) as gateway:
            response = await gateway.post(
                PRODUCTS, json=product_body("SEC-0202"), headers=Keys.bearer(keys.writer)
            )

        assert response.status_code == 201
