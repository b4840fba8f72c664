"""`tessera up`: PostgreSQL, NATS, migrations and demo data, then the three services.

Once all three are ready, a service that exits is restarted on its own with a
growing delay while the others keep serving (`supervisor`); a service that fails
during the first start-up stops everything instead, with its last log lines.

Order of shutdown is the reverse of start-up: services first (they hold database
connections and NATS subscriptions), then NATS, then PostgreSQL. Ctrl-C, SIGTERM
and SIGHUP all lead there. Every child runs in its own process group, so a Ctrl-C
typed in the terminal reaches only this process, which then stops them in order;
if this process is killed outright, the children get their parent-death signal.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
from collections.abc import Iterator, Mapping
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import NoReturn, TextIO

import asyncpg
from tessera_runtime.tracing import otlp_traces_endpoint, switched_off

from tessera_stack.local.console import say, warn
from tessera_stack.local.services import (
    SERVICE_NAMES,
    LocalStack,
    ServiceFailed,
    ServiceProcess,
    local_api_key,
    port_in_use,
    service_environment,
    stop_services,
    trace_dir,
    uvicorn_command,
    wait_ready,
)
from tessera_stack.local.supervisor import RestartPolicy, supervise
from tessera_stack.nats import EmbeddedNats, resolve_nats
from tessera_stack.postgres import EmbeddedPostgres, create_database, redact, resolve_postgres
from tessera_stack.process import ServerError, run_sync

LOCK_FILE = "tessera.lock"
DEFAULT_DATA_DIR = Path(".tessera")
EMBEDDED_DATABASE = "tessera"


class AlreadyRunning(RuntimeError):
    """Another `tessera up` holds the data directory."""


@dataclass(frozen=True, slots=True)
class UpOptions:
    data_dir: Path
    host: str
    ports: Mapping[str, int]
    ready_timeout_s: float
    database_url: str | None
    nats_url: str | None
    restart: RestartPolicy


def _shown(path: Path) -> str:
    # Relative to where the user stands, as they typed it (".tessera/postgres").
    with contextlib.suppress(ValueError):
        return str(path.relative_to(Path.cwd()))
    return str(path)


def data_dir_lock(data_dir: Path) -> TextIO:
    """Hold `<data_dir>/tessera.lock` until the returned file is closed.

    An flock, so the kernel releases it even when we are killed.

    Raises:
        AlreadyRunning: another process holds it.
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    lock = (data_dir / LOCK_FILE).open("a+")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.seek(0)
        holder = lock.read().strip() or "unknown"
        lock.close()
        raise AlreadyRunning(
            f"another `tessera up` (pid {holder}) is already running with data dir "
            f"{_shown(data_dir)}: stop it first, or pass another --data-dir"
        ) from None
    lock.seek(0)
    lock.truncate()
    lock.write(f"{os.getpid()}\n")
    lock.flush()
    return lock


_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


@contextlib.contextmanager
def _interrupted_by_signals() -> Iterator[None]:
    """Ctrl-C, SIGTERM and SIGHUP (terminal closed) all raise KeyboardInterrupt."""
    previous = {sig: signal.signal(sig, _raise_interrupt) for sig in _STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def prepare_database(dsn: str) -> None:
    """Apply the catalog's migrations and load demo data into an empty database."""
    # Imported here: the catalog owns its schema, and only this command needs it.
    from tessera_catalog.db.migrate import MigrationError, apply_migrations
    from tessera_catalog.db.seed import seed_if_empty

    try:
        applied = run_sync(apply_migrations(dsn))
        say(f"migrations: applied {', '.join(applied)}" if applied else "migrations: up to date")
        rows = run_sync(seed_if_empty(dsn))
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, MigrationError) as e:
        raise ServerError(f"preparing the database {redact(dsn)} failed: {e}") from e
    say(f"demo data: loaded {rows} rows" if rows else "demo data: kept the existing data")


def _start_postgres(options: UpOptions, stack: ExitStack) -> str:
    """Start or find PostgreSQL; return the DSN of the database the catalog uses."""

    def unreachable(reason: str) -> None:
        assert options.database_url is not None
        say(f"postgres: DATABASE_URL {redact(options.database_url)} is unreachable ({reason})")

    server = resolve_postgres(
        options.database_url, options.data_dir / "postgres", on_unreachable=unreachable
    )
    if not isinstance(server, EmbeddedPostgres):
        say(f"postgres: external {redact(server.dsn)}")
        # The URL names the database to use; creating another would surprise.
        return server.dsn
    say(f"postgres: starting embedded server (data {_shown(server.data_dir)})")
    stack.enter_context(server)
    for directory in server.granted:
        say(f"postgres: added o+x (search only) to {directory}: the server runs as nobody")
    dsn = run_sync(create_database(server.dsn, EMBEDDED_DATABASE, exist_ok=True))
    # The URL the catalog is given, so that psql on it finds the data.
    say(f"postgres: embedded at {dsn} (data {_shown(server.data_dir)})")
    return dsn


def _start_nats(options: UpOptions, stack: ExitStack) -> str:
    def unreachable(reason: str) -> None:
        say(f"nats: NATS_URL {options.nats_url} is unreachable ({reason})")

    server = resolve_nats(options.nats_url, options.data_dir / "nats", on_unreachable=unreachable)
    if not isinstance(server, EmbeddedNats):
        say(f"nats: external {server.url}")
        return server.url
    stack.enter_context(server)
    say(f"nats: embedded at {server.url} (store {_shown(server.store_dir)})")
    return server.url


def _start_services(local: LocalStack, stack: ExitStack) -> list[ServiceProcess]:
    environments = service_environment(local)
    services = [
        ServiceProcess(
            name,
            uvicorn_command(name, local.host, local.ports[name]),
            environments.get(name, {}),
            local.url(name),
        )
        for name in SERVICE_NAMES
    ]
    stack.callback(stop_services, services)
    listed = ", ".join(f"{s.name} {s.base_url}" for s in services)
    say(f"services: starting {listed}")
    for service in services:
        service.start()
    return services


def _run(options: UpOptions, stack: ExitStack) -> NoReturn:
    busy = [
        f"{name} port {port}"
        for name, port in options.ports.items()
        if port_in_use(options.host, port)
    ]
    if busy:
        raise ServerError(
            f"already in use on {options.host}: {', '.join(busy)} (see --help for the port options)"
        )
    database_url = _start_postgres(options, stack)
    prepare_database(database_url)
    nats_url = _start_nats(options, stack)
    # Spans go to the collector the environment names, else to disk for `tessera trace`.
    collector = otlp_traces_endpoint(os.environ)
    off = switched_off(os.environ)
    spans = None if collector or off else trace_dir(options.data_dir)
    if spans is not None:
        # Made now, so that `tessera trace` before the first request says "no spans yet".
        spans.mkdir(exist_ok=True)
    local = LocalStack(options.data_dir, options.host, options.ports, database_url, nats_url, spans)
    services = _start_services(local, stack)
    wait_ready(services, options.ready_timeout_s)
    gateway = local.url("gateway")
    api_key = local_api_key(local)
    say("")
    say("tessera is up:")
    say(f"  API docs   {gateway}/docs   (also {gateway}/redoc)")
    for name in SERVICE_NAMES:
        say(f"  {name:<10} {local.url(name)}")
    say(f"  API key    {api_key.key}   (saved in {_shown(api_key.path)})")
    say(
        f'  try        curl -H "Authorization: Bearer $(cat {_shown(api_key.path)})" {gateway}/v1/products?limit=2'
    )
    if off:
        say("  traces     off (OTEL_SDK_DISABLED or OTEL_TRACES_EXPORTER=none)")
    elif spans is None:
        say(f"  traces     exported over OTLP to {collector}")
    else:
        say(f"  traces     {_trace_hint(options.data_dir)}   (spans kept in {_shown(spans)})")
    say("Press Ctrl-C to stop.")
    supervise(services, options.restart)


def _trace_hint(data_dir: Path) -> str:
    """The command that shows the latest trace of a run with data directory `data_dir`."""
    if data_dir == DEFAULT_DATA_DIR.resolve():
        return "uv run tessera trace --last"
    return f"uv run tessera trace --last --data-dir {_shown(data_dir)}"


def up(options: UpOptions) -> int:
    """Run everything until Ctrl-C or SIGTERM; the exit status of `tessera up`."""
    try:
        lock = data_dir_lock(options.data_dir)
    except AlreadyRunning as e:
        warn(f"tessera up: {e}")
        return 1
    with lock, _interrupted_by_signals():
        return _run_until_stopped(options)


def _run_until_stopped(options: UpOptions) -> int:
    stack = ExitStack()
    try:
        _run(options, stack)
    except KeyboardInterrupt:
        say("")
        return 0
    except (ServerError, ServiceFailed) as e:
        warn(f"tessera up: {e}")
        return 1
    finally:
        # Stopping takes seconds; a second Ctrl-C must not cut it short and
        # leave servers behind (`up` restores the handlers afterwards).
        for sig in _STOP_SIGNALS:
            signal.signal(sig, signal.SIG_IGN)
        say("stopping...")
        stack.close()
        say("stopped")
