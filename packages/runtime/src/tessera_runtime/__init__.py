"""Plumbing every Tessera service shares: app factory, errors, health, metrics, logs, context.

In a service's ``create_app``::

    configure_logging("catalog", settings.log_level,      # JSON lines on stdout
                      flush_interval_s=settings.log_flush_interval_s)
    configure_error_tracking("catalog", __version__, settings.sentry_dsn)  # Sentry, if set
    configure_tracing("catalog", __version__)              # OpenTelemetry, if OTEL_*/TESSERA_TRACE_DIR
    registry = CollectorRegistry()
    metrics = CatalogMetrics(registry)                     # the service's own
    app = create_service_app(
        title="catalog", version=__version__, lifespan=lifespan,
        routers=[api.v1.router], registry=registry,
        readiness_checks=[ReadinessCheck("postgres", ping_postgres, timeout_s=1.0)],
    )

* Errors: subclass :class:`ServiceError` once (``CatalogError``), then one class
  per problem with a ``status_code``; raising it answers ``application/problem+json``
  (title = class name, ``detail`` = message). Document them on routes with
  ``responses=problem_responses(404, 409)`` or ``PROBLEM_RESPONSES``.
* Context: ``outgoing_headers()`` gives ``X-Request-ID`` and ``traceparent`` for
  httpx calls; NATS messages go through :mod:`tessera_runtime.nats_tracing`
  (``request``, ``publish``, and ``with consume(msg):`` in a handler), which adds them.
* Traces: ``configure_tracing`` turns OpenTelemetry on when a collector
  (``OTEL_EXPORTER_OTLP_ENDPOINT``) or a span directory (``TESSERA_TRACE_DIR``) is
  set; ``tracing.span(...)`` records a span of the service's own
  (:mod:`tessera_runtime.tracing`).
* Metrics: create the registry, register the service's own metrics in it and
  pass it as ``registry=``; ``/metrics`` exports it (``app.state.metrics_registry``).
* Middleware: ``middleware=[Middleware(...)]`` runs inside the request context.
* Shutdown: ``/readyz`` turns 503 at SIGTERM under ``serve`` (or when lifespan
  shutdown begins, or via ``begin_draining(app)``).
* Probes: ``ProbeServer(app, host, port)`` serves ``/healthz`` and ``/readyz`` on a
  port of their own from a thread, so a saturated event loop cannot starve them
  (timing: ``create_service_app(probe_timing=ProbeTiming(...))`` or
  ``set_probe_timing(app, ...)`` before the lifespan starts).
* Serving: ``tessera_runtime.server.run_service(create_app, Settings)`` is a
  service's ``python -m`` entry point (header limits, timeouts, probe port).
* Error tracking: ``configure_error_tracking`` sends every 500 to Sentry when
  ``<PREFIX>_SENTRY_DSN`` or ``SENTRY_DSN`` is set (:mod:`tessera_runtime.error_tracking`).
* Access log: logger ``tessera.access`` (``ACCESS_LOGGER``), one line per request
  (``AccessLog`` writes it; a NATS worker writes its own lines with one too);
  ``serve`` turns uvicorn's own off so requests are not logged twice.
"""

from tessera_runtime.app import Lifespan, create_service_app
from tessera_runtime.context import bind_context, outgoing_headers, request_id
from tessera_runtime.error_tracking import configure_error_tracking
from tessera_runtime.health import (
    ProbeTiming,
    ReadinessCheck,
    begin_draining,
    is_draining,
    set_probe_timing,
)
from tessera_runtime.logs import AccessLog, configure_logging
from tessera_runtime.middleware import ACCESS_LOGGER
from tessera_runtime.openapi import PROBLEM_RESPONSES, problem_responses
from tessera_runtime.probes import ProbeServer
from tessera_runtime.problems import (
    ServiceError,
    error_problem,
    install_problem_handlers,
    problem_response,
    status_title,
)
from tessera_runtime.tracing import configure_tracing

__all__ = [
    "ACCESS_LOGGER",
    "AccessLog",
    "PROBLEM_RESPONSES",
    "Lifespan",
    "ProbeServer",
    "ProbeTiming",
    "ReadinessCheck",
    "ServiceError",
    "begin_draining",
    "bind_context",
    "configure_error_tracking",
    "configure_logging",
    "configure_tracing",
    "create_service_app",
    "error_problem",
    "install_problem_handlers",
    "is_draining",
    "outgoing_headers",
    "problem_response",
    "problem_responses",
    "request_id",
    "set_probe_timing",
    "status_title",
]
