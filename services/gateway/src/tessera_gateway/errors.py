"""The gateway's errors: each becomes an `application/problem+json` response.

Titles are the RFC 9110 reason phrases of their status, so a client can show
them as they are; the detail never quotes a key, a stack trace or an
upstream's own error body.
"""

from __future__ import annotations

from tessera_runtime import ServiceError, status_title


class GatewayError(ServiceError):
    """Base of every error the gateway itself raises."""

    @classmethod
    def problem_title(cls) -> str:
        return cls.title or status_title(cls.status_code)


class Unauthorized(GatewayError):
    status_code = 401

    def __init__(self, detail: str) -> None:
        # RFC 9110 requires a challenge on 401; both accepted schemes share the realm.
        super().__init__(detail, headers={"WWW-Authenticate": 'Bearer realm="tessera"'})


class Forbidden(GatewayError):
    status_code = 403


class RateLimited(GatewayError):
    status_code = 429


class ContentTooLarge(GatewayError):
    status_code = 413


class BadGateway(GatewayError):
    """The upstream broke the exchange (reset, malformed response, or a 5xx of its own)."""

    status_code = 502


class UpstreamUnavailable(GatewayError):
    """The upstream cannot be reached, or its circuit is open."""

    status_code = 503


class UpstreamTimeout(GatewayError):
    status_code = 504


class TooManyEventClients(GatewayError):
    status_code = 503
