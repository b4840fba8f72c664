"""NetworkPolicy semantics, enough to compute who may connect to whom.

A connection from A to B on a port is allowed when A's egress allows it and B's
ingress allows it. A pod no policy selects for a direction is open in that
direction; once any policy selects it, only what some rule of those policies
allows gets through. Peers outside the cluster are matched by ipBlock only.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from deploy.tests.manifests import selector_matches

Policy = Mapping[str, Any]


@dataclass(frozen=True)
class Port:
    number: int
    protocol: str = "TCP"
    name: str | None = None


@dataclass(frozen=True)
class Endpoint:
    """A pod (namespace set) or an address outside the cluster (ip set)."""

    node: str
    """The name of the graph node it stands for (gateway, nats, dns, ...)."""
    ports: tuple[Port, ...]
    namespace: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    ip: str | None = None


def _namespace_labels(namespace: str) -> dict[str, str]:
    # Set by the API server on every namespace since Kubernetes 1.22.
    return {"kubernetes.io/metadata.name": namespace}


def _policy_types(policy: Policy) -> set[str]:
    spec = policy["spec"]
    if "policyTypes" in spec:
        return set(spec["policyTypes"])
    return {"Ingress"} | ({"Egress"} if "egress" in spec else set())


def _selects(policy: Policy, endpoint: Endpoint) -> bool:
    return endpoint.namespace == policy["metadata"]["namespace"] and selector_matches(
        policy["spec"]["podSelector"], endpoint.labels
    )


def _peer_matches(peer: Mapping[str, Any], policy_namespace: str, other: Endpoint) -> bool:
    if "ipBlock" in peer:
        if other.ip is None:
            return False
        address = ipaddress.ip_address(other.ip)
        block = peer["ipBlock"]
        if address not in ipaddress.ip_network(block["cidr"]):
            return False
        return not any(address in ipaddress.ip_network(e) for e in block.get("except", []))
    if other.namespace is None:
        return False
    if "namespaceSelector" in peer:
        namespace_ok = selector_matches(
            peer["namespaceSelector"], _namespace_labels(other.namespace)
        )
    else:
        namespace_ok = other.namespace == policy_namespace
    pod_ok = "podSelector" not in peer or selector_matches(peer["podSelector"], other.labels)
    return namespace_ok and pod_ok


def _port_matches(rule_ports: Sequence[Mapping[str, Any]] | None, port: Port) -> bool:
    if not rule_ports:
        return True
    for rule_port in rule_ports:
        if rule_port.get("protocol", "TCP") != port.protocol:
            continue
        wanted = rule_port.get("port")
        if (
            wanted is None
            or wanted == port.number
            or (port.name is not None and wanted == port.name)
        ):
            return True
        end = rule_port.get("endPort")
        if isinstance(wanted, int) and end is not None and wanted <= port.number <= end:
            return True
    return False


def _direction_allows(
    policies: Iterable[Policy], subject: Endpoint, other: Endpoint, port: Port, direction: str
) -> bool:
    if subject.namespace is None:
        return True  # outside the cluster: no policy of ours applies
    selecting = [p for p in policies if direction in _policy_types(p) and _selects(p, subject)]
    if not selecting:
        return True
    rules_key, peers_key = ("ingress", "from") if direction == "Ingress" else ("egress", "to")
    for policy in selecting:
        for rule in policy["spec"].get(rules_key) or []:
            peers = rule.get(peers_key)
            peer_ok = not peers or any(
                _peer_matches(peer, policy["metadata"]["namespace"], other) for peer in peers
            )
            if peer_ok and _port_matches(rule.get("ports"), port):
                return True
    return False


BOTH = frozenset({"Ingress", "Egress"})


def allowed(
    policies: Sequence[Policy],
    source: Endpoint,
    target: Endpoint,
    port: Port,
    directions: frozenset[str] = BOTH,
) -> bool:
    """Whether `source` may open a connection to `target` on `port`.

    With `directions` = {"Ingress"} only the target's policies count (the source
    is taken as unrestricted), with {"Egress"} only the source's.
    """
    egress_ok = "Egress" not in directions or _direction_allows(
        policies, source, target, port, "Egress"
    )
    ingress_ok = "Ingress" not in directions or _direction_allows(
        policies, target, source, port, "Ingress"
    )
    return egress_ok and ingress_ok


def edges(
    policies: Sequence[Policy],
    sources: Iterable[Endpoint],
    targets: Iterable[Endpoint],
    directions: frozenset[str] = BOTH,
) -> set[tuple[str, str, int, str]]:
    """Every allowed (source node, target node, port, protocol) between different nodes."""
    targets = list(targets)
    found = set()
    for source in sources:
        for target in targets:
            if source.node == target.node:
                continue
            for port in target.ports:
                if allowed(policies, source, target, port, directions):
                    found.add((source.node, target.node, port.number, port.protocol))
    return found


def ip_block_samples(policies: Iterable[Policy]) -> list[str]:
    """One address inside each ipBlock of the policies (outside its exceptions)."""
    samples = []
    for policy in policies:
        for rules_key, peers_key in (("ingress", "from"), ("egress", "to")):
            for rule in policy["spec"].get(rules_key) or []:
                for peer in rule.get(peers_key) or []:
                    if "ipBlock" not in peer:
                        continue
                    block = peer["ipBlock"]
                    network = ipaddress.ip_network(block["cidr"])
                    excluded = [ipaddress.ip_network(e) for e in block.get("except", [])]
                    for address in network.hosts():
                        if not any(address in e for e in excluded):
                            samples.append(str(address))
                            break
    return sorted(set(samples))
