"""The PrometheusRule: valid for Prometheus, alerts proven to fire and to stay quiet,
queries of exported metrics only, every alert documented."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from tessera_gateway.app import create_app as create_gateway
from tessera_gateway.settings import Settings as GatewaySettings

from deploy.tests.manifests import named
from deploy.tests.monitoring import (
    DEPLOY_DOCS,
    EXTERNAL_METRICS,
    PROMTOOL_TESTS,
    alerting_rules,
    dashboard,
    github_anchors,
    monitored_docs,
    promtool,
    queries,
    rows,
    rules,
    write_rule_file,
)
from deploy.tests.promql import metric_names

SEVERITIES = {"critical", "warning"}
RUNBOOK_PREFIX = "docs/deploy.md#"


def _promtool(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [promtool(), *map(str, args)], capture_output=True, text=True, timeout=120, check=False
    )


class TestPromtool:
    def test_rules_pass_promtool_check(self, tmp_path: Path) -> None:
        result = _promtool("check", "rules", write_rule_file(monitored_docs(), tmp_path))

        assert result.returncode == 0, result.stdout + result.stderr
        assert f"SUCCESS: {len(rules(monitored_docs()))} rules found" in result.stdout

    def test_alerts_fire_and_stay_quiet_as_the_unit_tests_expect(self, tmp_path: Path) -> None:
        cases = yaml.safe_load(PROMTOOL_TESTS.read_text())
        cases["rule_files"] = [str(write_rule_file(monitored_docs(), tmp_path))]
        test_file = tmp_path / PROMTOOL_TESTS.name
        test_file.write_text(yaml.safe_dump(cases, sort_keys=False))

        result = _promtool("test", "rules", test_file)

        assert result.returncode == 0, result.stdout + result.stderr
        assert "SUCCESS" in result.stdout


def _alert_cases() -> list[dict[str, Any]]:
    cases = yaml.safe_load(PROMTOOL_TESTS.read_text())["tests"]
    return [case for test in cases for case in test.get("alert_rule_test", [])]


def test_every_alert_has_unit_tests_of_it_firing_and_staying_quiet() -> None:
    names = {rule["alert"] for rule in alerting_rules(monitored_docs())}
    cases = _alert_cases()
    fires = {c["alertname"] for c in cases if c.get("exp_alerts")}
    quiet = {c["alertname"] for c in cases if not c.get("exp_alerts")}

    assert fires == names
    assert quiet == names


def test_every_alert_has_a_severity_a_summary_a_description_and_a_runbook() -> None:
    anchors = github_anchors(DEPLOY_DOCS.read_text())
    for rule in alerting_rules(monitored_docs()):
        name = rule["alert"]
        runbook = rule["annotations"]["runbook_url"]

        assert rule["labels"]["severity"] in SEVERITIES, name
        assert rule["annotations"]["summary"].strip(), name
        assert rule["annotations"]["description"].strip(), name
        assert runbook == RUNBOOK_PREFIX + name.lower(), name
        assert runbook.removeprefix(RUNBOOK_PREFIX) in anchors, f"{name}: no heading for {runbook}"


def test_every_recording_rule_is_read_by_an_alert() -> None:
    all_rules = rules(monitored_docs())
    recorded = {rule["record"] for rule in all_rules if "record" in rule}
    read = {n for rule in all_rules if "alert" in rule for n in metric_names(rule["expr"])}

    assert recorded
    assert recorded <= read


async def test_rules_name_only_metrics_the_services_export(
    exported: dict[str, frozenset[str]],
) -> None:
    all_rules = rules(monitored_docs())
    recorded = {rule["record"] for rule in all_rules if "record" in rule}
    known = frozenset.union(*exported.values()) | EXTERNAL_METRICS | recorded
    unknown = {
        rule.get("alert", rule.get("record")): sorted(metric_names(rule["expr"]) - known)
        for rule in all_rules
    }

    assert {name: names for name, names in unknown.items() if names} == {}


@pytest.mark.usefixtures("isolated_logging")
def test_latency_queries_leave_out_the_streaming_operations() -> None:
    # An event stream's duration is how long the client stayed subscribed: it
    # would hold the gateway's p99 at hours. The streams are the operations
    # whose success answer is text/event-stream in the gateway's document.
    document = create_gateway(GatewaySettings()).openapi()
    streams = {
        operation["operationId"]
        for item in document["paths"].values()
        for operation in item.values()
        if any(
            "text/event-stream" in answer.get("content", {})
            for answer in operation["responses"].values()
        )
    }
    rule_exprs = [
        rule["expr"] for rule in rules(monitored_docs())
        if 'service="gateway"' in rule["expr"]
    ]  # fmt: skip
    panel_exprs = [e for panel in rows(dashboard())["Gateway"] for e in queries(panel)]
    latency = [
        e for e in rule_exprs + panel_exprs if "tessera_operation_duration_seconds" in e
    ]  # fmt: skip

    assert streams
    assert latency
    for expr in latency:
        assert all(f'operation!="{stream}"' in expr for stream in streams), expr


def test_namespace_matchers_name_the_namespace_the_rules_are_deployed_in() -> None:
    # kube-state-metrics and `up` cover every namespace; the rules pick ours by
    # name, which kustomize's namespace setting does not rewrite inside PromQL.
    docs = monitored_docs()
    namespace = named(docs, "PrometheusRule", "tessera")["metadata"]["namespace"]
    matched = {m for rule in rules(docs) for m in re.findall(r'namespace="([^"]*)"', rule["expr"])}

    assert matched == {namespace}
