"""Error tracking with Sentry (sentry-sdk), on when a DSN is set.

A service calls :func:`configure_error_tracking` in its app factory, next to
``configure_logging``. With ``<PREFIX>_SENTRY_DSN`` (the service's own setting) or
else ``SENTRY_DSN`` set, every error a service answers with a 500 reaches Sentry,
from the one place where errors become answers (``problems.error_problem``: HTTP
handlers, the gateway's proxy router, the NATS workers), tagged with the request
id, the trace id, the route template and the service's version (the release).
With neither set, sentry-sdk is not initialised and nothing runs per request.

What is left out, on purpose:

* sentry-sdk's automatic integrations (Starlette, FastAPI, logging, ...): they
  patch the frameworks' internals, and the errors to report all pass through
  ``error_problem`` anyway. Only the exit flush and de-duplication are kept.
* Request headers, cookies and bodies: events carry the method and path only, so
  API keys, ``Authorization`` and cookies cannot reach Sentry, and sentry-sdk's
  own scrubber (with those names added) covers anything set elsewhere.
* Local variables of the stack frames: a frame may hold an API key or a token
  under any name, which no deny-list can know.

sentry-sdk is imported only once a DSN is set: its HTTP transport's urllib3
opens a socket at import (to probe for IPv6), and importing a service opens none.
"""

from __future__ import annotations

import os

from pydantic import SecretStr

from tessera_runtime.context import current_context

__all__ = ["GLOBAL_DSN_VARIABLE", "capture_error", "configure_error_tracking"]

GLOBAL_DSN_VARIABLE = "SENTRY_DSN"
"""The DSN every service uses unless it has its own (``CATALOG_SENTRY_DSN``, ...)."""

_tracking = False
"""Whether the newest `configure_error_tracking` turned tracking on (the process's
SDK client is one per process, like the logging configuration)."""

# Keys whose values the scrubber blanks wherever they appear in an event.
_SENSITIVE_KEYS = [
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
    "x-api-key",
    "api_key",
    "api-key",
]


def configure_error_tracking(service: str, version: str, dsn: SecretStr | None) -> bool:
    """Send this process's errors to Sentry when a DSN is set; return whether it does.

    Args:
        service: the service's name (the ``service`` tag, and the release's name).
        version: the service's version: the release is ``tessera-<service>@<version>``
            unless ``SENTRY_RELEASE`` says otherwise.
        dsn: the service's own DSN setting; unset, ``SENTRY_DSN`` is used if set.
    """
    global _tracking
    url = dsn.get_secret_value() if dsn is not None else os.environ.get(GLOBAL_DSN_VARIABLE)
    _tracking = bool(url)
    if not url:
        return False
    import sentry_sdk
    from sentry_sdk.integrations.atexit import AtexitIntegration
    from sentry_sdk.integrations.dedupe import DedupeIntegration
    from sentry_sdk.scrubber import DEFAULT_DENYLIST, EventScrubber

    sentry_sdk.init(
        dsn=url,
        release=os.environ.get("SENTRY_RELEASE") or f"tessera-{service}@{version}",
        default_integrations=False,
        auto_enabling_integrations=False,
        integrations=[AtexitIntegration(), DedupeIntegration()],
        include_local_variables=False,
        event_scrubber=EventScrubber(denylist=DEFAULT_DENYLIST + _SENSITIVE_KEYS, recursive=True),
    )
    sentry_sdk.set_tag("service", service)
    return True


def capture_error(error: BaseException, *, where: str, route: str | None) -> None:
    """Report an error answered with a 500 (a no-op unless error tracking is on).

    Args:
        error: the exception.
        where: what was being served (``"GET /v1/products/1"``, ``"NATS subject"``).
        route: the route template (``/v1/products/{product_id}``) or the NATS
            subject, which group the events of one operation; None if unknown.
    """
    if not _tracking:
        return
    import sentry_sdk

    with sentry_sdk.new_scope() as scope:
        context = current_context()
        if context is not None:
            scope.set_tag("request_id", context.request_id)
            scope.set_tag("trace_id", context.trace_id)
        scope.set_tag("route", route or "<unknown>")
        scope.set_extra("where", where)
        sentry_sdk.capture_exception(error)
