"""pytest plugin: real PostgreSQL and NATS servers for tests.

Enabled for the whole workspace by `-p tessera_stack.testing` in the root
pyproject. Nothing starts unless a test asks for one of these fixtures:

- `postgres_dsn` (session): DSN of a PostgreSQL server (superuser on its
  `postgres` database). An embedded server in a temporary directory, started
  once per session with fsync off, or the server of `TESSERA_TEST_DATABASE_URL`.
- `database_url` (function): DSN of a new, empty database on that server, made
  from template0 and dropped (sessions disconnected) after the test.
- `nats_server` (function): a fresh embedded nats-server with JetStream:
  `.url`, `.stop()`, `.start()` (same port and store, for outage tests).
  With `TESSERA_TEST_NATS_URL`, that server instead, with all its JetStream
  streams deleted before the test.
- `nats_url` (function): `nats_server.url`.
- `wait_until` (function): `await wait_until(async_predicate, timeout_s=10,
  what="...")` polls until the predicate is true, else fails the test.

Helpers for the test modules of every package (import them from here rather than
copying them): `Json`, `WaitUntil`, `MALIGNANT`/`BENIGN` (feature rows the packaged
model classifies), `product_body` and `product_body_v2` (valid v1 and v2 product
create bodies), `assert_problem`, `assert_problem_body` and `error_locs`, and:

- `asgi_client(app, base_url)`: runs the app's lifespan and yields a client that
  calls it in memory over ASGI.
- `serving(config)`: uvicorn from the running loop on a real socket; yields its port.
- `openapi_fuzz_tests(document, examples)`: the two tests of a service's
  schemathesis module, against its `service_url` fixture.
- `served_catalog(postgres_dsn, root)`: the catalog as `tessera up` runs it, on a
  new migrated and seeded database and an embedded NATS.
- `answers_until(url, done, within_s=...)` with `status_is(status)`: GET an
  endpoint again until its answer is the awaited one (a synchronous test's
  `wait_until`).
- `process_state(pid)`: the process's state letter from `/proc` (`T` stopped by
  a signal, `Z` a zombie), or None once it is gone.

And a helper (not a fixture): `running_service(command, env=..., log=...)` runs a
service's command (`[sys.executable, "-m", "tessera_catalog"]`) on a free port,
yields once its `/healthz` answers, and stops it afterwards (SIGTERM, then
SIGKILL if it does not exit in time).

Environment variables:

- `TESSERA_TEST_DATABASE_URL`: use this PostgreSQL server instead of starting
  one. Its role must be allowed to create databases.
- `TESSERA_TEST_NATS_URL`: use this NATS server (JetStream enabled) instead of
  one per test. Every stream on it is deleted before each test that uses it:
  never point it at a server whose data you want to keep.

Marker `@pytest.mark.embedded_nats`: the test stops and restarts NATS (an
outage test), so it always gets an embedded server, even when
`TESSERA_TEST_NATS_URL` is set. Calling `stop()` or `start()` on an external
server fails and names this marker.

The fixtures are synchronous (server lifecycles block briefly), so async tests
and async fixtures can use them like any other.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import pytest

from tessera_stack.process import ServerError, free_port, run_sync, spawn, stop_process

if TYPE_CHECKING:
    import httpx
    import uvicorn
    from starlette.types import ASGIApp
    from tessera_contracts.problem import Problem

    from tessera_stack.openapi_fuzz import FuzzCase

# The server modules (asyncpg, nats-py, httpx) are imported by the fixtures that
# use them: every test session of the workspace loads this plugin.

DATABASE_URL_ENV = "TESSERA_TEST_DATABASE_URL"
NATS_URL_ENV = "TESSERA_TEST_NATS_URL"
EMBEDDED_NATS_MARKER = "embedded_nats"

Json = dict[str, Any]
WaitUntil = Callable[..., Awaitable[None]]

# Rows of scikit-learn's breast-cancer data (its 10 "mean" features): sample 0
# is malignant (class 0), sample 19 benign (class 1).
MALIGNANT = [17.99, 10.38, 122.8, 1001.0, 0.1184, 0.2776, 0.3001, 0.1471, 0.2419, 0.07871]
BENIGN = [13.54, 14.36, 87.46, 566.3, 0.09779, 0.08129, 0.06664, 0.04781, 0.1885, 0.05766]


class NatsServer(Protocol):
    """What the `nats_server` fixture gives a test."""

    @property
    def url(self) -> str: ...

    def stop(self) -> None: ...

    def start(self) -> None: ...


class ExternalTestNats:
    """The server of TESSERA_TEST_NATS_URL: shared, so a test must not stop it."""

    def __init__(self, url: str) -> None:
        self.url = url

    def stop(self) -> None:
        raise ServerError(self._refusal("stop"))

    def start(self) -> None:
        raise ServerError(self._refusal("start"))

    def _refusal(self, action: str) -> str:
        return (
            f"cannot {action} the external NATS server of {NATS_URL_ENV}: "
            f"mark the test @pytest.mark.{EMBEDDED_NATS_MARKER} to get an embedded one"
        )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{EMBEDDED_NATS_MARKER}: the test stops/starts NATS, so it always gets an "
        f"embedded nats-server, even when {NATS_URL_ENV} is set",
    )


def checked_external_database(url: str) -> str:
    """`url` when it answers; else fail the test that needs it, naming the variable."""
    from tessera_stack.postgres import postgres_unreachable, redact

    reason = run_sync(postgres_unreachable(url))
    if reason is not None:
        pytest.fail(f"{DATABASE_URL_ENV}={redact(url)} is unreachable: {reason}", pytrace=False)
    return url


@pytest.fixture(scope="session")
def postgres_dsn() -> Iterator[str]:
    """DSN of the session's PostgreSQL server (its `postgres` database, as superuser)."""
    from tessera_stack.postgres import EmbeddedPostgres

    external = os.environ.get(DATABASE_URL_ENV)
    if external:
        yield checked_external_database(external)
        return
    # Not pytest's tmp_path: its base directory is private to us (0700) and
    # pytest resets that mode, while the server may run as `nobody`.
    root = Path(tempfile.mkdtemp(prefix="tessera-test-postgres-"))
    try:
        with EmbeddedPostgres(root / "data", fsync=False) as server:
            yield server.dsn
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def database_url(postgres_dsn: str) -> Iterator[str]:
    """DSN of a new, empty database, dropped after the test."""
    from tessera_stack.postgres import scratch_database

    with scratch_database(postgres_dsn, "test") as url:
        yield url


@pytest.fixture
def nats_server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[NatsServer]:
    """A NATS server with JetStream and no streams; see the module docstring."""
    from tessera_stack.nats import EmbeddedNats, delete_streams

    external = os.environ.get(NATS_URL_ENV)
    if external and request.node.get_closest_marker(EMBEDDED_NATS_MARKER) is None:
        run_sync(delete_streams(external))
        yield ExternalTestNats(external)
        return
    with EmbeddedNats(tmp_path / "nats") as server:
        yield server


@pytest.fixture
def nats_url(nats_server: NatsServer) -> str:
    """URL of the test's NATS server."""
    return nats_server.url


@dataclass(frozen=True)
class RunningService:
    """What `running_service` yields."""

    url: str
    """Base URL of its API port (`http://127.0.0.1:<port>`)."""
    process: subprocess.Popen[bytes]
    log: Path
    """Its stdout and stderr."""


@contextmanager
def running_service(
    command: Sequence[str],
    *,
    log: Path,
    env: Mapping[str, str] | None = None,
    start_timeout_s: float = 30.0,
    stop_timeout_s: float = 15.0,
) -> Iterator[RunningService]:
    """Run `command --port <free port>` with `env` added to ours, until the block ends.

    Yields once `/healthz` answers 200 on that port; fails the test with the log's
    tail if the process exits first or does not answer within `start_timeout_s`.
    Afterwards the process gets SIGTERM and, if it has not exited within
    `stop_timeout_s`, SIGKILL (the block may have signalled it already).
    """
    import httpx

    from tessera_stack.process import tail

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with log.open("wb") as output:
        process = spawn(
            [*command, "--port", str(port)],
            env={**os.environ, **(env or {})},
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + start_timeout_s
        while True:
            if process.poll() is not None:
                pytest.fail(f"{command} exited with {process.returncode}:\n{tail(log)}")
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"{command} did not answer within {start_timeout_s:g} s:\n{tail(log)}")
            time.sleep(0.1)
        yield RunningService(url=url, process=process, log=log)
    finally:
        stop_process(process, timeout_s=stop_timeout_s)


def product_body(sku: str = "TSR-0001", **overrides: Any) -> Json:
    """A valid v1 create body (`POST /v1/products`); keyword arguments replace fields."""
    body: Json = {
        "sku": sku,
        "name": "Oak Desk Lamp",
        "description": "A warm reading lamp made from oak.",
        "category": "home",
        "price": 49.99,
        "currency": "USD",
        "features": list(MALIGNANT),
    }
    body.update(overrides)
    return body


def product_body_v2(sku: str = "TSR-0001", **overrides: Any) -> Json:
    """`product_body` as a v2 create body (`POST /v2/products`): its price as money."""
    body = product_body(sku)
    body["price"] = {"amount": f"{body['price']:.2f}", "currency": body.pop("currency")}
    body.update(overrides)
    return body


async def _wait_until(
    predicate: Callable[[], Awaitable[bool]], timeout_s: float = 10.0, what: str = "condition"
) -> None:
    deadline = time.monotonic() + timeout_s
    while not await predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_s}s waiting for {what}")
        await asyncio.sleep(0.02)


@pytest.fixture
def wait_until() -> WaitUntil:
    """`await wait_until(async_predicate, timeout_s=10, what="...")`: poll until true, else fail."""
    return _wait_until


def process_state(pid: int) -> str | None:
    """The state letter of process `pid` in /proc/<pid>/stat, or None if it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # The command name, in parentheses, may itself contain ") ": split after the last.
    return stat.rsplit(")", 1)[1].split()[0]


def answers_until(
    url: str, done: Callable[[httpx.Response], bool], *, within_s: float, pause_s: float = 0.05
) -> list[httpx.Response]:
    """GET `url` until an answer is `done` or `within_s` has passed; every answer, in order.

    It asks at least once. The last answer is `done` unless the time ran out, so the
    caller asserts on it (and may look at the ones before).
    """
    import httpx  # as the plugin's other helpers: only where a test asks for it

    deadline = time.monotonic() + within_s
    answers = [httpx.get(url)]
    while not done(answers[-1]) and time.monotonic() < deadline:
        time.sleep(pause_s)
        answers.append(httpx.get(url))
    return answers


def status_is(status: int) -> Callable[[httpx.Response], bool]:
    """A `done` for `answers_until`: the answer has this status."""
    return lambda response: response.status_code == status


def assert_problem_body(response: httpx.Response, status: int, title: str | None = None) -> Json:
    """Assert `response` is an application/problem+json answer of `status` (and `title`).

    Returns the body as JSON, members a service adds beyond `Problem` included.
    """
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: Json = response.json()
    assert body["status"] == status
    if title is not None:
        assert body["title"] == title
    return body


def assert_problem(response: httpx.Response, status: int, title: str | None = None) -> Problem:
    """`assert_problem_body`, then the body parsed as the contracts' `Problem`."""
    from tessera_contracts.problem import Problem

    assert_problem_body(response, status, title)
    return Problem.model_validate_json(response.content)


def error_locs(body: Json) -> list[list[Any]]:
    """The `loc` of each field error of a problem body."""
    return [error["loc"] for error in body["errors"]]


@asynccontextmanager
async def asgi_client(
    app: ASGIApp, base_url: str, *, lifespan_timeout_s: float = 5.0
) -> AsyncIterator[httpx.AsyncClient]:
    """Run `app`'s lifespan for the block; yield a client that calls it in memory over ASGI.

    The client talks to the lifespan manager's app, which carries the lifespan
    state into each request.
    """
    import httpx
    from asgi_lifespan import LifespanManager

    async with (
        LifespanManager(
            app, startup_timeout=lifespan_timeout_s, shutdown_timeout=lifespan_timeout_s
        ) as manager,
        httpx.AsyncClient(transport=httpx.ASGITransport(app=manager.app), base_url=base_url) as c,
    ):
        yield c


@asynccontextmanager
async def serving(config: uvicorn.Config) -> AsyncIterator[int]:
    """Serve `config` from a task of the running loop for the block; yield its port."""
    import uvicorn

    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()  # raises what stopped it
        await asyncio.sleep(0.01)
    try:
        yield int(server.servers[0].sockets[0].getsockname()[1])
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)


def openapi_fuzz_tests(
    document: Json, examples_per_operation: int
) -> tuple[Callable[[str], None], Callable[[FuzzCase, str], None]]:
    """The two tests of a service's schemathesis module, run against its `service_url` fixture.

    Bind them to test names in the module (`test_a, test_b = openapi_fuzz_tests(...)`).
    The first checks that the running service serves `document`; the second is
    schemathesis's, one test per operation of `document`, each request checked by
    `tessera_stack.openapi_fuzz.check_case`.
    """
    import schemathesis

    from tessera_stack.openapi_fuzz import check_case, fuzz_settings, served_document

    schema = schemathesis.openapi.from_dict(document)

    def test_served_document_is_the_fuzzed_one(service_url: str) -> None:
        assert served_document(service_url) == document

    @schema.parametrize()
    @fuzz_settings(examples_per_operation)
    def test_every_operation_answers_as_documented(case: FuzzCase, service_url: str) -> None:
        check_case(case, service_url)

    return test_served_document_is_the_fuzzed_one, test_every_operation_answers_as_documented


@dataclass(frozen=True)
class ServedCatalog:
    """What `served_catalog` yields."""

    url: str
    """Base URL of the catalog's API port."""
    nats_url: str
    """The embedded NATS server it uses, for services served next to it."""


@contextmanager
def served_catalog(postgres_dsn: str, root: Path) -> Iterator[ServedCatalog]:
    """The catalog as `tessera up` runs it, on a new database and NATS, for the block.

    The database is made on the server of `postgres_dsn`, migrated and seeded with
    the demo data; NATS is an embedded server stored under `root`, where the
    catalog's log goes too (see `tessera_stack.openapi_fuzz.served`).
    """
    from tessera_catalog.db.migrate import apply_migrations
    from tessera_catalog.db.seed import seed_if_empty

    from tessera_stack.nats import EmbeddedNats
    from tessera_stack.openapi_fuzz import served
    from tessera_stack.postgres import scratch_database

    with (
        scratch_database(postgres_dsn, "catalog") as database_url,
        EmbeddedNats(root / "nats") as nats,
    ):
        run_sync(apply_migrations(database_url))
        run_sync(seed_if_empty(database_url))
        env = {"CATALOG_DATABASE_URL": database_url, "CATALOG_NATS_URL": nats.url}
        with served("catalog", env, root) as url:
            yield ServedCatalog(url=url, nats_url=nats.url)
