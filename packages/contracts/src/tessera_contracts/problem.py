"""RFC 9457 problem details: the one error body every Tessera service returns."""

from __future__ import annotations

from typing import Final

from pydantic import Field, ValidationError

from tessera_contracts._base import Contract

PROBLEM_MEDIA_TYPE: Final = "application/problem+json"
"""Media type of a `Problem` body, over HTTP and as a NATS `Content-Type` header."""


class FieldError(Contract):
    """One validation failure, located in the request that caused it."""

    loc: list[str | int]
    """Path to the offending value, e.g. `["body", "features", 3]`."""
    msg: str
    """Human-readable explanation."""
    type: str
    """Machine-readable error code (Pydantic's error type, e.g. `greater_than_equal`)."""


class Problem(Contract):
    """Problem details (RFC 9457), served as `application/problem+json`.

    Consumers ignore members they do not know, so a service may add members;
    the optional ones below are those Tessera services agree on.
    """

    type: str = "about:blank"
    """URI reference identifying the problem type; `about:blank` means the status says it all."""
    title: str
    """Short summary of the problem type; the same for every occurrence."""
    status: int = Field(ge=100, le=599)
    """HTTP status code of this occurrence (also meaningful on NATS replies)."""
    detail: str | None = None
    """Explanation specific to this occurrence."""
    instance: str | None = None
    """URI reference identifying this occurrence, e.g. the request path."""
    errors: list[FieldError] | None = None
    """Validation failures, one per offending value (422 responses)."""
    upstream: str | None = None
    """Name of the upstream service that failed, set by the gateway (502/503/504)."""
    checks: dict[str, str] | None = None
    """Readiness checks by name with their state, set by `/readyz` when not ready."""

    @classmethod
    def from_validation_error(
        cls,
        error: ValidationError,
        *,
        status: int = 422,
        title: str = "Unprocessable Content",
        loc_prefix: tuple[str | int, ...] = (),
        instance: str | None = None,
    ) -> Problem:
        """Build a problem listing every failure of a Pydantic validation error.

        Args:
            error: The validation error to report.
            status: HTTP status of the problem (400 suits a malformed NATS request).
            title: Summary of the problem type.
            loc_prefix: Prepended to each location, e.g. `("body",)` for HTTP bodies.
            instance: Identifies this occurrence, e.g. the request path.

        Returns:
            A problem whose `errors` has one `FieldError` per failure.
        """
        errors = [
            FieldError(loc=[*loc_prefix, *item["loc"]], msg=item["msg"], type=item["type"])
            for item in error.errors(include_url=False)
        ]
        return cls(
            title=title,
            status=status,
            detail=f"{len(errors)} validation error(s) for {error.title}",
            instance=instance,
            errors=errors,
        )
