"""The PromQL reader the dashboard and rule checks rely on."""

from __future__ import annotations

import pytest

from deploy.tests.promql import metric_names


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        ("up", {"up"}),
        # Functions, aggregations and their grouping labels are not metrics.
        (
            "histogram_quantile(0.99, sum by (operation, le) (rate(a_bucket[5m])))",
            {"a_bucket"},
        ),
        ("sum(rate(a_total[1h])) without (pod) / on(namespace) group_left b", {"a_total", "b"}),
        # Label names and values, strings and Grafana variables are not either.
        ('a{service="gateway", b=~"c|d"}[$__rate_interval]', {"a"}),
        ('label_replace(a, "dst", "$1", "src", "(.*)")', {"a"}),
        # Recording rules' names, binary keywords and modifiers.
        ("x:y:ratio_rate5m > bool 0.1 and z offset 5m unless w", {"x:y:ratio_rate5m", "z", "w"}),
        ("count(a) > (14.4 * 0.001) or vector(1)", {"a"}),
    ],
)
def test_reads_the_metric_names_of_an_expression(expr: str, names: set[str]) -> None:
    assert metric_names(expr) == names


def test_refuses_a_selector_without_a_metric_name() -> None:
    # Its metrics could be anything: the check could not vouch for them.
    with pytest.raises(ValueError, match="without a metric name"):
        metric_names('{__name__=~"tessera_.*"}')
