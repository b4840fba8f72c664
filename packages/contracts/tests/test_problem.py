"""Problem details and health reports."""

from __future__ import annotations

import pytest
from pydantic import ValidationError
from tessera_contracts import PROBLEM_HEADERS, PROBLEM_MEDIA_TYPE, HealthReport, Problem, v1


def test_media_type_and_reply_headers_agree() -> None:
    assert PROBLEM_MEDIA_TYPE == "application/problem+json"
    assert PROBLEM_HEADERS == {"Content-Type": PROBLEM_MEDIA_TYPE}


def test_type_defaults_to_about_blank() -> None:
    assert Problem(title="Not Found", status=404).type == "about:blank"


@pytest.mark.parametrize("status", [99, 600])
def test_status_must_be_an_http_status(status: int) -> None:
    with pytest.raises(ValidationError):
        Problem(title="x", status=status)


def test_extension_members_of_other_services_are_ignored() -> None:
    problem = Problem.model_validate({"title": "Busy", "status": 429, "retry_after_s": 3})

    assert problem.model_dump(exclude_none=True) == {
        "type": "about:blank",
        "title": "Busy",
        "status": 429,
    }


def test_from_validation_error_locates_every_failure() -> None:
    with pytest.raises(ValidationError) as caught:
        v1.PredictionRequest.model_validate({"features": [-1.0] * 10, "confidence_threshold": 2})

    problem = Problem.from_validation_error(
        caught.value, loc_prefix=("body",), instance="/v1/predict"
    )

    assert problem.status == 422
    assert problem.instance == "/v1/predict"
    assert problem.errors is not None
    assert len(problem.errors) == 11
    assert problem.errors[0].loc == ["body", "features", 0]
    assert problem.errors[-1].loc == ["body", "confidence_threshold"]
    assert problem.detail == "11 validation error(s) for PredictionRequest"


def test_readiness_problem_names_what_is_down() -> None:
    problem = Problem(title="Service Unavailable", status=503, checks={"nats": "timeout"})

    assert Problem.model_validate_json(problem.model_dump_json()).checks == {"nats": "timeout"}


def test_health_report_only_says_ok() -> None:
    report = HealthReport(service="catalog", version="1.0.0")

    assert (report.status, report.checks) == ("ok", {})
    with pytest.raises(ValidationError):
        HealthReport.model_validate({"status": "degraded", "service": "catalog", "version": "1"})
