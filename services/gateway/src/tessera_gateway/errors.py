"""The gateway's errors: each becomes an `application/problem+json` response.

Titles are the RFC 9110 reason phrases, so a client can show them as they are;
the detail never quotes a key, a stack trace or an upstream's own error body.
"""

from __future__ import annotations

from typing import ClassVar

from tessera_runtime import ServiceError


class GatewayError(ServiceError):
    """Base of every error the gateway itself raises."""


class Unauthorized(GatewayError):
    status_code = 401
    title: ClassVar[str | None] = "Unauthorized"

    def __init__(self, detail: str) -> None:
        # RFC 9110 requires a challenge on 401; both accepted schemes share the realm.
        super().__init__(detail, headers={"WWW-Authenticate": 'Bearer realm="tessera"'})


class Forbidden(GatewayError):
    status_code = 403
    title: ClassVar[str | None] = "Forbidden"


class RateLimited(GatewayError):
    status_code = 429
    title: ClassVar[str | None] = "Too Many Requests"


class ContentTooLarge(GatewayError):
    status_code = 413
    title: ClassVar[str | None] = "Content Too Large"


class BadGateway(GatewayError):
    """The upstream broke the exchange (reset, malformed response, or a 5xx of its own)."""

    status_code = 502
    title: ClassVar[str | None] = "Bad Gateway"


class UpstreamUnavailable(GatewayError):
    """The upstream cannot be reached, or its circuit is open."""

    status_code = 503
    title: ClassVar[str | None] = "Service Unavailable"


class UpstreamTimeout(GatewayError):
    status_code = 504
    title: ClassVar[str | None] = "Gateway Timeout"


class TooManyEventClients(GatewayError):
    status_code = 503
    title: ClassVar[str | None] = "Service Unavailable"
