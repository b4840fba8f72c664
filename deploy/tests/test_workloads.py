"""The operational rules every workload of every overlay must follow."""

from __future__ import annotations

import re
from pathlib import PurePosixPath
from typing import Any

from deploy.tests.dockerfile import Dockerfile
from deploy.tests.manifests import (
    IMAGE_REPOSITORY,
    OVERLAYS,
    PROBE_PORT_NAME,
    REPO_ROOT,
    SERVICE_PORTS,
    SERVICES,
    Manifest,
    containers,
    environment,
    iter_probes,
    main_container,
    named,
    of_kind,
    pod_labels,
    pod_spec,
    render,
    resolve_port,
    selector_matches,
    service_deployment,
    workloads,
)
from deploy.tests.service_settings import setting_value, settings_class

# After uvicorn stops waiting for open requests, the lifespan shutdown still
# closes NATS (draining subscriptions) and database pools.
LIFESPAN_SHUTDOWN_ALLOWANCE_S = 10
# Endpoint removal reaches kube-proxy and the ingress controller within seconds.
MIN_PRESTOP_SLEEP_S = 5

_QUANTITY = re.compile(r"^(?P<number>[0-9.]+)(?P<suffix>m|k|M|G|T|Ki|Mi|Gi|Ti)?$")
_FACTORS = {
    None: 1.0, "m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12,
    "Ki": 2.0**10, "Mi": 2.0**20, "Gi": 2.0**30, "Ti": 2.0**40,
}  # fmt: skip


def quantity(value: str | int | float) -> float:
    match = _QUANTITY.match(str(value))
    assert match, f"not a Kubernetes quantity: {value!r}"
    return float(match["number"]) * _FACTORS[match["suffix"]]


def _effective(pod: dict[str, Any], container: dict[str, Any], key: str) -> Any:
    # A container's securityContext field overrides the pod's.
    container_context = container.get("securityContext", {})
    if key in container_context:
        return container_context[key]
    return pod.get("securityContext", {}).get(key)


def _path(probe: dict[str, Any]) -> str:
    path: str = probe["httpGet"]["path"]
    return path


class TestProbes:
    def test_probes_call_the_health_endpoints_on_the_probe_port(
        self, deployment: Manifest, service: str
    ) -> None:
        container = main_container(deployment)
        probes = dict(iter_probes(container))
        probe_port = resolve_port(container, PROBE_PORT_NAME)

        assert _path(probes["startupProbe"]) == "/healthz"
        assert _path(probes["livenessProbe"]) == "/healthz"
        assert _path(probes["readinessProbe"]) == "/readyz"
        # Not the API port: a saturated event loop or accept queue there would
        # starve the probes and get a busy pod restarted (issue 9, defect 10).
        for probe in probes.values():
            assert resolve_port(container, probe["httpGet"]["port"]) == probe_port
        assert probe_port != SERVICE_PORTS[service]
        assert [p["containerPort"] for p in container["ports"]] == [
            SERVICE_PORTS[service],
            probe_port,
        ]

    def test_the_service_listens_for_probes_where_the_probes_go(
        self, docs: tuple[Manifest, ...], deployment: Manifest, service: str
    ) -> None:
        container = main_container(deployment)
        env = environment(docs, container)

        # The field the server reads (ServerSettings.probe_port, with the service's
        # prefix); test_settings checks that the name is a setting of the service.
        assert int(env[f"{service.upper()}_PROBE_PORT"]) == resolve_port(container, PROBE_PORT_NAME)

    def test_every_serving_container_has_startup_liveness_and_readiness_probes(
        self, docs: tuple[Manifest, ...]
    ) -> None:
        for workload in workloads(docs):
            for container in pod_spec(workload)["containers"]:
                kinds = {kind for kind, _ in iter_probes(container)}
                expected = {"startupProbe", "livenessProbe", "readinessProbe"}
                assert kinds == expected, container["name"]

    def test_startup_probe_gives_startup_time_before_liveness_applies(
        self, docs: tuple[Manifest, ...]
    ) -> None:
        for workload in workloads(docs):
            for container in pod_spec(workload)["containers"]:
                startup = container["startupProbe"]
                budget = startup.get("periodSeconds", 10) * startup.get("failureThreshold", 3)
                assert budget >= 30, f"{container['name']}: {budget}s to start"


class TestSecurity:
    def test_every_container_runs_as_non_root_without_privileges(
        self, docs: tuple[Manifest, ...]
    ) -> None:
        for workload in workloads(docs):
            pod = pod_spec(workload)
            for container in containers(workload):
                name = f"{workload['metadata']['name']}/{container['name']}"
                assert _effective(pod, container, "runAsNonRoot") is True, name
                assert _effective(pod, container, "runAsUser") not in (None, 0), name
                assert _effective(pod, container, "allowPrivilegeEscalation") is False, name
                assert _effective(pod, container, "readOnlyRootFilesystem") is True, name
                assert not _effective(pod, container, "privileged"), name
                seccomp = _effective(pod, container, "seccompProfile") or {}
                assert seccomp.get("type") == "RuntimeDefault", name
                capabilities = container.get("securityContext", {}).get("capabilities", {})
                assert capabilities.get("drop") == ["ALL"], name
                assert not capabilities.get("add"), name

    def test_read_only_root_filesystems_get_an_empty_dir_for_tmp(
        self, docs: tuple[Manifest, ...]
    ) -> None:
        for workload in workloads(docs):
            volumes = {v["name"]: v for v in pod_spec(workload).get("volumes", [])}
            for container in containers(workload):
                tmp = [m for m in container.get("volumeMounts", []) if m["mountPath"] == "/tmp"]
                assert len(tmp) == 1, container["name"]
                assert "emptyDir" in volumes[tmp[0]["name"]], container["name"]
                assert not tmp[0].get("readOnly"), container["name"]

    def test_pods_get_no_api_token_host_namespaces_or_service_links(
        self, docs: tuple[Manifest, ...]
    ) -> None:
        for workload in workloads(docs):
            pod = pod_spec(workload)
            name = workload["metadata"]["name"]
            assert pod.get("automountServiceAccountToken") is False, name
            # Links would add CATALOG_PORT=tcp://... and the like: our settings' prefixes.
            assert pod.get("enableServiceLinks") is False, name
            for key in ("hostNetwork", "hostPID", "hostIPC"):
                assert not pod.get(key), f"{name}: {key}"

    def test_pod_user_is_the_image_user(self, deployment: Manifest, service: str) -> None:
        user = Dockerfile.read(REPO_ROOT / "Dockerfile").last(service, "USER")
        assert user is not None
        uid, _, gid = user.arguments.partition(":")
        security = pod_spec(deployment)["securityContext"]

        # fsGroup-owned volumes and files baked into the image then agree on ownership.
        assert security["runAsUser"] == int(uid)
        assert security["runAsGroup"] == int(gid)


class TestResources:
    def test_every_container_has_cpu_and_memory_requests_within_limits(
        self, docs: tuple[Manifest, ...]
    ) -> None:
        for workload in workloads(docs):
            for container in containers(workload):
                resources = container.get("resources", {})
                for resource in ("cpu", "memory"):
                    where = f"{container['name']} {resource}"
                    request = resources.get("requests", {}).get(resource)
                    limit = resources.get("limits", {}).get(resource)
                    assert request is not None, where
                    assert limit is not None, where
                    assert 0 < quantity(request) <= quantity(limit), where


class TestShutdown:
    def test_grace_period_outlasts_pre_stop_and_uvicorn_drain(
        self, docs: tuple[Manifest, ...], deployment: Manifest, service: str
    ) -> None:
        container = main_container(deployment)
        # The image's ENV, then what the pod sets (ConfigMap, Secret, env) wins.
        env = {**_image_environment(service), **environment(docs, container)}
        drain = setting_value(settings_class(service), "graceful_shutdown_s", env)
        pre_stop = container["lifecycle"]["preStop"]["sleep"]["seconds"]
        grace = pod_spec(deployment)["terminationGracePeriodSeconds"]

        assert drain > 0
        assert pre_stop >= MIN_PRESTOP_SLEEP_S
        assert grace >= pre_stop + drain + LIFESPAN_SHUTDOWN_ALLOWANCE_S

    def test_rolling_updates_never_lower_capacity(self, deployment: Manifest) -> None:
        strategy = deployment["spec"]["strategy"]

        assert strategy["type"] == "RollingUpdate"
        assert strategy["rollingUpdate"]["maxUnavailable"] == 0


def _image_environment(service: str) -> dict[str, str]:
    return Dockerfile.read(REPO_ROOT / "Dockerfile").environment(service)


class TestPlacement:
    def test_replicas_spread_over_nodes_and_zones(self, deployment: Manifest, overlay: str) -> None:
        labels = pod_labels(deployment)
        constraints = {
            c["topologyKey"]: c for c in pod_spec(deployment).get("topologySpreadConstraints", [])
        }

        assert set(constraints) == {"kubernetes.io/hostname", "topology.kubernetes.io/zone"}
        for constraint in constraints.values():
            assert constraint["maxSkew"] == 1
            assert selector_matches(constraint["labelSelector"], labels)
        if overlay == "prod":
            assert constraints["kubernetes.io/hostname"]["whenUnsatisfiable"] == "DoNotSchedule"


class TestScaling:
    def test_each_service_has_a_cpu_autoscaler_that_owns_its_replicas(
        self, docs: tuple[Manifest, ...], deployment: Manifest, service: str
    ) -> None:
        autoscalers = [
            h for h in of_kind(docs, "HorizontalPodAutoscaler")
            if h["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": service}
        ]  # fmt: skip

        assert len(autoscalers) == 1
        spec = autoscalers[0]["spec"]
        assert autoscalers[0]["apiVersion"] == "autoscaling/v2"
        assert 1 <= spec["minReplicas"] <= spec["maxReplicas"]
        # A replicas field would be reset on every apply, fighting the autoscaler.
        assert "replicas" not in deployment["spec"]
        # CPU utilisation is relative to the request: without one it is undefined.
        assert [m["resource"]["name"] for m in spec["metrics"]] == ["cpu"]
        assert "cpu" in main_container(deployment)["resources"]["requests"]

    def test_each_service_has_a_disruption_budget_that_lets_drains_proceed(
        self, docs: tuple[Manifest, ...], deployment: Manifest, service: str
    ) -> None:
        budgets = [
            b for b in of_kind(docs, "PodDisruptionBudget")
            if selector_matches(b["spec"]["selector"], pod_labels(deployment))
        ]  # fmt: skip
        min_replicas = named(docs, "HorizontalPodAutoscaler", service)["spec"]["minReplicas"]

        assert len(budgets) == 1
        spec = budgets[0]["spec"]
        if "maxUnavailable" in spec:
            assert spec["maxUnavailable"] >= 1
        else:
            assert spec["minAvailable"] < min_replicas

    def test_prod_runs_more_replicas_than_dev(self) -> None:
        for service in SERVICES:
            dev = named(render("dev"), "HorizontalPodAutoscaler", service)["spec"]
            prod = named(render("prod"), "HorizontalPodAutoscaler", service)["spec"]

            assert prod["minReplicas"] > dev["minReplicas"], service
            assert prod["maxReplicas"] > dev["maxReplicas"], service
            # One replica per zone of a typical three-zone region.
            assert prod["minReplicas"] >= 3, service


class TestExposure:
    def test_only_the_gateway_is_reachable_through_an_ingress(
        self, docs: tuple[Manifest, ...]
    ) -> None:
        ingresses = of_kind(docs, "Ingress")
        gateway = named(docs, "Service", "gateway")

        assert len(ingresses) == 1
        spec = ingresses[0]["spec"]
        backends = [path["backend"] for rule in spec["rules"] for path in rule["http"]["paths"]]
        backends += [spec["defaultBackend"]] if "defaultBackend" in spec else []
        assert backends
        for backend in backends:
            assert backend["service"]["name"] == "gateway"
            port = backend["service"]["port"]
            assert port.get("name") in {p["name"] for p in gateway["spec"]["ports"]} or port.get(
                "number"
            ) in {p["port"] for p in gateway["spec"]["ports"]}
        for service in of_kind(docs, "Service"):
            name = service["metadata"]["name"]
            assert service["spec"].get("type", "ClusterIP") == "ClusterIP", name

    def test_prod_ingress_terminates_tls_for_its_hosts(self) -> None:
        spec = named(render("prod"), "Ingress", "gateway")["spec"]
        hosts = {rule["host"] for rule in spec["rules"]}

        assert hosts
        assert hosts <= {host for tls in spec["tls"] for host in tls["hosts"]}


class TestMigration:
    def test_catalog_migrates_in_an_init_container_with_its_own_image_and_settings(
        self, docs: tuple[Manifest, ...]
    ) -> None:
        deployment = service_deployment(docs, "catalog")
        catalog = main_container(deployment)
        init = pod_spec(deployment).get("initContainers", [])

        # Init containers finish before the catalog container starts: no pod serves
        # on a schema older than its code.
        assert [c.get("command", []) + c.get("args", []) for c in init] == [
            ["tessera-catalog-migrate"]
        ]
        assert init[0]["image"] == catalog["image"]
        assert init[0]["envFrom"] == catalog["envFrom"]
        assert not of_kind(docs, "Job")


class TestImages:
    def test_service_images_come_from_one_repository_each_and_one_release(self) -> None:
        for overlay in OVERLAYS:
            docs = render(overlay)
            tags = set()
            for service in SERVICES:
                deployment = service_deployment(docs, service)
                for container in containers(deployment):
                    image = container["image"]
                    repository, _, tag = image.rpartition(":")
                    assert repository == IMAGE_REPOSITORY.format(service=service), image
                    assert tag not in ("", "latest"), image
                    tags.add(tag)
            # The services are built from one commit and deployed together.
            assert len(tags) == 1, f"{overlay}: {tags}"

    def test_prod_images_are_release_versions(self) -> None:
        for service in SERVICES:
            image = main_container(service_deployment(render("prod"), service))["image"]
            tag = image.rpartition(":")[2]

            assert re.fullmatch(r"\d+\.\d+\.\d+", tag) or "@sha256:" in image, image

    def test_third_party_images_are_pinned_to_a_version(self, docs: tuple[Manifest, ...]) -> None:
        for workload in workloads(docs):
            for container in containers(workload):
                image = container["image"]
                name, _, tag = image.rpartition(":")
                assert name, image
                assert tag not in ("", "latest"), image


class TestDataStores:
    def test_dev_runs_postgres_and_nats_on_persistent_volumes(self) -> None:
        docs = render("dev")
        statefulsets = {s["metadata"]["name"]: s for s in of_kind(docs, "StatefulSet")}

        assert set(statefulsets) == {"postgres", "nats"}
        for statefulset in statefulsets.values():
            claims = {t["metadata"]["name"]: t for t in statefulset["spec"]["volumeClaimTemplates"]}
            container = main_container(statefulset)
            mounted = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
            for claim, template in claims.items():
                assert claim in mounted
                assert quantity(template["spec"]["resources"]["requests"]["storage"]) > 0

    def test_dev_nats_keeps_jetstream_on_its_volume(self) -> None:
        docs = render("dev")
        statefulset = named(docs, "StatefulSet", "nats")
        nats = main_container(statefulset)
        mounts = {m["name"]: m["mountPath"] for m in nats["volumeMounts"]}
        config_path = PurePosixPath(nats["args"][nats["args"].index("--config") + 1])
        volume = next(
            v
            for v in pod_spec(statefulset)["volumes"]
            if "configMap" in v and mounts.get(v["name"]) == str(config_path.parent)
        )
        config = named(docs, "ConfigMap", volume["configMap"]["name"])["data"][config_path.name]
        store = re.search(r"^\s*store_dir:\s*(\S+)", config, re.MULTILINE)

        # The server reads the mounted file, and that file puts JetStream on the claim.
        assert re.search(r"^jetstream\s*\{", config, re.MULTILINE)
        assert store is not None
        assert PurePosixPath(store[1]).is_relative_to(mounts["data"])

    def test_prod_runs_no_data_stores_in_the_cluster(self) -> None:
        docs = render("prod")

        assert not of_kind(docs, "StatefulSet")
        assert not of_kind(docs, "PersistentVolumeClaim")
