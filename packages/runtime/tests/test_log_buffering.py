"""The cheap access-log path and the buffered JSON handler write the same lines as logging does."""

from __future__ import annotations

import gc
import io
import json
import logging
import time
from typing import Any

import pytest
from tessera_runtime import ACCESS_LOGGER, AccessLog, bind_context, configure_logging
from tessera_runtime.logs import JsonLogHandler

FIELDS = {"method": "GET", "route": "/x/{id}", "path": "/x/1", "status": 200, "duration_ms": 1.5}


def lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def json_handler() -> JsonLogHandler:
    [handler] = [h for h in logging.getLogger().handlers if isinstance(h, JsonLogHandler)]
    return handler


@pytest.fixture
def only_ours(restore_logging: None) -> io.StringIO:
    """Logging as a service runs it: Tessera's handler alone on the root logger.

    pytest adds its capture handler for each phase of a test, so the test body
    calls `drop_pytest_handlers` first; restore_logging puts the root back.
    """
    stream = io.StringIO()
    configure_logging("demo", "INFO", stream=stream)
    return stream


def drop_pytest_handlers() -> None:
    root = logging.getLogger()
    for handler in [h for h in root.handlers if not isinstance(h, JsonLogHandler)]:
        root.removeHandler(handler)


class TestAccessLog:
    def test_without_a_record_the_line_is_the_one_a_record_makes(
        self, only_ours: io.StringIO
    ) -> None:
        drop_pytest_handlers()
        access = AccessLog(ACCESS_LOGGER)
        handler = json_handler()
        with bind_context({"X-Request-ID": "r-9"}):
            assert handler.alone_for(access.logger, logging.INFO)
            access.write(logging.INFO, "GET /x/1 200", FIELDS)
            # Another handler anywhere on the way: an ordinary record, for both.
            logging.getLogger("tessera").addHandler(logging.NullHandler())
            assert not handler.alone_for(access.logger, logging.INFO)
            access.write(logging.INFO, "GET /x/1 200", FIELDS)

        fast, record = lines(only_ours)
        assert list(fast) == list(record)  # same fields, same order
        fast.pop("time")
        record.pop("time")
        assert fast == record
        assert fast["request_id"] == "r-9"
        assert fast["logger"] == ACCESS_LOGGER
        assert fast["message"] == "GET /x/1 200"

    def test_a_filter_or_another_formatter_takes_the_record_path(
        self, only_ours: io.StringIO
    ) -> None:
        drop_pytest_handlers()
        access = AccessLog(ACCESS_LOGGER)
        handler = json_handler()
        access.logger.addFilter(lambda record: True)
        assert not handler.alone_for(access.logger, logging.INFO)
        access.logger.filters.clear()
        handler.setFormatter(logging.Formatter("%(message)s"))
        assert not handler.alone_for(access.logger, logging.INFO)

    def test_the_loggers_level_silences_it(self, only_ours: io.StringIO) -> None:
        drop_pytest_handlers()
        access = AccessLog(ACCESS_LOGGER)
        access.logger.setLevel(logging.WARNING)
        try:
            assert not access.enabled(logging.INFO)
        finally:
            access.logger.setLevel(logging.NOTSET)
        assert access.enabled(logging.INFO)
        assert not access.enabled(logging.DEBUG)


@pytest.mark.usefixtures("restore_logging")
class TestBufferedHandler:
    def test_lines_wait_for_the_interval(self) -> None:
        stream = io.StringIO()
        configure_logging("demo", "INFO", stream=stream, flush_interval_s=0.2)

        logging.getLogger("x").info("held")

        assert stream.getvalue() == ""
        deadline = time.monotonic() + 5
        while not stream.getvalue() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert [line["message"] for line in lines(stream)] == ["held"]

    def test_a_warning_is_written_at_once_after_what_came_before(self) -> None:
        stream = io.StringIO()
        configure_logging("demo", "INFO", stream=stream, flush_interval_s=60)

        logging.getLogger("x").info("first")
        logging.getLogger("x").warning("then a problem")

        assert [line["message"] for line in lines(stream)] == ["first", "then a problem"]

    def test_a_full_buffer_is_written_without_waiting(self) -> None:
        stream = io.StringIO()
        configure_logging("demo", "INFO", stream=stream, flush_interval_s=60)

        for number in range(2000):  # far more than the buffer holds
            logging.getLogger("x").info("line %d", number)

        written = lines(stream)
        assert 0 < len(written) < 2000
        assert [line["message"] for line in written] == [f"line {n}" for n in range(len(written))]

    def test_close_and_reconfiguring_write_what_is_pending(self) -> None:
        first = io.StringIO()
        configure_logging("demo", "INFO", stream=first, flush_interval_s=60)
        logging.getLogger("x").info("pending")

        configure_logging("demo", "INFO", stream=io.StringIO())  # closes the first handler

        assert [line["message"] for line in lines(first)] == ["pending"]

    def test_a_closed_handler_stops_flushing_and_tolerates_a_closed_stream(self) -> None:
        stream = io.StringIO()
        configure_logging("demo", "INFO", stream=stream, flush_interval_s=0.05)
        handler = json_handler()
        flusher = handler.flusher
        logging.getLogger("x").info("pending")
        stream.close()  # closed under the handler, as pytest's capture does after a test

        handler.close()
        handler.close()  # logging.shutdown closes it again at exit

        assert flusher is not None
        flusher.join(timeout=5)
        assert not flusher.is_alive()

    def test_a_handler_dropped_without_close_takes_its_thread_with_it(self) -> None:
        configure_logging("demo", "INFO", stream=io.StringIO(), flush_interval_s=0.05)
        handler = json_handler()
        flusher = handler.flusher
        logging.getLogger().removeHandler(handler)  # as a test's logging reset does
        del handler
        gc.collect()

        assert flusher is not None
        flusher.join(timeout=5)
        assert not flusher.is_alive()
