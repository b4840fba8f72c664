"""What the monitoring tests read: the component's rules and dashboard, and promtool."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from deploy.tests.manifests import K8S_DIR, REPO_ROOT, Manifest, named, render
from deploy.tests.netpol import Endpoint, Port

COMPONENT_DIR = K8S_DIR / "components" / "monitoring"
DASHBOARD_FILE = COMPONENT_DIR / "dashboards" / "tessera.json"
DASHBOARD_CONFIGMAP = "grafana-dashboard-tessera"
PROMTOOL_TESTS = Path(__file__).resolve().parent / "promtool" / "alerts_test.yaml"
DEPLOY_DOCS = REPO_ROOT / "docs" / "deploy.md"

# The overlays that include deploy/k8s/components/monitoring (docs/deploy.md).
MONITORED_OVERLAYS = ("prod",)

# Prometheus as prometheus-operator labels its pods, in the namespace the
# component's NetworkPolicy admits (docs/deploy.md, "Monitoring").
PROMETHEUS = Endpoint(
    "prometheus", (Port(9090),), "monitoring", {"app.kubernetes.io/name": "prometheus"}
)

# Series that no Tessera service exports and queries may still name: Prometheus'
# own per-target `up`, and kube-state-metrics' Deployment replica counts.
EXTERNAL_METRICS = frozenset(
    {"up", "kube_deployment_spec_replicas", "kube_deployment_status_replicas_available"}
)

# Row title of each service in the dashboard.
ROW_TITLES = {"gateway": "Gateway", "catalog": "Catalog", "inference": "Inference"}


def monitored_docs() -> tuple[Manifest, ...]:
    """The rendered objects of an overlay with the monitoring component."""
    return render(MONITORED_OVERLAYS[0])


def rule_groups(docs: tuple[Manifest, ...]) -> list[dict[str, Any]]:
    groups: list[dict[str, Any]] = named(docs, "PrometheusRule", "tessera")["spec"]["groups"]
    return groups


def rules(docs: tuple[Manifest, ...]) -> list[dict[str, Any]]:
    return [rule for group in rule_groups(docs) for rule in group["rules"]]


def alerting_rules(docs: tuple[Manifest, ...]) -> list[dict[str, Any]]:
    return [rule for rule in rules(docs) if "alert" in rule]


def write_rule_file(docs: tuple[Manifest, ...], directory: Path) -> Path:
    """The PrometheusRule's groups as a Prometheus rule file, as the operator writes it."""
    path = directory / "tessera.rules.yaml"
    path.write_text(yaml.safe_dump({"groups": rule_groups(docs)}, sort_keys=False))
    return path


def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD_FILE.read_text())
    return loaded


def rows(board: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """Row title -> the panels under it (a row's panels follow it until the next row)."""
    found: dict[str, list[dict[str, Any]]] = {}
    current: list[dict[str, Any]] | None = None
    for panel in board["panels"]:
        if panel["type"] == "row":
            assert panel["title"] not in found, f"two rows titled {panel['title']}"
            current = found[panel["title"]] = list(panel.get("panels", []))
        else:
            assert current is not None, f"panel {panel['title']!r} above the first row"
            current.append(panel)
    return found


def queries(panel: dict[str, Any]) -> list[str]:
    return [str(target["expr"]) for target in panel.get("targets", [])]


_LABEL_VALUES = re.compile(r"^label_values\((?P<selector>.+),\s*\w+\)$")


def variable_queries(board: dict[str, Any]) -> list[str]:
    """The PromQL inside the dashboard's query variables (`label_values(<selector>, label)`)."""
    found = []
    for variable in board["templating"]["list"]:
        if variable["type"] != "query":
            continue
        query = variable["query"]
        text = query["query"] if isinstance(query, dict) else query
        match = _LABEL_VALUES.match(text)
        assert match, f"variable {variable['name']}: not a label_values() query: {text}"
        found.append(match["selector"])
    return found


def github_anchors(markdown: str) -> set[str]:
    """The anchors GitHub gives the headings of `markdown`."""
    anchors = set()
    for line in markdown.splitlines():
        if line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            anchors.add(re.sub(r"[^\w\- ]", "", title).replace(" ", "-"))
    return anchors


def promtool() -> str:
    """promtool's path. Missing: a failure where TESSERA_REQUIRE_PROMTOOL is set (.ci/run
    sets it after installing it), a skip that names the package elsewhere."""
    path = shutil.which("promtool")
    if path is not None:
        return path
    if os.environ.get("TESSERA_REQUIRE_PROMTOOL"):
        pytest.fail("promtool is not on PATH and TESSERA_REQUIRE_PROMTOOL is set")
    pytest.skip("promtool is not on PATH: install Debian's `prometheus` package")
