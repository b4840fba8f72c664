"""Who may talk to whom, computed from the rendered NetworkPolicies."""

from __future__ import annotations

from deploy.tests.manifests import (
    NAMESPACE,
    PROBE_PORT_NAME,
    Manifest,
    app_name,
    main_container,
    of_kind,
    pod_labels,
    workloads,
)
from deploy.tests.monitoring import MONITORED_OVERLAYS, PROMETHEUS
from deploy.tests.netpol import BOTH, Endpoint, Port, edges, ip_block_samples

# What the cluster around us looks like: where DNS and the ingress controller run
# (docs/deploy.md says to change the policies if yours differ), a pod of some
# other team, and an address on the internet.
DNS = Endpoint("dns", (Port(53, "UDP"), Port(53, "TCP")), "kube-system", {"k8s-app": "kube-dns"})
INGRESS_CONTROLLER = Endpoint(
    "ingress-controller", (Port(80), Port(443)), "ingress-nginx",
    {"app.kubernetes.io/name": "ingress-nginx"},
)  # fmt: skip
STRANGER = Endpoint("stranger", (Port(8080),), "default", {"app.kubernetes.io/name": "stranger"})
INTERNET = Endpoint("internet", (Port(443), Port(5432), Port(4222)), ip="203.0.113.7")
# Another pod of Prometheus' namespace (Grafana), which must not scrape.
MONITORING_NEIGHBOUR = Endpoint(
    "grafana", (Port(3000),), "monitoring", {"app.kubernetes.io/name": "grafana"}
)
# A pod added to the namespace later, which no policy names.
NEWCOMER = Endpoint("newcomer", (Port(9000),), NAMESPACE, {"app.kubernetes.io/name": "newcomer"})

POSTGRES_PORT = Port(5432)
NATS_PORT = Port(4222, name="client")

# The whole allowed graph, per port; anything else must be denied.
ALLOWED = {
    ("ingress-controller", "gateway", 8000, "TCP"),
    ("gateway", "catalog", 8001, "TCP"),
    ("gateway", "inference", 8002, "TCP"),
    ("gateway", "nats", 4222, "TCP"),
    ("catalog", "postgres", 5432, "TCP"),
    ("catalog", "nats", 4222, "TCP"),
    ("inference", "nats", 4222, "TCP"),
}
# With the monitoring component: Prometheus scrapes /metrics on each API port.
SCRAPES = {
    ("prometheus", "gateway", 8000, "TCP"),
    ("prometheus", "catalog", 8001, "TCP"),
    ("prometheus", "inference", 8002, "TCP"),
}


def _allowed(overlay: str) -> set[tuple[str, str, int, str]]:
    return ALLOWED | (SCRAPES if overlay in MONITORED_OVERLAYS else set())


def _pods(docs: tuple[Manifest, ...]) -> list[Endpoint]:
    pods = []
    for workload in workloads(docs):
        ports = tuple(
            Port(p["containerPort"], p.get("protocol", "TCP"), p.get("name"))
            for p in main_container(workload)["ports"]
        )
        pods.append(Endpoint(app_name(workload), ports, NAMESPACE, pod_labels(workload)))
    return pods


def _external_data_stores(policies: list[Manifest]) -> list[Endpoint]:
    # Outside the cluster a data store is an address; the policies' ipBlocks are
    # the only addresses anything may reach, and the port says which store it is.
    stores = []
    for address in ip_block_samples(policies):
        stores.append(Endpoint("postgres", (POSTGRES_PORT,), ip=address))
        stores.append(Endpoint("nats", (NATS_PORT,), ip=address))
    return stores


def _graph(
    docs: tuple[Manifest, ...], directions: frozenset[str] = BOTH
) -> set[tuple[str, str, int, str]]:
    policies = of_kind(docs, "NetworkPolicy")
    pods = _pods(docs)
    outside = [DNS, INGRESS_CONTROLLER, PROMETHEUS, MONITORING_NEIGHBOUR, STRANGER, INTERNET]
    allowed = edges(
        policies,
        sources=[*pods, NEWCOMER, *outside],
        targets=[*pods, NEWCOMER, *outside, *_external_data_stores(policies)],
        directions=directions,
    )
    ours = {pod.node for pod in [*pods, NEWCOMER]}
    if directions == frozenset({"Ingress"}):
        # Only our pods' ingress is judged: what reaches an outsider is not ours to say.
        return {edge for edge in allowed if edge[1] in ours}
    if directions == frozenset({"Egress"}):
        return {edge for edge in allowed if edge[0] in ours}
    # Traffic between two outsiders is none of our policies' business.
    return {edge for edge in allowed if edge[0] in ours or edge[1] in ours}


def _dns_edges(docs: tuple[Manifest, ...]) -> set[tuple[str, str, int, str]]:
    pods = [*_pods(docs), NEWCOMER]
    return {(pod.node, "dns", 53, protocol) for pod in pods for protocol in ("UDP", "TCP")}


def test_traffic_follows_exactly_the_allowed_edges(
    docs: tuple[Manifest, ...], overlay: str
) -> None:
    assert _graph(docs) == _allowed(overlay) | _dns_edges(docs)


def test_each_pod_admits_only_its_allowed_sources_by_itself(
    docs: tuple[Manifest, ...], overlay: str
) -> None:
    # Defence in depth: a pod's own ingress policies hold even if a client's
    # egress policy were too loose (a mislabelled or compromised pod).
    ours = {pod.node for pod in _pods(docs)}
    expected = {edge for edge in _allowed(overlay) if edge[1] in ours}

    assert _graph(docs, frozenset({"Ingress"})) == expected


def test_each_pod_reaches_only_its_allowed_targets_by_itself(
    docs: tuple[Manifest, ...], overlay: str
) -> None:
    # And a pod's own egress policies hold even if a server admitted anyone.
    ours = {pod.node for pod in _pods(docs)}
    expected = {edge for edge in _allowed(overlay) if edge[0] in ours} | _dns_edges(docs)

    assert _graph(docs, frozenset({"Egress"})) == expected


def test_probe_ports_admit_no_pod_and_nothing_outside(docs: tuple[Manifest, ...]) -> None:
    # The kubelet probes from the pod's own node, which NetworkPolicies always
    # admit; nothing else has any business on the probe port.
    probe_ports = {
        (app_name(workload), port["containerPort"])
        for workload in workloads(docs)
        for port in main_container(workload)["ports"]
        if port.get("name") == PROBE_PORT_NAME
    }

    assert {name for name, _ in probe_ports} >= {"gateway", "catalog", "inference"}
    assert not [edge for edge in _graph(docs) if (edge[1], edge[2]) in probe_ports]


def test_every_node_of_the_graph_exists(docs: tuple[Manifest, ...]) -> None:
    # Otherwise the graph test above could pass because a workload went missing.
    policies = of_kind(docs, "NetworkPolicy")
    nodes = {pod.node for pod in _pods(docs)} | {s.node for s in _external_data_stores(policies)}

    assert nodes >= {"gateway", "catalog", "inference", "postgres", "nats"}


def test_a_default_deny_policy_covers_every_pod_both_ways(docs: tuple[Manifest, ...]) -> None:
    deny = [
        p for p in of_kind(docs, "NetworkPolicy")
        if p["spec"]["podSelector"] == {}
        and set(p["spec"].get("policyTypes", [])) == {"Ingress", "Egress"}
        and not p["spec"].get("ingress") and not p["spec"].get("egress")
    ]  # fmt: skip

    assert len(deny) == 1
