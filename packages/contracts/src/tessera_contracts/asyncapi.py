"""The AsyncAPI 3.0 document of Tessera's NATS API, generated from the v1 subjects table.

It covers every catalog event subject of the `CATALOG` JetStream stream (the
CloudEvents envelope with each subject's payload schema) and the
`inference.v1.predict` request-reply. Payload schemas are Pydantic's JSON
Schemas of the subject models, so the document cannot drift from the code; a
committed snapshot (`packages/contracts/asyncapi.json`) makes changes visible
in review:

    uv run python -m tessera_contracts.asyncapi --check
    uv run python -m tessera_contracts.asyncapi --write packages/contracts/asyncapi.json
"""

from __future__ import annotations

import argparse
import copy
import importlib.metadata
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final

from pydantic import BaseModel

from tessera_contracts import v1
from tessera_contracts._base import CONTENT_TYPE_HEADER, PROBLEM_HEADERS
from tessera_contracts.events import CLOUDEVENTS_MEDIA_TYPE, MSG_ID_HEADER
from tessera_contracts.problem import PROBLEM_MEDIA_TYPE, Problem

Document = dict[str, Any]

ASYNCAPI_VERSION: Final = "3.0.0"
DEFAULT_SNAPSHOT: Final = Path(__file__).resolve().parents[2] / "asyncapi.json"
"""`packages/contracts/asyncapi.json` when running from the repository."""
SERVER: Final = "nats"
"""Id of the one server entry."""
SCHEMA_REF: Final = "#/components/schemas/{model}"
JSON_MEDIA_TYPE: Final = "application/json"

# Headers that carry the caller's context across services. They are set by
# tessera-runtime (`tessera_runtime.context`), which this package cannot import
# (it installs with pydantic alone), so the names are spelled out here.
_CONTEXT_HEADERS: Final[Mapping[str, Document]] = {
    "X-Request-ID": {
        "type": "string",
        "description": "Request id of the HTTP request (or NATS request) that caused this message.",
    },
    "traceparent": {
        "type": "string",
        "description": "W3C Trace Context of the caller, so the message joins its trace.",
    },
}


def _version() -> str:
    try:
        return importlib.metadata.version("tessera-contracts")
    except importlib.metadata.PackageNotFoundError:  # imported from a source tree
        return "0.0.0"


def _ref(*parts: str) -> Document:
    # JSON Pointer escaping (RFC 6901): subjects contain dots, never "~" or "/",
    # but escape anyway so a ref always points where it says.
    return {"$ref": "#/" + "/".join(p.replace("~", "~0").replace("/", "~1") for p in parts)}


class _Schemas:
    """Collects payload schemas, hoisting their `$defs` into `components/schemas`."""

    def __init__(self) -> None:
        self.components: dict[str, Document] = {}

    def payload(self, model: type[BaseModel]) -> Document:
        """The JSON Schema of a model, its references pointing into the components.

        Args:
            model: A contract model.

        Returns:
            The schema without `$defs`; those are added to `components`.

        Raises:
            ValueError: Two models define different schemas under the same name.
        """
        schema = model.model_json_schema(ref_template=SCHEMA_REF)
        for name, definition in schema.pop("$defs", {}).items():
            known = self.components.setdefault(name, definition)
            if known != definition:
                raise ValueError(f"two different schemas are both named {name!r}")
        return schema


def _headers(required: Mapping[str, Document], description: str) -> Document:
    schema: Document = {
        "type": "object",
        "description": description,
        # Copied: the document is the caller's to change, the constant is not.
        "properties": {**required, **copy.deepcopy(_CONTEXT_HEADERS)},
    }
    if required:
        schema["required"] = sorted(required)
    return schema


def _event_headers() -> Document:
    # What `tessera_contracts.events.event_headers` sets on every catalog event.
    return _headers(
        {
            MSG_ID_HEADER: {
                "type": "string",
                "minLength": 1,
                "description": "The CloudEvent `id`: JetStream drops a message whose id "
                "it saw within the stream's duplicate window, so a republished event "
                "is stored once.",
            },
            CONTENT_TYPE_HEADER: {"type": "string", "const": CLOUDEVENTS_MEDIA_TYPE},
        },
        "CloudEvents structured mode: the body is the whole envelope.",
    )


def _problem_headers() -> Document:
    return _headers(
        {name: {"type": "string", "const": value} for name, value in PROBLEM_HEADERS.items()},
        "Marks the body as a `Problem` instead of the reply model "
        "(`tessera_contracts.is_problem`).",
    )


def _catalog_events(schemas: _Schemas, document: Document) -> None:
    for subject in v1.CATALOG_EVENT_SUBJECTS:
        name = subject.name
        document["components"]["messages"][name] = {
            "name": name,
            "title": f"CloudEvent of {name}",
            "contentType": CLOUDEVENTS_MEDIA_TYPE,
            "headers": _event_headers(),
            "payload": schemas.payload(subject.model),
        }
        document["channels"][name] = {
            "address": name,
            "title": name,
            "description": f"Catalog events of type `{name}`; a subject of the JetStream "
            f"stream `{v1.CATALOG_STREAM}` (`{v1.CATALOG_SUBJECTS}`).",
            "messages": {"event": _ref("components", "messages", name)},
        }
        document["operations"][name] = {
            "action": "send",
            "channel": _ref("channels", name),
            "messages": [_ref("channels", name, "messages", "event")],
            "summary": f"The catalog publishes `{name}` to the JetStream stream "
            f"`{v1.CATALOG_STREAM}`.",
            "description": "Published from the catalog's transactional outbox after the "
            "change commits, at least once; consumers de-duplicate on the CloudEvent `id` "
            f"(also the `{MSG_ID_HEADER}` header). Consume the whole stream with a JetStream "
            f"consumer on `{v1.CATALOG_SUBJECTS}` and decode with "
            "`tessera_contracts.v1.CATALOG_EVENT_ADAPTER`.",
            "x-jetstream": {"stream": v1.CATALOG_STREAM, "subjects": v1.CATALOG_SUBJECTS},
        }


def _predict(schemas: _Schemas, document: Document) -> None:
    subject = v1.PREDICT
    name, reply = subject.name, f"{subject.name}.reply"
    messages = document["components"]["messages"]
    for part, model, about in (
        ("request", subject.request, "Optional context headers."),
        ("reply", subject.reply, "The responder echoes the request id."),
    ):
        messages[f"{name}.{part}"] = {
            "name": f"{name}.{part}",
            "title": model.__name__,
            "contentType": JSON_MEDIA_TYPE,
            "headers": _headers({}, about),
            "payload": schemas.payload(model),
        }
    messages[f"{name}.problem"] = {
        "name": f"{name}.problem",
        "title": Problem.__name__,
        "summary": "The request was rejected (422 when invalid) or could not be served.",
        "contentType": PROBLEM_MEDIA_TYPE,
        "headers": _problem_headers(),
        "payload": schemas.payload(Problem),
    }
    document["channels"][name] = {
        "address": name,
        "title": name,
        "description": "Classify one sample; the inference service answers in a queue group.",
        "messages": {"request": _ref("components", "messages", f"{name}.request")},
    }
    document["channels"][reply] = {
        # A NATS request carries its reply subject (a fresh inbox of the requester),
        # so the address is only known at runtime: null, as AsyncAPI 3.0 says.
        "address": None,
        "title": f"{name} reply",
        "description": "The requester's inbox: the reply subject of the request message.",
        "messages": {
            "reply": _ref("components", "messages", f"{name}.reply"),
            "problem": _ref("components", "messages", f"{name}.problem"),
        },
    }
    document["operations"][name] = {
        "action": "send",
        "channel": _ref("channels", name),
        "messages": [_ref("channels", name, "messages", "request")],
        "summary": "Request a prediction and wait for the reply.",
        "description": "Core NATS request-reply (not JetStream). Every request gets one "
        "reply: the prediction, or a `Problem` marked by "
        f"`{CONTENT_TYPE_HEADER}: {PROBLEM_MEDIA_TYPE}`. "
        "`tessera_contracts.v1.PREDICT.decode_reply` raises `RemoteProblem` for the latter.",
        "reply": {
            "channel": _ref("channels", reply),
            "messages": [
                _ref("channels", reply, "messages", "reply"),
                _ref("channels", reply, "messages", "problem"),
            ],
        },
    }


def asyncapi_document() -> dict[str, Any]:
    """The AsyncAPI 3.0.0 document of the NATS subjects of `tessera_contracts.v1`.

    Returns:
        A fresh JSON-ready document (callers may keep or change it); the same
        content on every call.
    """
    document: Document = {
        "asyncapi": ASYNCAPI_VERSION,
        "info": {
            "title": "Tessera NATS API",
            "version": _version(),
            "description": "The NATS subjects of Tessera, generated from `tessera_contracts.v1`: "
            "the catalog's events (CloudEvents 1.0, structured JSON mode) on the JetStream "
            f"stream `{v1.CATALOG_STREAM}` and the `{v1.PREDICT.name}` request-reply. "
            "Operations are written from the sender's side: the catalog sends its events, a "
            "requester sends a prediction request and receives the reply.",
        },
        "defaultContentType": JSON_MEDIA_TYPE,
        "servers": {
            SERVER: {
                "host": "localhost:4222",
                "protocol": "nats",
                "description": "The local development server (`uv run tessera up`); "
                "deployments set their own (each service's `<SERVICE>_NATS_URL`).",
            }
        },
        "channels": {},
        "operations": {},
        "components": {"messages": {}, "schemas": {}},
    }
    schemas = _Schemas()
    _catalog_events(schemas, document)
    _predict(schemas, document)
    document["components"]["schemas"] = schemas.components
    return document


def run_cli(argv: Sequence[str] | None = None) -> int:
    """Command line: `python -m tessera_contracts.asyncapi --check | --write [PATH]`.

    Args:
        argv: Arguments without the program name; `sys.argv[1:]` by default.

    Returns:
        The exit status: 0 when the snapshot matches (or was written), else 1.
    """
    parser = argparse.ArgumentParser(
        prog="python -m tessera_contracts.asyncapi",
        description="Check or write the committed AsyncAPI document of the NATS subjects.",
    )
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument(
        "--check",
        nargs="?",
        const=DEFAULT_SNAPSHOT,
        type=Path,
        metavar="PATH",
        help="fail unless PATH (the committed snapshot by default) matches the code",
    )
    action.add_argument(
        "--write",
        nargs="?",
        const=DEFAULT_SNAPSHOT,
        type=Path,
        metavar="PATH",
        help="write the document to PATH (the committed snapshot by default)",
    )
    args = parser.parse_args(argv)
    # Imported here: serving the document (the gateway) needs no snapshot registry.
    from tessera_contracts.snapshots import render

    text = render(asyncapi_document())
    if args.write is not None:
        args.write.write_text(text, encoding="utf-8")
        sys.stdout.write(f"wrote {args.write}\n")
        return 0
    path: Path = args.check
    if path.is_file() and path.read_text(encoding="utf-8") == text:
        sys.stdout.write(f"{path} matches the subjects\n")
        return 0
    sys.stdout.write(
        f"{path} is missing or outdated; run "
        "`uv run python -m tessera_contracts.asyncapi --write` after reviewing the change\n"
    )
    return 1


if __name__ == "__main__":
    raise SystemExit(run_cli())
