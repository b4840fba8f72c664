"""The AsyncAPI document: committed, valid AsyncAPI 3.0.0, and generated from the subjects."""

from __future__ import annotations

import copy
import json
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

# jsonschema ships no type information (and types-jsonschema is not in the lockfile).
from jsonschema import Draft7Validator, Draft202012Validator  # type: ignore[import-untyped]
from pydantic import BaseModel
from tessera_contracts import (
    CLOUDEVENTS_MEDIA_TYPE,
    PROBLEM_HEADERS,
    Problem,
    Subject,
    event_headers,
    is_problem,
    v1,
)
from tessera_contracts.asyncapi import DEFAULT_SNAPSHOT, SCHEMA_REF, asyncapi_document, run_cli
from tessera_contracts.problem import PROBLEM_MEDIA_TYPE
from tessera_contracts.snapshots import render

HERE = Path(__file__).parent
SNAPSHOT = HERE.parent / "asyncapi.json"
GOLDEN = HERE / "golden"
WRITE = "uv run python -m tessera_contracts.asyncapi --write"
ASYNCAPI_SCHEMA = json.loads((HERE / "data/asyncapi-3.0.0.schema.json").read_text())

Document = dict[str, Any]


@pytest.fixture(scope="module")
def document() -> Document:
    return asyncapi_document()


def resolve(document: Document, node: Document) -> Document:
    """Follow a local `$ref` (AsyncAPI references are JSON Pointers into the document)."""
    while "$ref" in node:
        target: Any = document
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part.replace("~1", "/").replace("~0", "~")]
        node = target
    return node


def operation_messages(document: Document, operation_id: str) -> list[Document]:
    operation = document["operations"][operation_id]
    return [resolve(document, ref) for ref in operation["messages"]]


def reply_messages(document: Document, operation_id: str) -> list[Document]:
    reply = document["operations"][operation_id]["reply"]
    return [resolve(document, ref) for ref in reply["messages"]]


def schema_errors(document: Document) -> list[str]:
    validator = Draft7Validator(ASYNCAPI_SCHEMA, format_checker=Draft7Validator.FORMAT_CHECKER)
    return [
        f"{'/'.join(map(str, error.absolute_path))}: {error.message}"
        for error in validator.iter_errors(document)
    ]


def payload_validator(document: Document, message: Document) -> Draft202012Validator:
    # Payload schemas are Pydantic's (JSON Schema 2020-12) and point into
    # `#/components/schemas`, so they are validated with the components at the root.
    return Draft202012Validator({**message["payload"], "components": document["components"]})


class TestSnapshot:
    def test_default_path_is_the_committed_snapshot(self) -> None:
        assert DEFAULT_SNAPSHOT == SNAPSHOT.resolve()

    def test_committed_snapshot_is_the_generated_document(self, document: Document) -> None:
        assert SNAPSHOT.read_text(encoding="utf-8") == render(document), (
            f"the NATS subjects changed: review, then run `{WRITE}`"
        )

    def test_generation_is_deterministic(self) -> None:
        assert render(asyncapi_document()) == render(asyncapi_document())

    def test_changing_a_document_leaves_the_next_one_intact(self) -> None:
        changed = asyncapi_document()
        for message in changed["components"]["messages"].values():
            for header in message["headers"]["properties"].values():
                header["description"] = "changed"

        assert render(asyncapi_document()) == SNAPSHOT.read_text(encoding="utf-8")

    def test_check_passes_on_what_write_wrote(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        path = tmp_path / "asyncapi.json"

        assert run_cli(["--check", str(path)]) == 1
        assert run_cli(["--write", str(path)]) == 0
        assert run_cli(["--check", str(path)]) == 0
        assert path.read_text(encoding="utf-8") == SNAPSHOT.read_text(encoding="utf-8")
        capsys.readouterr()

        path.write_text(path.read_text().replace("catalog.v1.product.created", "gone"))
        assert run_cli(["--check", str(path)]) == 1
        assert "--write" in capsys.readouterr().out


class TestSchemaValidity:
    def test_shipped_schema_is_the_asyncapi_3_0_0_one(self) -> None:
        Draft7Validator.check_schema(ASYNCAPI_SCHEMA)

        assert ASYNCAPI_SCHEMA["title"] == "AsyncAPI 3.0.0 schema."
        assert ASYNCAPI_SCHEMA["properties"]["asyncapi"]["const"] == "3.0.0"

    def test_document_is_valid_asyncapi_3_0_0(self, document: Document) -> None:
        assert schema_errors(document) == []

    def test_committed_snapshot_is_valid_asyncapi_3_0_0(self) -> None:
        assert schema_errors(json.loads(SNAPSHOT.read_text(encoding="utf-8"))) == []

    @pytest.mark.parametrize(
        "corrupt",
        [
            pytest.param(lambda d: d["info"].pop("version"), id="info-without-version"),
            pytest.param(
                lambda d: d["operations"][v1.PREDICT.name].pop("action"), id="operation-no-action"
            ),
            pytest.param(
                lambda d: d["operations"][v1.PRODUCT_CREATED.name].update(action="publish"),
                id="operation-2.x-action",
            ),
            pytest.param(lambda d: d["servers"]["nats"].pop("protocol"), id="server-no-protocol"),
            pytest.param(
                lambda d: d["channels"][v1.PREDICT.name].update(address=4222),
                id="channel-address-not-a-string",
            ),
        ],
    )
    def test_a_broken_document_fails_validation(
        self, document: Document, corrupt: Callable[[Document], object]
    ) -> None:
        broken = copy.deepcopy(document)
        corrupt(broken)

        assert schema_errors(broken) != []


class TestCoverage:
    def test_every_subject_has_exactly_one_channel(self, document: Document) -> None:
        addresses = Counter(channel["address"] for channel in document["channels"].values())
        subjects = [s.name for s in v1.CATALOG_EVENT_SUBJECTS] + [v1.PREDICT.name]

        assert {name: addresses[name] for name in subjects} == dict.fromkeys(subjects, 1)
        # Besides them, only the predict reply inbox, whose address is dynamic.
        assert sum(addresses.values()) == len(subjects) + 1
        assert addresses[None] == 1

    def test_every_subject_has_exactly_one_operation(self, document: Document) -> None:
        channels = Counter(
            resolve(document, op["channel"])["address"] for op in document["operations"].values()
        )

        assert channels == Counter([s.name for s in v1.CATALOG_EVENT_SUBJECTS] + [v1.PREDICT.name])

    def test_catalog_events_are_sent_to_the_catalog_stream(self, document: Document) -> None:
        for subject in v1.CATALOG_EVENT_SUBJECTS:
            operation = document["operations"][subject.name]

            assert operation["action"] == "send"
            assert operation["x-jetstream"] == {
                "stream": v1.CATALOG_STREAM,
                "subjects": v1.CATALOG_SUBJECTS,
            }
            assert v1.CATALOG_STREAM in operation["summary"]


def model_schema(model: type[BaseModel]) -> tuple[Document, Document]:
    schema = model.model_json_schema(ref_template=SCHEMA_REF)
    return schema, schema.pop("$defs", {})


def assert_documents_model(document: Document, message: Document, model: type[BaseModel]) -> None:
    payload, definitions = model_schema(model)

    assert message["payload"] == payload
    for name, definition in definitions.items():
        assert document["components"]["schemas"][name] == definition


class TestPayloads:
    @pytest.mark.parametrize("subject", v1.CATALOG_EVENT_SUBJECTS, ids=lambda s: s.name)
    def test_event_payload_is_the_schema_of_its_model(
        self, document: Document, subject: Subject[Any]
    ) -> None:
        (message,) = operation_messages(document, subject.name)

        assert message["contentType"] == CLOUDEVENTS_MEDIA_TYPE
        assert_documents_model(document, message, subject.model)

    def test_predict_payloads_are_the_schemas_of_its_models(self, document: Document) -> None:
        (request,) = operation_messages(document, v1.PREDICT.name)
        reply, problem = reply_messages(document, v1.PREDICT.name)

        assert_documents_model(document, request, v1.PREDICT.request)
        assert_documents_model(document, reply, v1.PREDICT.reply)
        assert_documents_model(document, problem, Problem)

    def test_components_hold_only_definitions_of_the_models(self, document: Document) -> None:
        models = [s.model for s in v1.CATALOG_EVENT_SUBJECTS]
        models += [v1.PREDICT.request, v1.PREDICT.reply, Problem]
        names = {name for model in models for name in model_schema(model)[1]}

        assert set(document["components"]["schemas"]) == names

    @pytest.mark.parametrize("path", sorted(GOLDEN.glob("v1/CATALOG.*.json")), ids=lambda p: p.name)
    def test_golden_event_validates_against_its_message(
        self, document: Document, path: Path
    ) -> None:
        body = json.loads(path.read_text())
        (message,) = operation_messages(document, body["type"])

        payload_validator(document, message).validate(body)
        del body["data"]
        assert not payload_validator(document, message).is_valid(body)

    def test_golden_predict_bodies_validate_against_their_messages(
        self, document: Document
    ) -> None:
        (request,) = operation_messages(document, v1.PREDICT.name)
        reply, problem = reply_messages(document, v1.PREDICT.name)
        golden = {
            "v1/PredictionRequest.json": request,
            "v1/PredictionResponse.json": reply,
            "shared/Problem.json": problem,
        }

        for relpath, message in golden.items():
            payload_validator(document, message).validate(
                json.loads((GOLDEN / relpath).read_text())
            )


class TestHeaders:
    def test_event_headers_are_those_the_publisher_sets(self, document: Document) -> None:
        product = json.loads((GOLDEN / "v1/CATALOG.product.created.json").read_text())
        event = v1.PRODUCT_CREATED.model.model_validate(product)
        headers = event_headers(event)
        (message,) = operation_messages(document, v1.PRODUCT_CREATED.name)

        Draft7Validator(message["headers"]).validate(headers)
        assert set(message["headers"]["required"]) == set(headers)
        assert not Draft7Validator(message["headers"]).is_valid({**headers, "Content-Type": "x"})

    def test_reply_documents_the_problem_message(self, document: Document) -> None:
        reply = document["operations"][v1.PREDICT.name]["reply"]
        reply_channel = resolve(document, reply["channel"])
        _, problem = reply_messages(document, v1.PREDICT.name)

        assert reply_channel["address"] is None
        assert problem["contentType"] == PROBLEM_MEDIA_TYPE
        assert problem["payload"]["title"] == Problem.__name__
        Draft7Validator(problem["headers"]).validate(dict(PROBLEM_HEADERS))
        assert set(problem["headers"]["required"]) == set(PROBLEM_HEADERS)
        # The documented header value is the one requesters detect a problem by.
        const = {k: v["const"] for k, v in problem["headers"]["properties"].items() if "const" in v}
        assert is_problem(const)

    def test_successful_reply_needs_no_problem_header(self, document: Document) -> None:
        reply, _ = reply_messages(document, v1.PREDICT.name)

        assert reply["payload"]["title"] == v1.PREDICT.reply.__name__
        assert "required" not in reply["headers"]
