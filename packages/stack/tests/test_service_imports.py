"""Importing any service module starts nothing and reads no configuration.

Apps are built by `create_app(settings)`, never at import: a test, a tool or a
worker can import a service without it connecting anywhere or reading the
environment. Checked in a fresh interpreter, since this test session has
already imported everything.
"""

import json
import subprocess
import sys
import textwrap

import pytest

PROBE = textwrap.dedent(
    """
    import importlib, json, os, pkgutil, socket, subprocess, sys, threading

    OURS = ("GATEWAY_", "CATALOG_", "INFERENCE_", "DATABASE_URL", "NATS_URL")
    seen = {"env": [], "sockets": 0, "processes": 0, "threads": 0}

    def read_by_us_or_settings():
        # Count reads made by our code or by pydantic-settings, not a library
        # copying the whole environment (the stdlib's wsgiref does at import).
        frame = sys._getframe(2)
        while frame is not None and (
            frame.f_code.co_filename.startswith("<frozen")
            or frame.f_code.co_filename == os.__file__
        ):
            frame = frame.f_back
        name = frame.f_code.co_filename if frame is not None else ""
        return "/tessera_" in name or "pydantic_settings" in name

    class WatchedEnviron(type(os.environ)):
        def __getitem__(self, key):
            if str(key).upper().startswith(OURS) and read_by_us_or_settings():
                seen["env"].append(key)
            return super().__getitem__(key)

    os.environ.__class__ = WatchedEnviron

    def counting(name, original):
        def wrapper(*args, **kwargs):
            seen[name] += 1
            return original(*args, **kwargs)
        return wrapper

    socket.socket.connect = counting("sockets", socket.socket.connect)
    socket.socket.bind = counting("sockets", socket.socket.bind)
    subprocess.Popen.__init__ = counting("processes", subprocess.Popen.__init__)
    threading.Thread.start = counting("threads", threading.Thread.start)

    modules = []
    for package_name in sys.argv[1:]:
        package = importlib.import_module(package_name)
        modules.append(package_name)
        for info in pkgutil.walk_packages(package.__path__, package_name + "."):
            importlib.import_module(info.name)
            modules.append(info.name)
    print(json.dumps({"modules": modules, **seen}))
    """
)

SERVICES = ["tessera_gateway", "tessera_catalog", "tessera_inference"]


@pytest.mark.parametrize("package", SERVICES)
def test_importing_every_module_starts_nothing_and_reads_no_settings(package: str) -> None:
    env = {
        "PATH": "/usr/bin:/bin",
        # Set, so a read would find something and be noticed rather than fail.
        f"{package.removeprefix('tessera_').upper()}_LOG_LEVEL": "DEBUG",
        "DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none",
    }
    completed = subprocess.run(
        [sys.executable, "-c", PROBE, package],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    report = json.loads(completed.stdout.strip().splitlines()[-1])

    assert len(report["modules"]) > 5, report["modules"]
    assert f"{package}.app" in report["modules"]
    assert report["env"] == []
    assert report["sockets"] == 0
    assert report["processes"] == 0
    assert report["threads"] == 0
