"""Each overlay renders, is valid Kubernetes, and refers only to objects it contains."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from kubernetes_validate import utils as kubernetes_validate

from deploy.tests import custom_resources
from deploy.tests.manifests import (
    NAMESPACE,
    Manifest,
    containers,
    main_container,
    named,
    of_kind,
    pod_labels,
    pod_spec,
    render,
    resolve_port,
    selector_matches,
    workloads,
)

# The oldest Kubernetes the manifests are meant for (docs/deploy.md): the native
# preStop sleep action and matchLabelKeys in topology spread are on by default there.
MIN_KUBERNETES = (1, 33)


def _minor(version: str) -> tuple[int, int]:
    major, minor = version.split(".")[:2]
    return int(major), int(minor)


def validated_versions() -> list[str]:
    """The oldest Kubernetes we support and the newest kubernetes-validate knows.

    The versions in between add little (schemas only grow) and each costs seconds.
    """
    newest = max(_minor(v) for v in kubernetes_validate.all_versions())
    return [f"{major}.{minor}" for major, minor in sorted({MIN_KUBERNETES, newest})]


CLUSTER_SCOPED = {
    "Namespace",
    "ClusterRole",
    "ClusterRoleBinding",
    "PersistentVolume",
    "StorageClass",
}


def test_versions_to_validate_reach_a_current_kubernetes() -> None:
    versions = validated_versions()

    # kubernetes-validate ships schemas up to the Kubernetes of its own version;
    # an upgrade of it moves this test to the newer Kubernetes by itself.
    assert versions[-1] == ".".join(kubernetes_validate.latest_version().split(".")[:2])
    assert _minor(versions[0]) == MIN_KUBERNETES
    # The floor must be a version the installed schemas cover.
    assert any(_minor(v) == MIN_KUBERNETES for v in kubernetes_validate.all_versions())


@pytest.mark.parametrize("version", validated_versions())
def test_overlay_passes_strict_schema_validation(docs: tuple[Manifest, ...], version: str) -> None:
    problems = []
    for doc in docs:
        where = f"{doc['kind']}/{doc['metadata']['name']}"
        if custom_resources.is_custom(doc):
            continue  # against its CRD: test_custom_resources_pass_strict_schema_validation
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as error:
            path = ".".join(str(part) for part in error.path)
            problems.append(f"{where}: {path}: {error.message}")
        except (
            kubernetes_validate.SchemaNotFoundError,
            kubernetes_validate.InvalidSchemaError,
        ) as error:
            # The CLI only warns about an unknown kind; here it is a failure.
            problems.append(f"{where}: {error.message}")

    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("version", validated_versions())
def test_custom_resources_pass_strict_schema_validation(
    docs: tuple[Manifest, ...], version: str
) -> None:
    problems = [
        f"{doc['kind']}/{doc['metadata']['name']}: {problem}"
        for doc in docs
        if custom_resources.is_custom(doc)
        for problem in custom_resources.problems(doc, version)
    ]

    assert not problems, "\n".join(problems)


def _rejected(doc: Manifest) -> list[str]:
    return custom_resources.problems(doc, kubernetes_validate.latest_version())


def test_custom_resource_validation_rejects_what_the_api_server_would() -> None:
    # The strict CRD check must be able to fail: an unknown field, a value outside
    # an enum, a missing required field, and metadata that is not ObjectMeta.
    docs = render("prod")
    monitor = named(docs, "ServiceMonitor", "tessera")
    rule = named(docs, "PrometheusRule", "tessera")
    unknown = copy.deepcopy(monitor)
    unknown["spec"]["endpoints"][0]["metricsPath"] = "/metrics"
    bad_enum = copy.deepcopy(monitor)
    bad_enum["spec"]["endpoints"][0]["scheme"] = "ftp"
    unnamed = copy.deepcopy(rule)
    del unnamed["spec"]["groups"][0]["name"]
    bad_metadata = copy.deepcopy(rule)
    bad_metadata["metadata"]["labels"] = {"tier": ["not", "a", "string"]}

    assert not _rejected(monitor)
    assert not _rejected(rule)
    assert any("metricsPath" in p for p in _rejected(unknown))
    assert any("ftp" in p for p in _rejected(bad_enum))
    assert any("'name' is a required property" in p for p in _rejected(unnamed))
    assert any(p.startswith("metadata.labels.tier") for p in _rejected(bad_metadata))


def test_vendored_crds_are_the_documented_release() -> None:
    kinds = custom_resources.custom_kinds()

    assert set(kinds) == {
        ("monitoring.coreos.com/v1", "ServiceMonitor"),
        ("monitoring.coreos.com/v1", "PrometheusRule"),
    }
    assert {kind.operator_version for kind in kinds.values()} == {
        custom_resources.PROMETHEUS_OPERATOR_VERSION
    }


def test_rendering_is_deterministic(overlay: str) -> None:
    # Generated names carry a content hash: the same inputs must give the same names,
    # or every apply would roll every pod.
    render.cache_clear()
    first = render(overlay)
    render.cache_clear()
    second = render(overlay)

    assert first == second


def test_objects_live_in_the_tessera_namespace(docs: tuple[Manifest, ...]) -> None:
    misplaced = [
        f"{d['kind']}/{d['metadata']['name']}: {d['metadata'].get('namespace')}"
        for d in docs
        if d["kind"] not in CLUSTER_SCOPED and d["metadata"].get("namespace") != NAMESPACE
    ]

    assert not misplaced
    assert [d["metadata"]["name"] for d in of_kind(docs, "Namespace")] == [NAMESPACE]


def test_namespace_enforces_the_restricted_pod_security_standard(
    docs: tuple[Manifest, ...],
) -> None:
    labels = named(docs, "Namespace", NAMESPACE)["metadata"]["labels"]

    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"


def test_every_object_carries_the_common_labels(docs: tuple[Manifest, ...]) -> None:
    for doc in docs:
        labels = doc["metadata"].get("labels", {})
        assert labels.get("app.kubernetes.io/part-of") == "tessera", doc["metadata"]["name"]
        assert labels.get("app.kubernetes.io/managed-by") == "kustomize", doc["metadata"]["name"]


def test_workloads_are_labelled_by_name_and_component(docs: tuple[Manifest, ...]) -> None:
    for workload in workloads(docs):
        name = workload["metadata"]["name"]
        labels = pod_labels(workload)
        assert labels["app.kubernetes.io/name"] == name
        assert labels["app.kubernetes.io/component"]
        assert labels["app.kubernetes.io/part-of"] == "tessera"
        assert selector_matches(workload["spec"]["selector"], labels)


def _exists(docs: tuple[Manifest, ...], kind: str, name: str) -> bool:
    return any(d["kind"] == kind and d["metadata"]["name"] == name for d in docs)


def test_configmaps_and_secrets_that_pods_use_exist(docs: tuple[Manifest, ...]) -> None:
    missing = []
    for workload in workloads(docs):
        for container in containers(workload):
            for entry in container.get("envFrom", []):
                for key, kind in (("configMapRef", "ConfigMap"), ("secretRef", "Secret")):
                    if key in entry and not _exists(docs, kind, entry[key]["name"]):
                        missing.append(f"{container['name']}: {kind} {entry[key]['name']}")
            for entry in container.get("env", []):
                source: dict[str, Any] = entry.get("valueFrom", {})
                for key, kind in (("configMapKeyRef", "ConfigMap"), ("secretKeyRef", "Secret")):
                    if key in source and not _exists(docs, kind, source[key]["name"]):
                        missing.append(f"{container['name']}: {kind} {source[key]['name']}")
        for volume in pod_spec(workload).get("volumes", []):
            if "configMap" in volume and not _exists(
                docs, "ConfigMap", volume["configMap"]["name"]
            ):
                missing.append(
                    f"{workload['metadata']['name']}: ConfigMap {volume['configMap']['name']}"
                )
            if "secret" in volume and not _exists(docs, "Secret", volume["secret"]["secretName"]):
                missing.append(
                    f"{workload['metadata']['name']}: Secret {volume['secret']['secretName']}"
                )

    assert not missing


def test_volume_mounts_name_declared_volumes(docs: tuple[Manifest, ...]) -> None:
    for workload in workloads(docs):
        declared = {v["name"] for v in pod_spec(workload).get("volumes", [])}
        declared |= {
            t["metadata"]["name"] for t in workload["spec"].get("volumeClaimTemplates", [])
        }
        for container in containers(workload):
            for mount in container.get("volumeMounts", []):
                assert mount["name"] in declared, f"{container['name']}: {mount['name']}"


def test_each_service_object_selects_one_workload_and_its_ports(docs: tuple[Manifest, ...]) -> None:
    for service in of_kind(docs, "Service"):
        selected = [
            w
            for w in workloads(docs)
            if selector_matches({"matchLabels": service["spec"]["selector"]}, pod_labels(w))
        ]
        assert len(selected) == 1, (
            f"Service {service['metadata']['name']} selects {len(selected)} workloads"
        )
        container = main_container(selected[0])
        declared = {p["containerPort"] for p in container["ports"]}
        for port in service["spec"]["ports"]:
            assert resolve_port(container, port.get("targetPort", port["port"])) in declared


def test_statefulsets_have_their_governing_headless_service(docs: tuple[Manifest, ...]) -> None:
    for statefulset in of_kind(docs, "StatefulSet"):
        service = named(docs, "Service", statefulset["spec"]["serviceName"])

        assert service["spec"].get("clusterIP") == "None"
        assert selector_matches(
            {"matchLabels": service["spec"]["selector"]}, pod_labels(statefulset)
        )
