"""Plumbing every Tessera service shares: app factory, errors, health, metrics, logs, context.

Typical use in a service's ``create_app``::

    app = create_service_app(title="catalog", version=__version__, lifespan=lifespan,
                             readiness_checks=[ReadinessCheck("postgres", ping_postgres)])
    app.include_router(api.v1.router)
"""

from tessera_stack.web.app import Lifespan, create_service_app
from tessera_stack.web.context import bind_context, outgoing_headers, request_id
from tessera_stack.web.health import ReadinessCheck, begin_draining, is_draining
from tessera_stack.web.logs import configure_logging
from tessera_stack.web.middleware import ACCESS_LOGGER
from tessera_stack.web.openapi import PROBLEM_RESPONSES, problem_responses
from tessera_stack.web.problems import (
    ServiceError,
    install_problem_handlers,
    problem_response,
    status_title,
)

__all__ = [
    "ACCESS_LOGGER",
    "PROBLEM_RESPONSES",
    "Lifespan",
    "ReadinessCheck",
    "ServiceError",
    "begin_draining",
    "bind_context",
    "configure_logging",
    "create_service_app",
    "install_problem_handlers",
    "is_draining",
    "outgoing_headers",
    "problem_response",
    "problem_responses",
    "request_id",
    "status_title",
]
