"""The catalog's errors: one base, one class per problem type.

`tessera_runtime` turns each into an `application/problem+json` response whose
title is the class name and whose type is `urn:tessera:problem:<kebab-name>`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar
from uuid import UUID

from tessera_contracts.problem import FieldError, Problem
from tessera_runtime import ServiceError


class CatalogError(ServiceError):
    """Base of every error the catalog answers with."""

    status_code: ClassVar[int] = 500


class _FixedDetail(CatalogError):
    """An error that always says the same: its class states the detail."""

    detail: ClassVar[str]

    def __init__(self) -> None:
        super().__init__(self.detail)


class _PostgresUnavailable(CatalogError):
    """503 with Retry-After: PostgreSQL could not answer; its class states the detail."""

    status_code = 503
    detail: ClassVar[str]

    def __init__(self) -> None:
        super().__init__(self.detail, upstream="postgresql", headers={"Retry-After": "1"})


class ProductNotFound(CatalogError):
    status_code = 404

    def __init__(self, product_id: UUID) -> None:
        super().__init__(f"product {product_id} does not exist")


class DuplicateSku(CatalogError):
    status_code = 409

    def __init__(self, sku: str) -> None:
        super().__init__(f"a product with sku {sku!r} already exists")


class IdempotencyKeyReused(_FixedDetail):
    status_code = 409
    detail = (
        "this Idempotency-Key was already used with a different request body; "
        "use a new key for a different request"
    )


class PreconditionFailed(CatalogError):
    status_code = 412

    def __init__(self, current_etag: str) -> None:
        super().__init__(
            f"If-Match does not match the current ETag {current_etag}: the product changed; "
            "fetch it again and retry",
            headers={"ETag": current_etag},
        )


class InvalidCursor(_FixedDetail):
    status_code = 400
    detail = "cursor is not one this API returned; start again without a cursor"


class InvalidValue(CatalogError):
    """A value passed validation of its type but not a limit the database enforces."""

    status_code = 422

    def __init__(self, detail: str, errors: Sequence[FieldError] = ()) -> None:
        super().__init__(detail)
        self.errors = list(errors)

    def to_problem(self, *, instance: str | None = None) -> Problem:
        problem = super().to_problem(instance=instance)
        return problem.model_copy(update={"errors": self.errors or None})


class ProductUnavailable(_PostgresUnavailable):
    """The product row itself could not be read in time; nothing to enrich."""

    detail = "the product could not be read in time; retry shortly"


class DatabaseUnavailable(_PostgresUnavailable):
    """PostgreSQL is unreachable, restarting or overloaded; nothing was changed."""

    detail = "the catalog database is unavailable or overloaded; nothing was changed; retry shortly"


class CommitOutcomeUnknown(_PostgresUnavailable):
    """The connection was lost after COMMIT was sent: the write may or may not have happened.

    Still a 503 (the database is away, retry shortly), but with its own type and
    detail, because unlike DatabaseUnavailable it does not promise that nothing
    changed.
    """

    detail = (
        "the connection to the catalog database was lost while committing: the change "
        "may or may not have been saved. Retry with the same Idempotency-Key to get the "
        "original response; without one, read the resource before repeating the change"
    )
