"""The inference service's errors: one base, one class per problem.

The v1 API and the NATS worker render them as problem+json; the Open Inference
Protocol routes render the same exceptions as `{"error": "..."}` (see `api/v2.py`).
"""

from __future__ import annotations

from typing import ClassVar

from tessera_runtime import ServiceError


class InferenceError(ServiceError):
    status_code: ClassVar[int] = 500


class ModelNotFound(InferenceError):
    status_code = 404

    def __init__(self, name: str) -> None:
        super().__init__(f"model {name!r} not found")


class ModelVersionNotFound(InferenceError):
    status_code = 404

    def __init__(self, name: str, version: str, available: list[str]) -> None:
        super().__init__(
            f"model {name!r} has no version {version!r}; available: {', '.join(available)}"
        )


class InvalidInput(InferenceError):
    """Input the model cannot take: wrong shape, datatype or non-finite values."""

    status_code = 422


class ShuttingDown(InferenceError):
    status_code = 503

    def __init__(self) -> None:
        super().__init__("the service is shutting down")
