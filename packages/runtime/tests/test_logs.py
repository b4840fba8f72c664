"""JSON logs with service and request id; one access line per request."""

from __future__ import annotations

import io
import json
import logging
import re
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import httpx
import pytest
from tessera_runtime import ACCESS_LOGGER, bind_context, configure_logging


def lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def access_lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [line for line in lines(stream) if line["logger"] == ACCESS_LOGGER]


@pytest.mark.usefixtures("restore_logging")
class TestConfigureLogging:
    def test_lines_are_json_with_the_agreed_fields(self) -> None:
        stream = io.StringIO()
        configure_logging("catalog", "info", stream=stream)

        with bind_context({"X-Request-ID": "r-1"}) as ctx:
            logging.getLogger("tessera_catalog.db").info("saved %s", "sku-1", extra={"rows": 2})

        [line] = lines(stream)
        assert line["message"] == "saved sku-1"
        assert line["level"] == "INFO"
        assert line["logger"] == "tessera_catalog.db"
        assert line["service"] == "catalog"
        assert line["request_id"] == "r-1"
        assert line["trace_id"] == ctx.trace_id
        assert line["span_id"] == ctx.span_id
        assert line["rows"] == 2
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", line["time"])
        assert list(line)[:4] == ["time", "level", "logger", "message"]

    def test_outside_a_request_ids_are_null(self) -> None:
        stream = io.StringIO()
        configure_logging("catalog", "INFO", stream=stream)

        logging.getLogger("x").warning("startup")

        [line] = lines(stream)
        assert line["request_id"] is None
        assert line["trace_id"] is None
        assert line["span_id"] is None

    def test_explicit_request_id_wins(self) -> None:
        stream = io.StringIO()
        configure_logging("catalog", "INFO", stream=stream)

        with bind_context({"X-Request-ID": "bound"}):
            logging.getLogger("x").info("relay", extra={"request_id": "explicit"})

        assert lines(stream)[0]["request_id"] == "explicit"

    def test_calling_twice_does_not_duplicate_lines(self) -> None:
        first, second = io.StringIO(), io.StringIO()
        configure_logging("catalog", "INFO", stream=first)
        configure_logging("gateway", "INFO", stream=second)

        logging.getLogger("x").info("once")

        assert first.getvalue() == ""
        [line] = lines(second)
        assert line["service"] == "gateway"
        ours = [h for h in logging.getLogger().handlers if h.get_name() == "tessera-json"]
        assert len(ours) == 1

    def test_level_is_applied(self) -> None:
        stream = io.StringIO()
        configure_logging("catalog", "WARNING", stream=stream)

        logging.getLogger("x").info("hidden")
        logging.getLogger("x").warning("shown")

        assert [line["message"] for line in lines(stream)] == ["shown"]

    def test_unknown_level_is_refused(self) -> None:
        with pytest.raises(ValueError, match="loud"):
            configure_logging("catalog", "loud")

    def test_exceptions_are_one_json_line_with_traceback(self) -> None:
        stream = io.StringIO()
        configure_logging("catalog", "INFO", stream=stream)

        try:
            raise KeyError("sku")
        except KeyError:
            logging.getLogger("x").exception("lookup failed")

        [line] = lines(stream)
        assert "Traceback" in line["exc_info"]
        assert "KeyError: 'sku'" in line["exc_info"]

    def test_a_dict_message_is_merged_into_the_line(self) -> None:
        stream = io.StringIO()
        configure_logging("catalog", "INFO", stream=stream)
        event = {"event": "relay.batch", "published": 3}

        logging.getLogger("x").info(event)

        [line] = lines(stream)
        assert line["message"] == ""
        assert (line["event"], line["published"]) == ("relay.batch", 3)
        assert event == {"event": "relay.batch", "published": 3}  # the caller's dict is untouched

    def test_lines_stay_ascii_whatever_the_values(self) -> None:
        stream = io.StringIO()
        configure_logging("catalog", "INFO", stream=stream)

        logging.getLogger("x").info("café %s", "naïve", extra={"huge": 2**70})

        [raw] = stream.getvalue().splitlines()
        assert raw.isascii()
        line = json.loads(raw)
        assert line["message"] == "café naïve"
        assert line["huge"] == 2**70

    def test_values_json_has_no_type_for_are_written_readably(self) -> None:
        stream = io.StringIO()
        configure_logging("catalog", "INFO", stream=stream)
        when = datetime(2025, 1, 6, 9, 17, tzinfo=UTC)
        product_id = UUID("5d0c8f61-4a39-5d27-9a61-6b6f5b1d8a2e")

        logging.getLogger("x").info(
            "odd values",
            extra={"when": when, "id": product_id, "error": KeyError("sku"), "kinds": {"a"}},
        )

        [line] = lines(stream)
        assert line["when"] == "2025-01-06T09:17:00+00:00"
        assert line["id"] == str(product_id)
        assert line["error"] == "KeyError: 'sku'"
        assert line["kinds"] == "{'a'}"

    def test_stack_info_is_written(self) -> None:
        stream = io.StringIO()
        configure_logging("catalog", "INFO", stream=stream)

        logging.getLogger("x").info("where am I", stack_info=True)

        [line] = lines(stream)
        assert "test_stack_info_is_written" in line["stack_info"]

    def test_uvicorn_logs_go_through_the_json_handler(self) -> None:
        stream = io.StringIO()
        logging.getLogger("uvicorn.error").addHandler(logging.StreamHandler(io.StringIO()))
        configure_logging("catalog", "INFO", stream=stream)

        logging.getLogger("uvicorn.error").info(
            "Started server process", extra={"color_message": "Started \x1b[36mserver\x1b[0m"}
        )
        # The unhandled-exception handler already logged this one, with the request id.
        logging.getLogger("uvicorn.error").error("Exception in ASGI application\n")

        [line] = lines(stream)
        assert line["message"] == "Started server process"
        assert "color_message" not in line
        assert line["service"] == "catalog"
        assert logging.getLogger("uvicorn.error").handlers == []

    def test_a_disabled_uvicorn_access_log_stays_disabled(self) -> None:
        # What `uvicorn --no-access-log` does before the app factory runs.
        access = logging.getLogger("uvicorn.access")
        access.handlers.clear()
        access.propagate = False
        stream = io.StringIO()
        configure_logging("catalog", "INFO", stream=stream)

        access.info('127.0.0.1:1 - "GET / HTTP/1.1" 200')

        assert stream.getvalue() == ""

    def test_an_enabled_uvicorn_access_log_becomes_json(self) -> None:
        access = logging.getLogger("uvicorn.access")
        access.addHandler(logging.StreamHandler(io.StringIO()))
        access.propagate = False
        stream = io.StringIO()
        configure_logging("catalog", "INFO", stream=stream)

        access.info('127.0.0.1:1 - "GET / HTTP/1.1" 200')

        [line] = lines(stream)
        assert line["logger"] == "uvicorn.access"


class TestAccessLog:
    async def test_one_line_per_request_with_route_status_and_duration(
        self, client: httpx.AsyncClient, log_stream: io.StringIO
    ) -> None:
        response = await client.get("/v1/products/12", headers={"X-Request-ID": "acc-1"})

        [line] = access_lines(log_stream)
        assert line["level"] == "INFO"
        assert line["method"] == "GET"
        assert line["route"] == "/v1/products/{product_id}"
        assert line["path"] == "/v1/products/12"
        assert line["status"] == response.status_code == 200
        assert line["request_id"] == "acc-1"
        assert isinstance(line["duration_ms"], float)
        assert line["duration_ms"] >= 0

    async def test_probes_and_scrapes_are_logged_only_at_debug(
        self, client: httpx.AsyncClient, log_stream: io.StringIO
    ) -> None:
        for path in ("/healthz", "/readyz", "/metrics"):
            await client.get(path)

        assert access_lines(log_stream) == []

        logging.getLogger(ACCESS_LOGGER).setLevel(logging.DEBUG)
        try:
            await client.get("/healthz")
        finally:
            logging.getLogger(ACCESS_LOGGER).setLevel(logging.NOTSET)
        [line] = access_lines(log_stream)
        assert line["level"] == "DEBUG"

    async def test_can_be_silenced(
        self, client: httpx.AsyncClient, log_stream: io.StringIO
    ) -> None:
        logging.getLogger(ACCESS_LOGGER).setLevel(logging.WARNING)
        try:
            await client.get("/v1/products/1")
        finally:
            logging.getLogger(ACCESS_LOGGER).setLevel(logging.NOTSET)

        assert access_lines(log_stream) == []

    async def test_handler_logs_carry_the_request_id(
        self, client: httpx.AsyncClient, log_stream: io.StringIO
    ) -> None:
        response = await client.get("/v1/products/503")

        rid = response.headers["x-request-id"]
        by_logger = {line["logger"]: line for line in lines(log_stream)}
        assert by_logger["tessera_runtime"]["level"] == "WARNING"
        assert by_logger["tessera_runtime"]["request_id"] == rid
        assert by_logger["tessera_runtime"]["upstream"] == "inference"
        assert by_logger[ACCESS_LOGGER]["request_id"] == rid
