"""Tessera contracts: the Pydantic models of every API version and NATS subject.

Import a version as a module and let it name the version::

    from tessera_contracts import v1, v2

    v1.Product, v2.Product, v1.PREDICT, v1.GET_PRODUCT, v2.OPERATIONS
"""

from tessera_contracts import v1, v2
from tessera_contracts._base import (
    PROBLEM_HEADERS,
    Contract,
    RemoteProblem,
    RequestSubject,
    Subject,
    is_problem,
)
from tessera_contracts.events import (
    CLOUDEVENTS_MEDIA_TYPE,
    MSG_ID_HEADER,
    CloudEvent,
    event_headers,
    new_event,
)
from tessera_contracts.health import HealthReport
from tessera_contracts.operations import (
    CATALOG_READ,
    CATALOG_WRITE,
    INFERENCE_PREDICT,
    SCOPES,
    Answer,
    EventStream,
    Operation,
)
from tessera_contracts.problem import PROBLEM_MEDIA_TYPE, FieldError, Problem

__all__ = [
    "CATALOG_READ",
    "CATALOG_WRITE",
    "CLOUDEVENTS_MEDIA_TYPE",
    "INFERENCE_PREDICT",
    "MSG_ID_HEADER",
    "PROBLEM_HEADERS",
    "PROBLEM_MEDIA_TYPE",
    "SCOPES",
    "Answer",
    "CloudEvent",
    "Contract",
    "EventStream",
    "FieldError",
    "HealthReport",
    "Operation",
    "Problem",
    "RemoteProblem",
    "RequestSubject",
    "Subject",
    "event_headers",
    "is_problem",
    "new_event",
    "v1",
    "v2",
]
