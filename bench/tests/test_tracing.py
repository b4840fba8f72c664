"""The tracing scenario's helpers: the configurations it gives the services, and the
span counts that tell a working tracer from a silent one."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from tessera_runtime import tracing
from tessera_stack.otlp_receiver import ReceivedSpan, otlp_receiver

from bench.scenarios.tracing import Checks, plausible_spans, server_spans, tracing_env


def _span(
    service: str, name: str, *, kind: str = "server", parent: str | None = None
) -> ReceivedSpan:
    return ReceivedSpan(
        service=service,
        name=name,
        kind=kind,
        trace_id="1" * 32,
        span_id="2" * 16,
        parent_span_id=parent,
        start_ns=0,
        end_ns=1,
        status="unset",
    )


@pytest.fixture
def untraced_afterwards() -> Iterator[None]:
    yield
    tracing.configure_tracing("catalog", "bench", {})


class TestConfigurations:
    def test_off_sets_no_variable_and_the_runtime_stays_off(
        self, untraced_afterwards: None
    ) -> None:
        env = tracing_env(None, "http://127.0.0.1:4318")

        assert env == {}
        assert tracing.configure_tracing("catalog", "bench", env) is False
        assert tracing.tracer() is None

    def test_one_percent_samples_about_one_percent_and_exports_them(
        self, untraced_afterwards: None
    ) -> None:
        requests = 5_000
        with otlp_receiver() as receiver:
            assert tracing.configure_tracing(
                "catalog", "bench", tracing_env(0.01, receiver.endpoint)
            )
            tracer = tracing.tracer()
            assert tracer is not None
            sampled = 0
            for _ in range(requests):
                # As the request middleware does: None for a request left unsampled.
                span = tracing.start_server_span(tracer, "GET", "/x", None, None)
                if span is not None:
                    sampled += 1
                    span.end("/x", 200)
            # Shutting the tracer down exports what its batch processor still holds.
            tracing.configure_tracing("catalog", "bench", {})
            roots, children = server_spans(receiver.spans, "catalog", "GET /x")

        low, high = plausible_spans(requests, 0, 0.01)
        assert low <= sampled <= high
        assert (roots, children) == (sampled, 0)


class TestPlausibleSpans:
    def test_every_request_sampled_allows_only_the_uncounted_ones_more(self) -> None:
        assert plausible_spans(1_000, 64, 1.0) == (1_000, 1_064)

    def test_a_silent_tracer_or_another_ratio_is_out_of_range(self) -> None:
        low, high = plausible_spans(100_000, 384, 0.01)

        assert 0 < low < 1_000 < high
        assert not low <= 0 <= high
        assert not low <= 5_000 <= high  # 5 % sampled instead of 1 %

    def test_few_requests_at_one_percent_may_have_no_span(self) -> None:
        assert plausible_spans(100, 1, 0.01)[0] == 0


def test_server_spans_counts_roots_and_children_of_one_service_and_name() -> None:
    spans = [
        _span("catalog", "GET /v1/products/{product_id}"),
        _span("catalog", "GET /v1/products/{product_id}"),
        _span("catalog", "GET /v1/products/{product_id}", parent="3" * 16),
        _span("catalog", "GET /v1/products/{product_id}", kind="client"),
        _span("gateway", "GET /v1/products/{product_id}"),
        _span("catalog", "GET /v1/products/{product_id}/enriched"),
    ]

    assert server_spans(spans, "catalog", "GET /v1/products/{product_id}") == (2, 1)


class TestChecks:
    def test_a_ratio_over_its_target_fails_and_off_has_none(self) -> None:
        checks = Checks()

        assert checks.target("off", 1.0, "gateway CPU") == ""
        assert checks.target("1 %", 1.02, "gateway CPU") == "yes"
        assert checks.target("100 %", 1.2, "gateway CPU") == "**no**"
        assert checks.failed == ["gateway CPU, 100 %: 1.200x off"]

    def test_implausible_span_counts_fail(self) -> None:
        checks = Checks()

        assert checks.spans("catalog, 100 %", 1_010, 1_000, 64, 1.0).endswith(": yes")
        assert checks.spans("catalog, 1 %", 0, 100_000, 64, 0.01).endswith(": **no**")
        assert checks.failed == ["catalog, 1 %: 0 spans for 100,000"]
