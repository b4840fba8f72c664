"""Every error is an application/problem+json body (RFC 9457)."""

from __future__ import annotations

import io
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Receive, Scope, Send
from tessera_contracts.problem import PROBLEM_MEDIA_TYPE, FieldError, Problem
from tessera_runtime import ServiceError, create_service_app, problem_response, status_title
from tessera_runtime.problems import unparsable_body
from tessera_runtime.server import ServerSettings, server_config
from tessera_stack.testing import assert_problem, serving

VALID_FEATURES = [0.5] * 10


class TestHttpErrors:
    async def test_unknown_route_is_404_problem(self, client: httpx.AsyncClient) -> None:
        response = await client.get("/no/such/route")

        problem = assert_problem(response, 404, "Not Found")
        assert problem.type == "about:blank"
        assert problem.instance == "/no/such/route"
        assert "detail" not in response.json()  # the phrase again would add nothing

    async def test_wrong_method_is_405_problem_keeping_allow(
        self, client: httpx.AsyncClient
    ) -> None:
        response = await client.delete("/v1/products/1")

        assert_problem(response, 405, "Method Not Allowed")
        assert response.headers["allow"] == "GET"

    async def test_http_exception_detail_and_headers_are_kept(self) -> None:
        app = create_service_app(title="t", version="0")

        @app.get("/teapot")
        async def teapot() -> None:
            raise HTTPException(418, detail="short and stout", headers={"X-Pot": "yes"})

        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            response = await client.get("/teapot")

        problem = assert_problem(response, 418, "I'm a Teapot")
        assert problem.detail == "short and stout"
        assert response.headers["x-pot"] == "yes"


class TestValidation:
    async def test_invalid_body_lists_each_field_with_its_location(
        self, client: httpx.AsyncClient
    ) -> None:
        features: list[object] = [0.5] * 10
        features[3] = -1
        features[7] = "x"

        response = await client.post("/v1/products/predict?limit=11", json={"features": features})

        problem = assert_problem(response, 422, "Unprocessable Content")
        assert problem.detail == "3 invalid values in the request"
        assert problem.errors is not None
        by_loc = {tuple(error.loc): error for error in problem.errors}
        assert set(by_loc) == {("body", "features", 3), ("body", "features", 7), ("query", "limit")}
        assert by_loc[("body", "features", 3)].type == "greater_than_equal"
        assert by_loc[("query", "limit")].type == "less_than_equal"
        # The loc is a JSON list with integer indexes, not a tuple or a dotted string.
        raw = response.json()["errors"]
        assert ["body", "features", 3] in [error["loc"] for error in raw]

    async def test_input_values_are_not_echoed(self, client: httpx.AsyncClient) -> None:
        response = await client.post(
            "/v1/products/predict", json={"features": ["s3cr3t-token"] + [0.5] * 9}
        )

        assert response.status_code == 422
        assert "s3cr3t-token" not in response.text

    async def test_malformed_json_is_422_on_the_body(self, client: httpx.AsyncClient) -> None:
        response = await client.post(
            "/v1/products/predict",
            content=b'{"features": [1,',
            headers={"content-type": "application/json"},
        )

        problem = assert_problem(response, 422, "Unprocessable Content")
        assert problem.errors is not None
        assert len(problem.errors) == 1
        error = problem.errors[0]
        assert error.loc == ["body"]
        assert error.type == "json_invalid"
        assert "at character 16" in error.msg

    async def test_valid_request_passes(self, client: httpx.AsyncClient) -> None:
        response = await client.post("/v1/products/predict", json={"features": VALID_FEATURES})

        assert response.status_code == 200
        assert response.json() == {"sum": 5.0}


@pytest.fixture
async def served(demo_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """The demo app under uvicorn as every service runs (`server_config`), on a real socket."""
    config = server_config(demo_app, ServerSettings(host="127.0.0.1", port=0))
    async with (
        serving(config) as port,
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client,
    ):
        yield client


class TestUnreadableBody:
    """A JSON body FastAPI cannot parse at all is the 422 of a JSON syntax error."""

    @pytest.mark.parametrize(
        ("body", "reason"),
        [
            (b"\xff", "not UTF-8 text (invalid start byte at byte 0)"),
            (
                b'{"features": ["\xe9t\xe9"]}',
                "not UTF-8 text (invalid continuation byte at byte 15)",
            ),
            (b"[" * 100_000, "nested too deeply"),
            (
                b'{"features": [' + b"1" * 5_000 + b"]}",
                "Exceeds the limit (4300 digits) for integer string conversion",
            ),
        ],
        ids=["not-utf8", "not-utf8-inside-a-string", "too-deep", "too-many-digits"],
    )
    async def test_is_422_json_invalid_on_the_body(
        self, served: httpx.AsyncClient, body: bytes, reason: str
    ) -> None:
        response = await served.post(
            "/v1/products/predict", content=body, headers={"content-type": "application/json"}
        )

        problem = assert_problem(response, 422, "Unprocessable Content")
        assert problem.detail == "1 invalid value in the request"
        assert problem.errors == [
            FieldError(loc=["body"], msg=f"Invalid JSON: {reason}", type="json_invalid")
        ]
        assert "set_int_max_str_digits" not in response.text  # advice for us, not the client

    async def test_is_the_answer_every_body_operation_documents(
        self, served: httpx.AsyncClient
    ) -> None:
        doc = (await served.get("/openapi.json")).json()
        operations = [
            (method, path, operation)
            for path, item in doc["paths"].items()
            for method, operation in item.items()
            if "requestBody" in operation
        ]
        assert operations  # the demo app has a body operation

        for method, path, operation in operations:
            response = await served.request(
                method, path, content=b"\xff", headers={"content-type": "application/json"}
            )

            status = str(response.status_code)
            assert status in operation["responses"], f"{method} {path}: {status} is undocumented"
            documented: dict[str, Any] = operation["responses"][status]
            assert response.status_code == 422
            assert documented["content"] == {
                PROBLEM_MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}
            }
            assert response.headers["content-type"] == PROBLEM_MEDIA_TYPE
            Problem.model_validate_json(response.content)

    @pytest.mark.parametrize(
        ("status", "cause"),
        [
            (400, None),
            (400, ClientDisconnect()),  # the client went away: nobody reads the answer
            (413, UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte")),
        ],
        ids=["no-cause", "client-gone", "not-400"],
    )
    def test_other_http_errors_are_left_alone(
        self, status: int, cause: BaseException | None
    ) -> None:
        error = HTTPException(status, "There was an error parsing the body")
        error.__cause__ = cause

        assert unparsable_body(error) is None


class TestServiceErrors:
    @pytest.mark.parametrize(
        ("product_id", "status", "title", "members", "headers"),
        [
            pytest.param(
                404,
                404,
                "ProductNotFound",
                {
                    "type": "urn:tessera:problem:product-not-found",
                    "detail": "product 404 not found",
                    "instance": "/v1/products/404",
                    "upstream": None,
                },
                {},
                id="subclass-maps-to-its-status-title-and-type",
            ),
            pytest.param(
                503,
                503,
                "Upstream unavailable",
                {
                    "type": "https://errors.tessera.example/upstream-unavailable",
                    "upstream": "inference",
                },
                {"retry-after": "3"},
                id="overridden-title-type-upstream-and-headers",
            ),
        ],
    )
    async def test_an_error_is_its_problem(
        self,
        client: httpx.AsyncClient,
        product_id: int,
        status: int,
        title: str,
        members: dict[str, object],
        headers: dict[str, str],
    ) -> None:
        response = await client.get(f"/v1/products/{product_id}")

        problem = assert_problem(response, status, title)
        assert {name: getattr(problem, name) for name in members} == members
        assert {name: response.headers.get(name) for name in headers} == headers

    async def test_a_translated_outage_logs_its_cause(
        self, client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
    ) -> None:
        with caplog.at_level("WARNING", logger="tessera_runtime"):
            response = await client.get("/v1/products/5031")

        problem = assert_problem(response, 503, "Upstream unavailable")
        assert "refused" not in (problem.detail or "")  # the client gets the advice only
        (record,) = [r for r in caplog.records if r.name == "tessera_runtime"]
        assert "cause: ConnectionRefusedError('connect refused by 10.0.0.9')" in record.getMessage()

    def test_base_class_defaults(self) -> None:
        class CatalogError(ServiceError):
            pass

        problem = CatalogError().to_problem()

        assert problem.status == 500
        assert problem.title == "CatalogError"
        assert problem.type == "urn:tessera:problem:catalog-error"
        assert problem.detail is None

    def test_acronyms_in_class_names_make_readable_type_uris(self) -> None:
        class HTTPUpstreamTimeout(ServiceError):
            status_code = 504

        assert HTTPUpstreamTimeout.problem_type() == "urn:tessera:problem:http-upstream-timeout"


class TestUnexpectedErrors:
    async def test_is_500_without_internals(
        self, client: httpx.AsyncClient, log_stream: io.StringIO
    ) -> None:
        response = await client.get("/v1/products/500")

        problem = assert_problem(response, 500, "Internal Server Error")
        assert "hunter2" not in response.text
        assert "RuntimeError" not in response.text
        assert "Traceback" not in response.text
        rid = response.headers["x-request-id"]
        assert problem.detail is not None
        assert rid in problem.detail

    async def test_is_logged_once_with_traceback_and_request_id(
        self, client: httpx.AsyncClient, log_stream: io.StringIO
    ) -> None:
        response = await client.get("/v1/products/500")

        rid = response.headers["x-request-id"]
        lines = [json.loads(line) for line in log_stream.getvalue().splitlines()]
        errors = [line for line in lines if line["level"] == "ERROR"]
        assert len(errors) == 1
        assert errors[0]["request_id"] == rid
        assert "RuntimeError: db password=hunter2" in errors[0]["exc_info"]
        assert "Traceback" in errors[0]["exc_info"]

    async def test_request_id_header_is_present_on_the_500(self, client: httpx.AsyncClient) -> None:
        response = await client.get("/v1/products/500", headers={"X-Request-ID": "abc-123"})

        assert response.status_code == 500
        assert response.headers["x-request-id"] == "abc-123"

    async def test_with_app_exceptions_raised_the_server_still_sees_the_error(
        self, demo_app: FastAPI
    ) -> None:
        # A real server logs the re-raised exception (and our filter drops that
        # duplicate); the middleware must not swallow it.
        transport = httpx.ASGITransport(app=demo_app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            with pytest.raises(RuntimeError, match="hunter2"):
                await client.get("/v1/products/500")

    async def test_a_service_middleware_s_exception_is_a_500_problem_logged_once(
        self, log_stream: io.StringIO
    ) -> None:
        class Broken:
            def __init__(self, app: ASGIApp) -> None:
                self.app = app

            async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
                if scope["type"] == "http":
                    raise RuntimeError("middleware bug, password=hunter2")
                await self.app(scope, receive, send)

        app = create_service_app(title="t", version="0", middleware=[Middleware(Broken)])
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            response = await client.get("/anything")

        assert_problem(response, 500, "Internal Server Error")
        assert "hunter2" not in response.text
        lines = [json.loads(line) for line in log_stream.getvalue().splitlines()]
        errors = [line for line in lines if line["level"] == "ERROR"]
        assert len(errors) == 1
        assert "RuntimeError: middleware bug" in errors[0]["exc_info"]


class TestProblemResponse:
    def test_serializes_without_nulls(self) -> None:
        response = problem_response(
            Problem(title="Conflict", status=409, detail="sku taken"), {"X-A": "1"}
        )

        assert response.status_code == 409
        assert response.headers["content-type"] == PROBLEM_MEDIA_TYPE
        assert response.headers["x-a"] == "1"
        assert json.loads(bytes(response.body)) == {
            "type": "about:blank",
            "title": "Conflict",
            "status": 409,
            "detail": "sku taken",
        }

    def test_no_body_for_304(self) -> None:
        response = problem_response(Problem(title="Not Modified", status=304))

        assert response.status_code == 304
        assert response.body == b""


@pytest.mark.parametrize(
    ("status", "title"),
    [
        (422, "Unprocessable Content"),
        (413, "Content Too Large"),
        (404, "Not Found"),
        (599, "Error"),
    ],
)
def test_status_titles_follow_rfc_9110(status: int, title: str) -> None:
    assert status_title(status) == title
