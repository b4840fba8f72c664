"""HTTP operations, declared once: what a service serves, the gateway forwards and a client calls.

An `Operation` says everything a caller and a server must agree on about one
HTTP operation: method and path template, its path, query and header
parameters (Pydantic models, so the constraints are the models' own), the
request body, the success status with its response model (or event stream),
the problem statuses it can answer, the scope a key needs, whether a failed
attempt may be repeated, and which service owns it. The version modules
declare theirs next to their models (`v1.GET_PRODUCT`, `v2.INFER`), the way
`Subject` declares a NATS subject; `v1.OPERATIONS` lists a version's table.

Parameter models follow three rules, so every server and client reads them
the same way: a path model's fields are the `{names}` of the path template; a
query model's fields are query parameters (by name); a header model's fields
are headers, named by their alias (`Idempotency-Key`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from pydantic import BaseModel

from tessera_contracts.problem import PROBLEM_MEDIA_TYPE, Problem

Method = Literal["GET", "POST", "PUT", "PATCH", "DELETE"]
Retry = Literal["always", "with_idempotency_key", "never"]
"""When a failed attempt may be repeated: `always` (it changes nothing, or the same
change again), `with_idempotency_key` (the server replays a stored answer), `never`."""

JSON: Final = "application/json"
EVENT_STREAM: Final = "text/event-stream"

CATALOG_READ: Final = "catalog:read"
"""GET catalog operations and the event stream."""
CATALOG_WRITE: Final = "catalog:write"
"""Catalog changes."""
INFERENCE_PREDICT: Final = "inference:predict"
"""Predictions and model metadata."""
SCOPES: Final = (CATALOG_READ, CATALOG_WRITE, INFERENCE_PREDICT)
"""Every scope an API key can hold."""

CATALOG: Final = "catalog"
INFERENCE: Final = "inference"
GATEWAY: Final = "gateway"
OWNERS: Final = (CATALOG, INFERENCE, GATEWAY)
"""Services that own operations (the gateway owns the ones it serves itself)."""

IDEMPOTENCY_KEY: Final = "Idempotency-Key"

_ID: Final = re.compile(r"^[a-z][a-z0-9_]*$")
_PATH_PARAM: Final = re.compile(r"\{([a-z_][a-z0-9_]*)\}")
_IDEMPOTENT_METHODS: Final = frozenset({"GET", "PUT", "DELETE"})


@dataclass(frozen=True, slots=True)
class Answer:
    """A documented answer besides success and problems, e.g. `304 Not Modified`."""

    status: int
    description: str
    model: type[BaseModel] | None = None
    """Its body, if it has one."""


@dataclass(frozen=True, slots=True)
class EventStream:
    """A `text/event-stream` response: each event's `data` is one `item` as JSON."""

    item: type[BaseModel]
    """The model of every event's `data`."""
    event_types: tuple[str, ...]
    """The values of `event` (the NATS subject each event came from)."""
    id_description: str
    """What an event's `id` is, and how a client resumes with it."""


@dataclass(frozen=True, slots=True)
class Operation:
    """One HTTP operation of the public API (see the module docstring)."""

    id: str
    """Stable snake_case name, unique within its version: `get_product`."""
    version: str
    """API version: `v1`, `v2`."""
    method: Method
    path: str
    """Path template, version prefix included: `/v1/products/{product_id}`."""
    owner: str
    """The service that serves it (one of `OWNERS`)."""
    scope: str
    """The scope an API key needs (one of `SCOPES`)."""
    summary: str
    """One line for documentation."""
    description: str = ""
    path_params: type[BaseModel] | None = None
    """A model whose fields are the path template's `{names}`."""
    query: type[BaseModel] | None = None
    headers: type[BaseModel] | None = None
    """A model whose fields are the request headers it reads, by alias."""
    body: type[BaseModel] | None = None
    body_examples: Mapping[str, Any] = field(default_factory=dict)
    """Named example bodies for documentation."""
    status: int = 200
    """Status of success."""
    response: type[BaseModel] | None = None
    """Model of the success body (JSON); None for no body or an event stream."""
    stream: EventStream | None = None
    """Set when success is an endless event stream instead of a JSON body."""
    response_headers: Mapping[str, str] = field(default_factory=dict)
    """Headers of a success answer worth documenting (`ETag`), with what they say."""
    errors: tuple[int, ...] = ()
    """The statuses the owner answers with an error body (`error_model`)."""
    error_model: type[BaseModel] = Problem
    error_media_type: str = PROBLEM_MEDIA_TYPE
    error_descriptions: Mapping[int, str] = field(default_factory=dict)
    """What an error status means here, where the status's name alone says too little."""
    validation_status: int = 422
    """The status of invalid input (the Open Inference Protocol says 400)."""
    answers: tuple[Answer, ...] = ()
    retry: Retry | None = None
    """None: derived from the method (see `retry_policy`)."""
    anonymous: bool = False
    """Callable without a key where the deployment allows anonymous reads."""
    tags: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not _ID.match(self.id):
            raise ValueError(f"operation id {self.id!r} is not snake_case")
        if not self.path.startswith(f"/{self.version}"):
            raise ValueError(f"{self.key}: path {self.path!r} is outside /{self.version}")
        if self.owner not in OWNERS or self.scope not in SCOPES:
            raise ValueError(f"{self.key}: unknown owner {self.owner!r} or scope {self.scope!r}")
        declared = set(self.path_params.model_fields) if self.path_params else set()
        if declared != set(self.path_param_names):
            raise ValueError(
                f"{self.key}: path {self.path!r} names {sorted(self.path_param_names)}, "
                f"its path model {sorted(declared)}"
            )
        if self.body is not None and self.method in ("GET", "DELETE"):
            raise ValueError(f"{self.key}: a {self.method} has no body")
        if self.response is not None and self.stream is not None:
            raise ValueError(f"{self.key}: a JSON response or an event stream, not both")

    def __hash__(self) -> int:
        # By key: the mapping fields are not hashable, and the key is unique per table.
        return hash(self.key)

    @property
    def key(self) -> str:
        """`v1.get_product`: unique across versions."""
        return f"{self.version}.{self.id}"

    @property
    def path_param_names(self) -> tuple[str, ...]:
        return tuple(_PATH_PARAM.findall(self.path))

    @property
    def header_names(self) -> tuple[str, ...]:
        """The request headers it reads, as spelled in documentation."""
        if self.headers is None:
            return ()
        return tuple(info.alias or name for name, info in self.headers.model_fields.items())

    @property
    def media_type(self) -> str:
        return EVENT_STREAM if self.stream is not None else JSON

    @property
    def retry_policy(self) -> Retry:
        """`retry`, or by the method: GET, PUT and DELETE `always`, a POST that takes
        an `Idempotency-Key` `with_idempotency_key`, anything else `never`."""
        if self.retry is not None:
            return self.retry
        if self.method in _IDEMPOTENT_METHODS:
            return "always"
        if IDEMPOTENCY_KEY in self.header_names:
            return "with_idempotency_key"
        return "never"

    def url_path(self, **path_params: object) -> str:
        """The path with its parameters filled in (values as `str()` gives them; a
        client percent-encodes them)."""
        missing = set(self.path_param_names) - path_params.keys()
        if missing:
            raise TypeError(f"{self.key}: missing path parameters {sorted(missing)}")
        return _PATH_PARAM.sub(lambda m: str(path_params[m.group(1)]), self.path)


def table(operations: Iterable[Operation]) -> tuple[Operation, ...]:
    """A version's operation table, checked: ids and (method, path) unique.

    Raises:
        ValueError: two operations share an id, or a method and path.
    """
    result = tuple(operations)
    seen_ids: set[str] = set()
    seen_routes: set[tuple[str, str]] = set()
    for operation in result:
        route = (operation.method, _PATH_PARAM.sub("{}", operation.path))
        if operation.key in seen_ids or route in seen_routes:
            raise ValueError(
                f"{operation.key}: duplicate id or {operation.method} {operation.path}"
            )
        seen_ids.add(operation.key)
        seen_routes.add(route)
    return result
