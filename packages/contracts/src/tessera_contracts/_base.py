"""The base model of every contract, and NATS subjects typed with their messages."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, Generic, TypeVar

from pydantic import BaseModel, ConfigDict

if TYPE_CHECKING:
    from tessera_contracts.problem import Problem


class Contract(BaseModel):
    """Base of every Tessera message: HTTP bodies and NATS payloads alike."""

    # Consumers ignore unknown fields, so a producer can add an optional field
    # within a version without breaking older consumers. Frozen, because a
    # message is a value: it is built once and then only read and passed on.
    # No protected namespaces: `model_version` and `model_name` are protocol
    # field names, and Pydantic < 2.10 would warn about them.
    model_config = ConfigDict(
        frozen=True, extra="ignore", use_attribute_docstrings=True, protected_namespaces=()
    )


M = TypeVar("M", bound=BaseModel)
Req = TypeVar("Req", bound=BaseModel)
Rep = TypeVar("Rep", bound=BaseModel)

CONTENT_TYPE_HEADER: Final = "Content-Type"
# Spelled out (not imported from problem.py) because problem.py imports this module.
PROBLEM_HEADERS: Final[Mapping[str, str]] = {CONTENT_TYPE_HEADER: "application/problem+json"}
"""Headers of a NATS reply whose body is a `Problem` rather than the reply model."""


class RemoteProblem(Exception):
    """A request-reply peer rejected the request and replied with a `Problem`."""

    def __init__(self, problem: Problem) -> None:
        """Wrap the problem the peer replied with.

        Args:
            problem: The problem details from the reply body.
        """
        super().__init__(f"{problem.status} {problem.title}: {problem.detail or ''}".rstrip(": "))
        self.problem = problem
        """The problem the peer replied with."""


@dataclass(frozen=True, slots=True)
class Subject(Generic[M]):
    """A publish/subscribe NATS subject, typed with its payload model."""

    name: str
    """The NATS subject, `<owner>.<version>.<entity>.<event>`."""
    model: type[M]
    """The model of every message published on this subject."""

    def encode(self, message: M) -> bytes:
        """The JSON body that publishes `message`."""
        return message.model_dump_json().encode()

    def decode(self, data: bytes) -> M:
        """The validated payload of a received JSON body.

        Raises:
            pydantic.ValidationError: The body is not a valid payload.
        """
        return self.model.model_validate_json(data)


def is_problem(headers: Mapping[str, str] | None) -> bool:
    """Tell whether NATS headers mark the body as a `Problem`.

    Args:
        headers: The message headers (`msg.headers` in nats-py), or None.

    Returns:
        True when `Content-Type` is `application/problem+json`, parameters and
        header-name case ignored.
    """
    if not headers:
        return False
    for key, value in headers.items():
        if key.lower() == "content-type":
            return value.split(";", 1)[0].strip().lower() == "application/problem+json"
    return False


@dataclass(frozen=True, slots=True)
class RequestSubject(Generic[Req, Rep]):
    """A request-reply NATS subject, typed with its request and reply models.

    A responder that rejects a request replies with `encode_problem(...)` and
    `PROBLEM_HEADERS`; the requester's `decode_reply` then raises `RemoteProblem`.
    """

    name: str
    """The NATS subject, `<owner>.<version>.<verb>`."""
    request: type[Req]
    """The model of the request."""
    reply: type[Rep]
    """The model of a successful reply."""

    def encode_request(self, message: Req) -> bytes:
        """The JSON body of a request."""
        return message.model_dump_json().encode()

    def decode_request(self, data: bytes) -> Req:
        """The validated request of a received JSON body.

        Raises:
            pydantic.ValidationError: The body is not a valid request; reply with
                `Problem.from_validation_error(...)` and `PROBLEM_HEADERS`.
        """
        return self.request.model_validate_json(data)

    def encode_reply(self, message: Rep) -> bytes:
        """The JSON body of a successful reply."""
        return message.model_dump_json().encode()

    def encode_problem(self, problem: Problem) -> bytes:
        """The JSON body (without null members) of a rejection; send it with `PROBLEM_HEADERS`."""
        return problem.model_dump_json(exclude_none=True).encode()

    def decode_reply(self, data: bytes, headers: Mapping[str, str] | None = None) -> Rep:
        """Parse a reply, raising when the responder replied with a problem.

        Args:
            data: The JSON body.
            headers: The reply headers (`msg.headers` in nats-py), or None.

        Returns:
            The validated reply.

        Raises:
            RemoteProblem: The headers mark the body as a `Problem`.
            pydantic.ValidationError: The body is not a valid reply (or problem).
        """
        if is_problem(headers):
            # Deferred: problem.py imports this module.
            from tessera_contracts.problem import Problem

            raise RemoteProblem(Problem.model_validate_json(data))
        return self.reply.model_validate_json(data)
