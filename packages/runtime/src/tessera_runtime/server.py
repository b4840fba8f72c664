"""Run a service: its settings, the uvicorn configuration, and ``python -m tessera_<name>``.

uvicorn serves each service under :class:`~tessera_runtime.protocol.HeaderLimitedProtocol`
(bounded request headers, a header-read timeout), with the probe listener of
:mod:`tessera_runtime.probes` next to it when a probe port is set. A service's
``__main__``::

    def main() -> None:
        run_service(create_app, Settings, prog="python -m tessera_catalog")
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Callable
from types import FrameType
from typing import TypeVar

import uvicorn
from fastapi import FastAPI
from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict
from starlette.types import ASGIApp

from tessera_runtime.health import ProbeTiming, begin_draining, set_probe_timing
from tessera_runtime.probes import ProbeServer
from tessera_runtime.protocol import HeaderLimitedProtocol, HeaderLimits, ServerConfig

__all__ = ["DrainingServer", "ServerSettings", "run_service", "serve", "server_config"]

S = TypeVar("S", bound="ServerSettings")


class ServerSettings(BaseSettings):
    """The HTTP server part of a service's settings; each service's ``Settings`` extends it.

    The fields are read with the service's own prefix (``GATEWAY_MAX_HEADER_BYTES``).
    """

    # Flags are spelled `--max-header-bytes` when `python -m tessera_<name>` parses them.
    model_config = SettingsConfigDict(
        extra="ignore", use_attribute_docstrings=True, cli_kebab_case=True
    )

    host: str = "127.0.0.1"
    """Address to listen on (`0.0.0.0` in a container)."""
    port: int = Field(default=8000, ge=0, le=65535)
    """Port to listen on (each service has its own default)."""
    max_header_bytes: int = Field(default=61_440, ge=1024)
    """Largest request line plus headers, the blank line included (Envoy's 60 KiB);
    beyond it the request gets 431 and the connection is closed."""
    max_header_count: int = Field(default=100, ge=1)
    """Most header fields in one request (Envoy's 100); beyond it 431."""
    header_timeout_s: float = Field(default=10.0, gt=0)
    """Time a request's headers may take to arrive: from the connection's opening, or
    from the first byte of a later request on a kept-alive connection. Beyond it
    408 and the connection is closed (closed silently if nothing arrived)."""
    keep_alive_timeout_s: float = Field(default=5.0, gt=0)
    """Idle time after a response before the connection is closed."""
    graceful_shutdown_s: float = Field(default=5.0, ge=0)
    """On SIGTERM, how long in-flight requests (and SSE streams) may still run."""
    shutdown_delay_s: float = Field(default=0.0, ge=0)
    """On SIGTERM, how long the service keeps accepting and serving new requests
    (its `/readyz` already 503) before it stops listening and the graceful shutdown
    begins. Where nothing takes it out of rotation before the signal (no preStop
    sleep), this lets clients and load balancers move away before the listener
    closes and refuses them. A second signal stops at once."""
    log_flush_interval_s: float = Field(default=0.25, ge=0, le=10)
    """Longest time a log line below WARNING waits in memory before it is written
    (lines go out in batches: one write per batch, not per request); 0 writes every
    line at once. Warnings and errors are written at once, with what came before."""
    sentry_dsn: SecretStr | None = None
    """Sentry project (or a compatible service) to send every 500 to, with its request
    id, trace id and route; unset: `SENTRY_DSN` if set, else no error tracking."""
    probe_port: int | None = Field(default=None, ge=0, le=65535)
    """Port of the separate `/healthz` and `/readyz` listener; unset: none."""
    probe_liveness_stall_s: float = Field(default=30.0, gt=1.0)
    """The probe port's `/healthz` answers 503 once the event loop has not turned for
    this long (stuck, not busy: a restart is the cure)."""
    probe_readiness_stale_s: float = Field(default=10.0, gt=0)
    """The probe port's `/readyz` answers 503 when the newest background run of the
    readiness checks is older than this; it must exceed 1 s plus the slowest check's
    timeout."""
    probe_max_connections: int = Field(default=16, ge=1)
    """Most connections the probe port serves at once (a thread each); beyond it a
    new connection is closed at once. The kubelet makes at most three at a time."""


def server_config(app: ASGIApp, settings: ServerSettings) -> uvicorn.Config:
    """The uvicorn configuration that serves ``app`` as ``settings`` say.

    uvloop and httptools under :class:`HeaderLimitedProtocol`; no uvicorn access log
    (the services write their own) and no uvicorn log configuration (the app's
    ``configure_logging`` routes uvicorn's loggers through its JSON handler).
    """
    limits = HeaderLimits(
        max_bytes=settings.max_header_bytes,
        max_count=settings.max_header_count,
        timeout_s=settings.header_timeout_s,
    )
    return ServerConfig(
        app,
        header_limits=limits,
        host=settings.host,
        port=settings.port,
        http=HeaderLimitedProtocol,
        loop="uvloop",
        log_config=None,
        access_log=False,
        lifespan="on",
        # uvicorn annotates both as int, but hands them to call_later and wait_for,
        # which take seconds as floats.
        timeout_keep_alive=settings.keep_alive_timeout_s,
        timeout_graceful_shutdown=settings.graceful_shutdown_s,
    )


class DrainingServer(uvicorn.Server):
    """A uvicorn server whose app starts draining the moment shutdown is asked for.

    uvicorn runs the lifespan shutdown (where ``create_service_app`` drains) only
    after in-flight requests finished or ``GRACEFUL_SHUTDOWN_S`` passed; until
    then ``/readyz`` would still say 200 and load balancers would keep sending.
    The signal handler marks the app draining first (the probe thread reads it at
    once), then, after ``shutdown_delay_s`` (still serving meanwhile), lets
    uvicorn shut down as usual. The next lifespan startup resets it.
    """

    def __init__(
        self, config: uvicorn.Config, app: FastAPI, *, shutdown_delay_s: float = 0.0
    ) -> None:
        super().__init__(config)
        self.service_app = app
        self.shutdown_delay_s = shutdown_delay_s
        self._delayed_exit: threading.Timer | None = None

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        begin_draining(self.service_app)
        if self.shutdown_delay_s <= 0 or self._delayed_exit is not None:
            # No delay, or a second signal during it: shut down now.
            if self._delayed_exit is not None:
                self._delayed_exit.cancel()
            super().handle_exit(sig, frame)
            return
        # uvicorn's main loop polls `should_exit`, so setting it from a timer thread
        # is how its own signal handler works too.
        self._delayed_exit = threading.Timer(
            self.shutdown_delay_s, super().handle_exit, (sig, frame)
        )
        self._delayed_exit.daemon = True
        self._delayed_exit.start()


def serve(app: FastAPI, settings: ServerSettings) -> None:
    """Serve ``app`` until SIGINT/SIGTERM, with its probe listener if ``settings.probe_port``."""
    server = DrainingServer(
        server_config(app, settings), app, shutdown_delay_s=settings.shutdown_delay_s
    )
    # What was built so far (modules, the app) lives as long as the process: moving
    # it out of the collector's generations shortens the full collections that,
    # under load, hold the GIL long enough to delay the probe thread's answers
    # (BENCHMARKS.md, overload scenario).
    gc.collect()
    gc.freeze()
    if settings.probe_port is None:
        server.run()
        return
    set_probe_timing(
        app,
        ProbeTiming(
            liveness_stall_s=settings.probe_liveness_stall_s,
            readiness_stale_s=settings.probe_readiness_stale_s,
        ),
    )
    with ProbeServer(
        app, settings.host, settings.probe_port, max_connections=settings.probe_max_connections
    ):
        server.run()


def run_service(create_app: Callable[[S], FastAPI], settings_class: type[S], *, prog: str) -> None:
    """``python -m tessera_<name>``: read the settings, build the app, serve it.

    Settings come from the service's environment variables and ``.env``; a
    command-line flag (``--port 9000``; ``--help`` lists them, under ``prog``)
    wins over both.
    """
    settings = settings_class(_cli_parse_args=True, _cli_prog_name=prog)
    serve(create_app(settings), settings)
