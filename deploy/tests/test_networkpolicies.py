"""Who may talk to whom, computed from the rendered NetworkPolicies."""

from __future__ import annotations

from deploy.tests.manifests import (
    NAMESPACE,
    Manifest,
    app_name,
    main_container,
    of_kind,
    pod_labels,
    workloads,
)
from deploy.tests.netpol import Endpoint, Port, edges, ip_block_samples

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


def _graph(docs: tuple[Manifest, ...]) -> set[tuple[str, str, int, str]]:
    policies = of_kind(docs, "NetworkPolicy")
    pods = _pods(docs)
    outside = [DNS, INGRESS_CONTROLLER, STRANGER, INTERNET]
    allowed = edges(
        policies,
        sources=[*pods, NEWCOMER, *outside],
        targets=[*pods, NEWCOMER, *outside, *_external_data_stores(policies)],
    )
    # Traffic between two outsiders is none of our policies' business.
    ours = {pod.node for pod in [*pods, NEWCOMER]}
    return {edge for edge in allowed if edge[0] in ours or edge[1] in ours}


def test_traffic_follows_exactly_the_allowed_edges(docs: tuple[Manifest, ...]) -> None:
    pods = _pods(docs)
    dns = {
        (pod.node, "dns", 53, protocol) for pod in [*pods, NEWCOMER] for protocol in ("UDP", "TCP")
    }

    assert _graph(docs) == ALLOWED | dns


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
