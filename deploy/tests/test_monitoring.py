"""The monitoring component: who includes it, what Prometheus scrapes, the dashboard."""

from __future__ import annotations

from typing import Any

from deploy.tests.manifests import (
    NAMESPACE,
    SERVICE_PORTS,
    SERVICES,
    Manifest,
    main_container,
    named,
    of_kind,
    pod_labels,
    resolve_port,
    selector_matches,
    service_deployment,
)
from deploy.tests.monitoring import (
    DASHBOARD_CONFIGMAP,
    DASHBOARD_FILE,
    EXTERNAL_METRICS,
    MONITORED_OVERLAYS,
    PROMETHEUS,
    ROW_TITLES,
    dashboard,
    monitored_docs,
    queries,
    rows,
    variable_queries,
)
from deploy.tests.netpol import Endpoint, Port, allowed
from deploy.tests.promql import metric_names

# kubectl apply (client-side) keeps the whole object in an annotation, and the
# annotations of one object may total 256 KiB.
MAX_APPLIED_BYTES = 256 * 1024
METRICS_PATH = "/metrics"


def _monitoring_objects(docs: tuple[Manifest, ...]) -> set[tuple[str, str]]:
    wanted = {"ServiceMonitor", "PrometheusRule"}
    found = {(d["kind"], d["metadata"]["name"]) for d in docs if d["kind"] in wanted}
    found |= {
        ("ConfigMap", d["metadata"]["name"])
        for d in of_kind(docs, "ConfigMap")
        if d["metadata"].get("labels", {}).get("grafana_dashboard") == "1"
    }
    found |= {
        ("NetworkPolicy", d["metadata"]["name"])
        for d in of_kind(docs, "NetworkPolicy")
        if d["metadata"]["name"] == "prometheus-scrape"
    }
    return found


def test_only_the_documented_overlays_include_the_monitoring_component(
    docs: tuple[Manifest, ...], overlay: str
) -> None:
    # Its custom kinds fail to apply on a cluster without prometheus-operator.
    expected = {
        ("ServiceMonitor", "tessera"),
        ("PrometheusRule", "tessera"),
        ("ConfigMap", DASHBOARD_CONFIGMAP),
        ("NetworkPolicy", "prometheus-scrape"),
    }

    assert _monitoring_objects(docs) == (expected if overlay in MONITORED_OVERLAYS else set())


class TestScraping:
    def test_service_monitor_selects_exactly_the_three_services(self) -> None:
        docs = monitored_docs()
        monitor = named(docs, "ServiceMonitor", "tessera")
        # No namespaceSelector: Services of the ServiceMonitor's own namespace only.
        assert "namespaceSelector" not in monitor["spec"]
        assert monitor["metadata"]["namespace"] == NAMESPACE
        selected = {
            s["metadata"]["name"]
            for s in of_kind(docs, "Service")
            if selector_matches(monitor["spec"]["selector"], s["metadata"].get("labels", {}))
        }

        assert selected == set(SERVICES)

    def test_each_target_is_the_metrics_path_on_the_api_port(self) -> None:
        docs = monitored_docs()
        (endpoint,) = named(docs, "ServiceMonitor", "tessera")["spec"]["endpoints"]

        for service in SERVICES:
            assert _scraped_port(docs, service)["containerPort"] == SERVICE_PORTS[service]
        # test_apps checks each app serves it there.
        assert endpoint["path"] == METRICS_PATH

    def test_the_network_policies_let_prometheus_reach_every_target(self) -> None:
        docs = monitored_docs()
        policies = of_kind(docs, "NetworkPolicy")
        for service in SERVICES:
            pod = Endpoint(service, (), NAMESPACE, pod_labels(service_deployment(docs, service)))
            declared = _scraped_port(docs, service)
            port = Port(declared["containerPort"], declared["protocol"], declared["name"])

            # What else Prometheus may not reach: test_networkpolicies' graph.
            assert allowed(policies, PROMETHEUS, pod, port), service


def _scraped_port(docs: tuple[Manifest, ...], service: str) -> dict[str, Any]:
    """The container port Prometheus connects to: the ServiceMonitor names a port of
    the Service, whose targetPort is a port of the service's container."""
    (endpoint,) = named(docs, "ServiceMonitor", "tessera")["spec"]["endpoints"]
    (port,) = [
        p for p in named(docs, "Service", service)["spec"]["ports"] if p["name"] == endpoint["port"]
    ]
    container = main_container(service_deployment(docs, service))
    number = resolve_port(container, port["targetPort"])
    declared: list[dict[str, Any]] = [p for p in container["ports"] if p["containerPort"] == number]
    assert len(declared) == 1, f"{service}: port {number} declared {len(declared)} times"
    return declared[0]


class TestDashboard:
    def test_the_configmap_holds_the_dashboard_file_for_the_grafana_sidecar(self) -> None:
        configmap = named(monitored_docs(), "ConfigMap", DASHBOARD_CONFIGMAP)

        assert configmap["metadata"]["labels"]["grafana_dashboard"] == "1"
        assert configmap["data"] == {DASHBOARD_FILE.name: DASHBOARD_FILE.read_text()}
        assert len(DASHBOARD_FILE.read_bytes()) < MAX_APPLIED_BYTES

    def test_one_row_per_service_in_request_order(self) -> None:
        assert list(rows(dashboard())) == [ROW_TITLES[s] for s in SERVICES]

    def test_every_panel_queries_prometheus_with_a_unique_id(self) -> None:
        board = dashboard()
        panels = [p for panels in rows(board).values() for p in panels]
        ids = [p["id"] for p in board["panels"]] + [
            p["id"] for row in board["panels"] for p in row.get("panels", [])
        ]

        assert len(ids) == len(set(ids))
        for panel in panels:
            refs = [t["refId"] for t in panel["targets"]]
            assert refs, panel["title"]
            assert len(refs) == len(set(refs)), panel["title"]
            assert all(queries(panel)), panel["title"]
            assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}

    def test_each_row_has_rate_errors_and_p50_p99_latency_per_operation(self) -> None:
        for service, title in ROW_TITLES.items():
            exprs = [e for panel in rows(dashboard())[title] for e in queries(panel)]
            red = [
                e for e in exprs if any(n.startswith("tessera_operation_") for n in metric_names(e))
            ]
            named_metrics = {n for e in red for n in metric_names(e)}
            latency = [e for e in red if "tessera_operation_duration_seconds_bucket" in e]

            assert named_metrics == {
                "tessera_operation_requests_total",
                "tessera_operation_errors_total",
                "tessera_operation_duration_seconds_bucket",
            }, service
            # Each row shows its own service only.
            assert all(f'service="{service}"' in e for e in red), service
            assert any("histogram_quantile(0.5," in e for e in latency), service
            assert any("histogram_quantile(0.99," in e for e in latency), service
            assert all("by (operation, le)" in e for e in latency), service

    def test_each_row_shows_the_services_own_internals(self) -> None:
        wanted = {
            "gateway": {
                "gateway_circuit_open",
                "gateway_upstream_failures_total",
                "gateway_upstream_retries_total",
            },
            "catalog": {
                "catalog_db_pool_in_use",
                "catalog_db_pool_max",
                "catalog_outbox_pending",
                "catalog_outbox_lag_seconds",
            },
            "inference": {
                "inference_queue_duration_seconds_bucket",
                "inference_batch_size_bucket",
                "inference_count_total",
                "inference_execution_count_total",
            },
        }
        for service, title in ROW_TITLES.items():
            shown = {
                n
                for panel in rows(dashboard())[title]
                for e in queries(panel)
                for n in metric_names(e)
            }

            assert wanted[service] <= shown, service

    async def test_each_row_names_only_metrics_its_service_exports(
        self, exported: dict[str, frozenset[str]]
    ) -> None:
        board = dashboard()
        unknown = {}
        for service, title in ROW_TITLES.items():
            named_here = {
                n for panel in rows(board)[title] for e in queries(panel) for n in metric_names(e)
            }
            unknown[service] = sorted(named_here - exported[service] - EXTERNAL_METRICS)
        every_service = frozenset.intersection(*exported.values())
        variables = {n for q in variable_queries(board) for n in metric_names(q)}

        assert unknown == {service: [] for service in ROW_TITLES}
        # The namespace picker lists the namespaces of any service.
        assert variables
        assert variables <= every_service
