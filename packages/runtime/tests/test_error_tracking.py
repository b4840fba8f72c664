"""Error tracking: every 500 reaches Sentry, with its ids and route, without credentials.

Sentry itself cannot run here: the SDK sends its envelopes to a local HTTP
server of the test's own (the DSN's host), which keeps them for the asserts.
"""

from __future__ import annotations

import gzip
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
import sentry_sdk
from fastapi import FastAPI
from pydantic import SecretStr
from pydantic_settings import SettingsConfigDict
from tessera_runtime import (
    ServiceError,
    bind_context,
    configure_error_tracking,
    create_service_app,
    error_problem,
)
from tessera_runtime.error_tracking import GLOBAL_DSN_VARIABLE
from tessera_runtime.server import ServerSettings

API_KEY = "tsr_live_0123456789abcdef"
BEARER = "eyJhbGciOiJIUzI1NiJ9.secret-token"
COOKIE_VALUE = "session-cookie-value-42"
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"


@dataclass
class Receiver:
    """What the stand-in Sentry server received: the raw bodies and their events."""

    dsn: str
    bodies: list[bytes] = field(default_factory=list)

    def events(self) -> list[dict[str, Any]]:
        events = []
        for body in self.bodies:
            lines = body.split(b"\n")
            # Envelope header, then (item header, item payload) pairs.
            for header, payload in zip(lines[1::2], lines[2::2], strict=False):
                if json.loads(header).get("type") == "event":
                    events.append(json.loads(payload))
        return events


@pytest.fixture
def sentry() -> Iterator[Receiver]:
    received: list[bytes] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            if self.headers.get("Content-Encoding") == "gzip":
                body = gzip.decompress(body)
            received.append(body)
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Receiver(f"http://public@127.0.0.1:{server.server_port}/42", received)
    finally:
        # Back to no client at all: nothing after this test is sent anywhere.
        sentry_sdk.get_client().close()
        sentry_sdk.get_global_scope().set_client(None)
        server.shutdown()
        server.server_close()


class Broken(ServiceError):
    status_code = 500


class Missing(ServiceError):
    status_code = 404


def failing_app() -> FastAPI:
    app = create_service_app(title="demo", version="1.2.3")

    @app.get("/orders/{order_id}")
    async def order(order_id: int) -> None:
        api_key = API_KEY  # a local the event must not carry
        raise RuntimeError(f"order {order_id} failed ({len(api_key)})")

    @app.get("/broken")
    async def broken() -> None:
        raise Broken("the ledger is inconsistent")

    @app.get("/missing")
    async def missing() -> None:
        raise Missing("no such thing")

    return app


def client(app: FastAPI) -> httpx.AsyncClient:
    # The app re-raises what it answered with a 500, for the server: not for this client.
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="http://demo")


async def test_an_unhandled_error_reaches_sentry_with_ids_route_and_release_only(
    sentry: Receiver,
) -> None:
    assert configure_error_tracking("demo", "1.2.3", SecretStr(sentry.dsn))
    async with client(failing_app()) as http:
        response = await http.get(
            "/orders/7?api_key=" + API_KEY,
            headers={
                "Authorization": f"Bearer {BEARER}",
                "X-API-Key": API_KEY,
                "Cookie": f"session={COOKIE_VALUE}",
                "traceparent": f"00-{TRACE_ID}-00f067aa0ba902b7-01",
            },
        )
    sentry_sdk.flush(timeout=5)

    assert response.status_code == 500
    [event] = sentry.events()
    [exception] = event["exception"]["values"]
    assert exception["type"] == "RuntimeError"
    assert exception["value"] == "order 7 failed (25)"
    assert event["release"] == "tessera-demo@1.2.3"
    assert event["tags"] == {
        "service": "demo",
        "request_id": response.headers["x-request-id"],
        "trace_id": TRACE_ID,
        "route": "/orders/{order_id}",
    }
    assert event["extra"]["where"] == "GET /orders/7"
    raw = b"".join(sentry.bodies)
    for secret in (API_KEY, BEARER, COOKIE_VALUE):
        assert secret.encode() not in raw


async def test_a_500_service_error_is_reported_and_a_4xx_is_not(sentry: Receiver) -> None:
    assert configure_error_tracking("demo", "1.2.3", SecretStr(sentry.dsn))
    async with client(failing_app()) as http:
        missing = await http.get("/missing")
        broken = await http.get("/broken")
    sentry_sdk.flush(timeout=5)

    assert (missing.status_code, broken.status_code) == (404, 500)
    [event] = sentry.events()
    assert event["exception"]["values"][0]["type"] == "Broken"
    assert event["tags"]["route"] == "/broken"


async def test_the_global_dsn_serves_a_service_without_its_own(
    sentry: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(GLOBAL_DSN_VARIABLE, sentry.dsn)
    monkeypatch.setenv("SENTRY_RELEASE", "demo-build-99")

    assert configure_error_tracking("demo", "1.2.3", None)
    async with client(failing_app()) as http:
        await http.get("/orders/1")
    sentry_sdk.flush(timeout=5)

    [event] = sentry.events()
    assert event["release"] == "demo-build-99"


async def test_without_a_dsn_nothing_is_initialised_or_sent(
    sentry: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(GLOBAL_DSN_VARIABLE, raising=False)

    assert not configure_error_tracking("demo", "1.2.3", None)
    async with client(failing_app()) as http:
        response = await http.get("/orders/1")
    sentry_sdk.flush(timeout=1)

    assert response.status_code == 500
    assert not sentry_sdk.is_initialized()
    assert sentry.bodies == []


def test_a_service_reads_its_own_prefixed_dsn(monkeypatch: pytest.MonkeyPatch) -> None:
    class DemoSettings(ServerSettings):
        model_config = SettingsConfigDict(env_prefix="DEMO_")

    monkeypatch.setenv("DEMO_SENTRY_DSN", "http://public@127.0.0.1:9/1")

    dsn = DemoSettings().sentry_dsn
    assert dsn is not None
    assert dsn.get_secret_value() == "http://public@127.0.0.1:9/1"
    assert "public@" not in repr(DemoSettings())  # a secret in the settings' repr


def test_a_nats_worker_s_500_is_tagged_with_its_subject_and_the_message_s_ids(
    sentry: Receiver,
) -> None:
    headers = {
        "X-Request-ID": "req-from-the-caller",
        "traceparent": f"00-{TRACE_ID}-00f067aa0ba902b7-01",
    }
    assert configure_error_tracking("demo", "1.2.3", SecretStr(sentry.dsn))

    with bind_context(headers):
        problem = error_problem(
            RuntimeError("model exploded"),
            instance=None,
            where="NATS inference.v1.predict",
            route="inference.v1.predict",
        )
    sentry_sdk.flush(timeout=5)

    assert problem.status == 500
    [event] = sentry.events()
    assert event["exception"]["values"][0]["value"] == "model exploded"
    assert event["tags"]["route"] == "inference.v1.predict"
    assert event["tags"]["request_id"] == "req-from-the-caller"
    assert event["tags"]["trace_id"] == TRACE_ID
