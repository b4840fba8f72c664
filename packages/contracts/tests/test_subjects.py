"""Subjects: every one round-trips, request-reply problems, the catalog stream."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel, ValidationError
from tessera_contracts import (
    PROBLEM_HEADERS,
    FieldError,
    Problem,
    RemoteProblem,
    RequestSubject,
    Subject,
    event_headers,
    is_problem,
    v1,
    v2,
)

from .conftest import FEATURES


@pytest.fixture
def event_data(
    product: v1.Product, review: v1.Review, inventory: v1.Inventory
) -> dict[str, v1.CatalogEvent]:
    return {
        v1.PRODUCT_CREATED.name: v1.ProductCreated(product=product),
        v1.PRODUCT_UPDATED.name: v1.ProductUpdated(product=product),
        v1.PRODUCT_DELETED.name: v1.ProductDeleted(product_id=product.id, sku=product.sku),
        v1.REVIEW_CREATED.name: v1.ReviewCreated(review=review),
        v1.INVENTORY_UPDATED.name: v1.InventoryUpdated(inventory=inventory),
    }


def all_subjects() -> list[Subject[Any] | RequestSubject[Any, Any]]:
    found = []
    for module in (v1, v2):
        for name in module.__all__:
            value = getattr(module, name)
            if isinstance(value, Subject | RequestSubject):
                found.append(value)
    return found


def test_subject_names_follow_the_convention() -> None:
    names = sorted(subject.name for subject in all_subjects())

    assert names == [
        "catalog.v1.inventory.updated",
        "catalog.v1.product.created",
        "catalog.v1.product.deleted",
        "catalog.v1.product.updated",
        "catalog.v1.review.created",
        "inference.v1.predict",
    ]


def test_every_event_subject_has_sample_data(event_data: dict[str, v1.CatalogEvent]) -> None:
    assert set(event_data) == {s.name for s in v1.CATALOG_EVENT_SUBJECTS}


@pytest.mark.parametrize("subject", v1.CATALOG_EVENT_SUBJECTS, ids=lambda s: s.name)
def test_event_subject_round_trips(
    subject: Subject[Any], event_data: dict[str, v1.CatalogEvent]
) -> None:
    event = v1.new_catalog_event(event_data[subject.name], subject="some-id")
    typed = subject.model.model_validate(event.model_dump())

    decoded = subject.decode(subject.encode(typed))

    assert decoded == typed
    assert decoded.type == subject.name
    assert decoded.source == "/tessera/catalog"


@pytest.mark.parametrize("subject", v1.CATALOG_EVENT_SUBJECTS, ids=lambda s: s.name)
def test_stream_adapter_decodes_every_subject(
    subject: Subject[Any], event_data: dict[str, v1.CatalogEvent]
) -> None:
    data = event_data[subject.name]
    event = v1.new_catalog_event(data)

    decoded = v1.CATALOG_EVENT_ADAPTER.validate_json(subject.encode(event))

    assert type(decoded.data) is type(data)
    assert decoded.data == data
    assert v1.catalog_subject(decoded.data) == subject.name


def test_subject_rejects_another_subjects_payload(review: v1.Review) -> None:
    wrong = v1.new_catalog_event(v1.ReviewCreated(review=review))

    with pytest.raises(ValidationError):
        v1.PRODUCT_CREATED.decode(v1.REVIEW_CREATED.encode(wrong))


def test_stream_covers_every_event_subject() -> None:
    assert all(
        s.name.startswith(v1.CATALOG_SUBJECTS.removesuffix(">")) for s in v1.CATALOG_EVENT_SUBJECTS
    )


def test_new_event_is_typed_for_its_subject(review: v1.Review) -> None:
    # Type-checked too: a CloudEvent[ReviewCreated] is what REVIEW_CREATED.encode takes.
    event = v1.new_catalog_event(v1.ReviewCreated(review=review), subject=str(review.product_id))

    assert v1.REVIEW_CREATED.decode(v1.REVIEW_CREATED.encode(event)) == event
    assert event.subject == str(review.product_id)


def test_new_events_get_unique_ids_and_aware_times(event_data: dict[str, v1.CatalogEvent]) -> None:
    data = event_data[v1.PRODUCT_DELETED.name]

    first, second = v1.new_catalog_event(data), v1.new_catalog_event(data)

    assert first.id != second.id
    assert first.time.utcoffset() is not None


def test_event_headers_deduplicate_by_event_id(event_data: dict[str, v1.CatalogEvent]) -> None:
    event = v1.new_catalog_event(event_data[v1.PRODUCT_DELETED.name])

    assert event_headers(event) == {
        "Nats-Msg-Id": event.id,
        "Content-Type": "application/cloudevents+json",
    }


class TestPredict:
    def test_request_round_trips(self) -> None:
        request = v1.PredictionRequest(features=FEATURES, confidence_threshold=0.7)

        assert v1.PREDICT.decode_request(v1.PREDICT.encode_request(request)) == request

    def test_reply_round_trips(self, prediction: v1.PredictionResponse) -> None:
        assert v1.PREDICT.decode_reply(v1.PREDICT.encode_reply(prediction), {}) == prediction

    def test_problem_reply_raises_remote_problem(self) -> None:
        problem = Problem(
            title="Unprocessable Content",
            status=422,
            errors=[FieldError(loc=["features"], msg="too short", type="too_short")],
        )

        with pytest.raises(RemoteProblem) as caught:
            v1.PREDICT.decode_reply(v1.PREDICT.encode_problem(problem), PROBLEM_HEADERS)

        assert caught.value.problem == problem
        assert "422 Unprocessable Content" in str(caught.value)

    def test_problem_encoding_omits_nulls(self) -> None:
        body = v1.PREDICT.encode_problem(Problem(title="Bad Request", status=400))

        assert body == b'{"type":"about:blank","title":"Bad Request","status":400}'

    def test_invalid_request_becomes_a_problem_with_field_errors(self) -> None:
        with pytest.raises(ValidationError) as caught:
            v1.PREDICT.decode_request(b'{"features": [1, 2]}')

        problem = Problem.from_validation_error(caught.value, status=400, title="Bad Request")

        assert problem.status == 400
        assert problem.errors == [
            FieldError(loc=["features"], msg=caught.value.errors()[0]["msg"], type="too_short")
        ]

    def test_reply_without_headers_is_the_reply_model(
        self, prediction: v1.PredictionResponse
    ) -> None:
        assert v1.PREDICT.decode_reply(v1.PREDICT.encode_reply(prediction)) == prediction


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        (None, False),
        ({}, False),
        ({"Content-Type": "application/json"}, False),
        ({"Content-Type": "application/problem+json"}, True),
        ({"content-type": "Application/Problem+JSON; charset=utf-8"}, True),
    ],
)
def test_is_problem(headers: dict[str, str] | None, expected: bool) -> None:
    assert is_problem(headers) is expected


def test_subject_models_are_contracts() -> None:
    for subject in all_subjects():
        models = (
            [subject.model] if isinstance(subject, Subject) else [subject.request, subject.reply]
        )
        assert all(issubclass(m, BaseModel) and m.model_config.get("frozen") for m in models)
