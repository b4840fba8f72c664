"""Faults under load: `tessera up` keeps every acknowledged write and event through crashes.

    uv run python -m bench.run faults [--quick]

Results go to docs/reliability.md (`--write`). The stack runs as a user runs it:
`tessera up` as a subprocess (temp --data-dir,
free ports), with PostgreSQL and NATS started by this scenario and handed to it
as DATABASE_URL and NATS_URL, so they can be killed and started again on the
same port with the same data (`tessera up` restarts services, not servers).

While a steady writer POSTs products through the gateway with the local API
key (an Idempotency-Key on each, retried with the same key after a 429, a 5xx
or a connection error, as a careful client does), a reader GETs recent
products' `/enriched` view, and an SSE reader follows `/v1/events`
(reconnecting with `Last-Event-ID`), this happens in turn:

- kill -9 NATS, leave it down, start it again (same port and store);
- kill -9 PostgreSQL (the postmaster), leave it down, start it again (crash recovery);
- kill -9 inference, then kill -9 catalog: `tessera up` must restart them;
- SIGTERM gateway, catalog and inference, one after the other, under load.

Checked and recorded (the run fails when any invariant fails):

- every write answered 201 is in the database, with the id it was answered with;
- every product has exactly one `product.created` event on stream CATALOG;
- every event of the stream since the start reaches the SSE reader exactly once;
- no 500 and no other 5xx than 502/503/504, neither at the clients nor in any
  service's access log; no request without an answer within the client timeout;
- requests in flight when a service got SIGTERM (a burst is started just before
  it) all got an answer other than 502/504;
- every service is ready again without a manual restart; how long each took.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import asyncpg
import httpx
import nats
from tessera_contracts import v1
from tessera_stack.nats import EmbeddedNats
from tessera_stack.postgres import EmbeddedPostgres, create_database
from tessera_stack.process import ServerError, run_sync, spawn, stop_process, tail

from bench.harness import REPO_ROOT, BenchError, ScenarioFailed, free_port, markdown_table

DOCUMENT = REPO_ROOT / "docs" / "reliability.md"
"""Where `--write` records this scenario's figures."""

SERVICES = ("gateway", "catalog", "inference")
CLIENT_TIMEOUT_S = 10.0
"""A request without an answer after this is a hung request (an invariant fails)."""
SSE_READ_TIMEOUT_S = 20.0
"""The gateway sends a keep-alive comment every 15 s: silence beyond this is a stall."""
RECOVERY_TIMEOUT_S = 45.0
"""A fault the stack has not recovered from after this counts as not recovered."""
WRITERS = 4
WRITE_PAUSE_S = 0.05
RETRY_PAUSE_S = 0.2
WRITE_GIVE_UP_S = 30.0
"""A write still unanswered (201) after this is abandoned (it counts as not acknowledged)."""
DRAIN_TIMEOUT_S = 30.0
BURST = 48
"""Requests started at once just before a SIGTERM, so that some are in flight when it lands."""
ACCEPTABLE_5XX = frozenset({502, 503, 504})
# Rows of scikit-learn's breast-cancer data (10 "mean" features): the product
# then has a prediction, so the enriched view depends on the inference service.
FEATURES = [17.99, 10.38, 122.8, 1001.0, 0.1184, 0.2776, 0.3001, 0.1471, 0.2419, 0.07871]


@dataclass(frozen=True)
class Timing:
    """One run's durations: `--quick` shortens outages and pauses, not the checks."""

    steady_s: float
    """Load before the first fault."""
    down_s: float
    """How long a killed server stays down."""
    settle_s: float
    """Load after a recovery, before the next fault."""


FULL = Timing(steady_s=8.0, down_s=5.0, settle_s=3.0)
QUICK = Timing(steady_s=2.0, down_s=2.0, settle_s=1.0)


# --- what the clients saw ------------------------------------------------------


@dataclass
class Attempt:
    started: float
    ended: float
    status: int | None
    """None: no HTTP answer (the error says why)."""
    error: str | None = None
    timed_out: bool = False
    detail: str | None = None
    """Why it failed: `503 catalog unavailable: ...` from the problem body, or the error."""


@dataclass
class Write:
    sku: str
    key: str
    attempts: list[Attempt] = field(default_factory=list)
    product_id: str | None = None
    acknowledged_at: float | None = None


@dataclass
class Read:
    at: float
    ended: float
    status: int | None
    degraded: tuple[str, ...] = ()
    error: str | None = None
    """Why there was no HTTP answer (the httpx exception's name)."""
    detail: str | None = None
    """Why it failed, from the problem body (see `_why`)."""


@dataclass
class SseEvent:
    at: float
    sequence: int
    product_id: str | None


@dataclass
class Observations:
    """Appended to by the workload thread, read by the fault thread (lists are thread-safe)."""

    writes: list[Write] = field(default_factory=list)
    reads: list[Read] = field(default_factory=list)
    events: list[SseEvent] = field(default_factory=list)
    sse_connects: list[tuple[float, int | None, str | None]] = field(default_factory=list)
    """(when, status or None, error) of every SSE (re)connection attempt."""
    sse_stalls: int = 0

    def attempts(self) -> Iterator[Attempt]:
        for write in list(self.writes):
            yield from list(write.attempts)

    def events_by_product(self) -> dict[str, float]:
        """When the SSE reader first saw each product's event."""
        seen: dict[str, float] = {}
        for event in list(self.events):
            if event.product_id is not None:
                seen.setdefault(event.product_id, event.at)
        return seen


# --- the workload: writers, an enriched reader, an SSE reader --------------------


class Workload:
    """The clients, in a thread of their own with its own event loop."""

    def __init__(self, gateway_url: str, api_key: str, first_sequence: int) -> None:
        """Args:
        gateway_url: where the clients send their requests.
        api_key: a key with the catalog scopes.
        first_sequence: the stream's last sequence before the run (the SSE reader's start).
        """
        self.gateway_url = gateway_url
        self.headers = {"Authorization": f"Bearer {api_key}"}
        self._last_event_id = first_sequence
        self.seen = Observations()
        self._run_id = uuid.uuid4().hex[:8].upper()
        self._counter = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop_writing: asyncio.Event | None = None
        self._stop_all: asyncio.Event | None = None
        self._started = threading.Event()
        self._writers_done = threading.Event()
        self._burst_sent = threading.Event()
        self._burst_pending = 0
        self._thread = threading.Thread(target=self._main, name="faults-workload", daemon=True)

    def start(self) -> None:
        self._thread.start()
        self._started.wait()

    def stop_writing(self) -> None:
        if not self._thread.is_alive():
            return
        assert self._loop is not None
        assert self._stop_writing is not None
        self._loop.call_soon_threadsafe(self._stop_writing.set)
        # Each writer finishes the request it has in flight: cancelling it could
        # leave a write committed whose answer nobody read.
        self._writers_done.wait(timeout=CLIENT_TIMEOUT_S + 5)

    def stop(self) -> None:
        """Stop every client and wait for them (a no-op once stopped)."""
        if not self._thread.is_alive():
            return
        assert self._loop is not None
        assert self._stop_all is not None
        self.stop_writing()
        self._loop.call_soon_threadsafe(self._stop_all.set)
        self._thread.join(timeout=CLIENT_TIMEOUT_S + 5)

    def burst(self, service: str) -> None:
        """Start BURST concurrent requests that `service` serves; return once all are sent.

        "Sent" as far as a client can tell: each has its connection and has
        started writing; none of them is answered yet unless the server is quick.
        """
        assert self._loop is not None
        self._burst_sent.clear()
        self._burst_pending = BURST
        asyncio.run_coroutine_threadsafe(self._burst(service), self._loop)
        self._burst_sent.wait(timeout=CLIENT_TIMEOUT_S)

    async def _burst(self, service: str) -> None:
        async with httpx.AsyncClient(
            base_url=self.gateway_url,
            headers=self.headers,
            timeout=CLIENT_TIMEOUT_S,
            limits=httpx.Limits(max_connections=BURST),
        ) as client:
            await asyncio.gather(*(self._burst_one(client, service) for _ in range(BURST)))

    async def _burst_one(self, client: httpx.AsyncClient, service: str) -> None:
        # httpx's trace hook tells when the request line and headers are on the wire.
        async def trace(event: str, info: object) -> None:
            if event == "http11.send_request_headers.complete":
                self._burst_pending -= 1
                if self._burst_pending == 0:
                    self._burst_sent.set()

        started = time.monotonic()
        extensions = {"trace": trace}
        try:
            if service == "inference":
                response = await client.post(
                    "/v1/predict", json={"features": FEATURES}, extensions=extensions
                )
            else:
                response = await client.get(
                    "/v1/products", params={"limit": 20}, extensions=extensions
                )
        except httpx.HTTPError as error:
            self.seen.reads.append(
                Read(started, time.monotonic(), None, error=type(error).__name__)
            )
        else:
            self.seen.reads.append(
                Read(started, time.monotonic(), response.status_code, detail=_why(response))
            )

    def _main(self) -> None:
        asyncio.run(self._run())

    async def _run(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop_writing = asyncio.Event()
        self._stop_all = asyncio.Event()
        self._started.set()
        limits = httpx.Limits(max_connections=WRITERS + 4)
        async with httpx.AsyncClient(
            base_url=self.gateway_url,
            headers=self.headers,
            timeout=CLIENT_TIMEOUT_S,
            limits=limits,
        ) as client:
            readers = [
                asyncio.create_task(self._enriched_reader(client)),
                asyncio.create_task(self._sse_reader()),
            ]
            writers = [asyncio.create_task(self._writer(client)) for _ in range(WRITERS)]
            await asyncio.gather(*writers, return_exceptions=True)
            self._writers_done.set()
            await self._stop_all.wait()
            for task in readers:
                task.cancel()
            await asyncio.gather(*readers, return_exceptions=True)

    def _next_sku(self) -> str:
        self._counter += 1
        return f"FLT-{self._run_id}-{self._counter:06d}"

    async def _writer(self, client: httpx.AsyncClient) -> None:
        assert self._stop_writing is not None
        while not self._stop_writing.is_set():
            write = Write(sku=self._next_sku(), key=str(uuid.uuid4()))
            self.seen.writes.append(write)
            await self._complete(client, write)
            await asyncio.sleep(WRITE_PAUSE_S)

    async def _complete(self, client: httpx.AsyncClient, write: Write) -> None:
        """POST until a 201 or a final answer; retries keep the Idempotency-Key."""
        assert self._stop_writing is not None
        body = {
            "sku": write.sku,
            "name": "Fault-suite lamp",
            "description": "Written while something breaks.",
            "category": "home",
            "price": 19.99,
            "currency": "USD",
            "features": FEATURES,
        }
        first = time.monotonic()
        while time.monotonic() - first < WRITE_GIVE_UP_S:
            started = time.monotonic()
            try:
                response = await client.post(
                    "/v1/products", json=body, headers={"Idempotency-Key": write.key}
                )
            except httpx.TimeoutException as error:
                write.attempts.append(
                    Attempt(started, time.monotonic(), None, type(error).__name__, timed_out=True)
                )
            except httpx.TransportError as error:
                write.attempts.append(
                    Attempt(started, time.monotonic(), None, type(error).__name__)
                )
            else:
                write.attempts.append(
                    Attempt(started, time.monotonic(), response.status_code, detail=_why(response))
                )
                if response.status_code == 201:
                    write.product_id = str(response.json()["id"])
                    write.acknowledged_at = time.monotonic()
                    return
                if response.status_code != 429 and response.status_code < 500:
                    return  # a final answer (an anomaly the report shows)
            if self._stop_writing.is_set():
                return
            await asyncio.sleep(RETRY_PAUSE_S)

    async def _enriched_reader(self, client: httpx.AsyncClient) -> None:
        while True:
            await asyncio.sleep(0.2)
            acknowledged = [w for w in self.seen.writes[-50:] if w.product_id is not None]
            if not acknowledged:
                continue
            started = time.monotonic()
            try:
                response = await client.get(f"/v1/products/{acknowledged[-1].product_id}/enriched")
            except httpx.HTTPError as error:
                self.seen.reads.append(
                    Read(started, time.monotonic(), None, error=type(error).__name__)
                )
                continue
            degraded: tuple[str, ...] = ()
            if response.status_code == 200:
                degraded = tuple(response.json().get("degraded", []))
            self.seen.reads.append(Read(started, time.monotonic(), response.status_code, degraded))

    async def _sse_reader(self) -> None:
        timeout = httpx.Timeout(CLIENT_TIMEOUT_S, read=SSE_READ_TIMEOUT_S)
        async with httpx.AsyncClient(
            base_url=self.gateway_url, headers=self.headers, timeout=timeout
        ) as client:
            while True:
                try:
                    await self._follow(client)
                except httpx.ReadTimeout:
                    self.seen.sse_stalls += 1
                except httpx.HTTPError as error:
                    self.seen.sse_connects.append((time.monotonic(), None, type(error).__name__))
                await asyncio.sleep(0.2)

    async def _follow(self, client: httpx.AsyncClient) -> None:
        """Read one SSE connection to its end, resuming after the last event seen."""
        headers = {"Last-Event-ID": str(self._last_event_id)}
        async with client.stream("GET", "/v1/events", headers=headers) as response:
            self.seen.sse_connects.append((time.monotonic(), response.status_code, None))
            if response.status_code != 200:
                return
            event_id: str | None = None
            data: list[str] = []
            async for line in response.aiter_lines():
                if line.startswith("id:"):
                    event_id = line[3:].strip()
                elif line.startswith("data:"):
                    data.append(line[5:].removeprefix(" "))
                elif line == "" and event_id is not None:
                    self.seen.events.append(
                        SseEvent(time.monotonic(), int(event_id), _product_id("\n".join(data)))
                    )
                    # Kept at once: a connection that breaks mid-stream resumes here.
                    self._last_event_id = int(event_id)
                    event_id, data = None, []


def _why(response: httpx.Response) -> str | None:
    """`503: <problem title>: <detail>` of a failed answer (None for a 2xx)."""
    if response.is_success:
        return None
    with contextlib.suppress(ValueError, AttributeError):
        problem = response.json()
        return f"{response.status_code}: {problem.get('title')}: {problem.get('detail')}"
    return f"{response.status_code}: {response.text[:120]}"


def _product_id(data: str) -> str | None:
    with contextlib.suppress(ValueError, KeyError, TypeError):
        event = json.loads(data)["data"]
        if event.get("kind") == "product.created":
            return str(event["product"]["id"])
    return None


# --- the stack: PostgreSQL and NATS of our own, `tessera up` on top ---------------


def _pids(predicate: Callable[[list[str]], bool]) -> list[int]:
    """Processes whose command line satisfies `predicate` (found through /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            raw = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        args = [part.decode(errors="replace") for part in raw.split(b"\0") if part]
        if args and predicate(args):
            found.append(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _wait_gone(pid: int, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while _alive(pid):
        if time.monotonic() > deadline:
            raise BenchError(f"process {pid} did not exit within {timeout_s} s")
        time.sleep(0.02)


class Stack:
    """PostgreSQL, NATS and `tessera up`, with the handles the faults need."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.postgres = EmbeddedPostgres(root / "postgres")
        self.nats = EmbeddedNats(root / "nats")
        self.ports = {name: free_port() for name in SERVICES}
        self.data_dir = root / "up"
        self.log_file = root / "tessera-up.log"
        self.database_url = ""
        self._up: subprocess.Popen[bytes] | None = None

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.ports[name]}"

    def start(self) -> None:
        self.postgres.start()
        self.database_url = run_sync(create_database(self.postgres.dsn, "tessera"))
        self.nats.start()
        executable = Path(sys.executable).with_name("tessera")
        command = (
            [str(executable)]
            if executable.exists()
            else [sys.executable, "-m", "tessera_stack.cli"]
        )
        command += ["up", "--data-dir", str(self.data_dir)]
        for name, port in self.ports.items():
            command += [f"--{name}-port", str(port)]
        env = {**os.environ, "DATABASE_URL": self.database_url, "NATS_URL": self.nats.url}
        with self.log_file.open("wb") as log:
            # SIGINT is Ctrl-C: what a user does to stop it.
            self._up = spawn(command, stop_signal=signal.SIGINT, env=env, stdout=log, stderr=log)
        self.wait_all_ready(timeout_s=90.0)

    def stop(self) -> None:
        if self._up is not None:
            stop_process(self._up, timeout_s=30.0)
        self.nats.stop()
        self.postgres.stop()

    @property
    def up_running(self) -> bool:
        return self._up is not None and self._up.poll() is None

    def api_key(self) -> str:
        return (self.data_dir / "api-key").read_text().strip()

    def ready(self, name: str) -> bool:
        with contextlib.suppress(httpx.HTTPError):
            return httpx.get(f"{self.url(name)}/readyz", timeout=1.0).status_code == 200
        return False

    def wait_all_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while not all(self.ready(name) for name in SERVICES):
            if not self.up_running:
                raise BenchError(f"tessera up exited:\n{tail(self.log_file, 40)}")
            if time.monotonic() > deadline:
                raise BenchError(
                    f"the stack was not ready in {timeout_s} s:\n{tail(self.log_file)}"
                )
            time.sleep(0.2)

    def service_pid(self, name: str) -> int | None:
        """The process serving `name` on its port (`python -m tessera_<name>` or uvicorn)."""
        module, port = f"tessera_{name}", str(self.ports[name])

        def matches(args: list[str]) -> bool:
            serves = any(a == module or a.startswith(f"{module}.app:") for a in args)
            return serves and any(
                flag == "--port" and value == port for flag, value in itertools.pairwise(args)
            )

        pids = _pids(matches)
        return pids[0] if pids else None

    def nats_pid(self) -> int:
        store = str(self.nats.store_dir)
        pids = _pids(lambda args: "nats-server" in args[0] and store in args)
        if not pids:
            raise BenchError("the nats-server process was not found in /proc")
        return pids[0]

    def postgres_pid(self) -> int:
        # The postmaster's pid is the first line of its lock file.
        return int((self.postgres.data_dir / "postmaster.pid").read_text().split()[0])

    def stream_last_sequence(self) -> int:
        async def last() -> int:
            client = await nats.connect(self.nats.url, connect_timeout=2)
            try:
                info = await client.jetstream().stream_info(v1.CATALOG_STREAM)
                return int(info.state.last_seq)
            finally:
                await client.close()

        return run_sync(last())


# --- the faults -----------------------------------------------------------------


@dataclass
class Fault:
    name: str
    how: str
    service: str | None = None
    """The service the fault hits (it must be restarted), or None for a server fault."""
    sig: signal.Signals | None = None


@dataclass
class FaultResult:
    fault: Fault
    started: float
    """When the fault was injected."""
    cleared: float
    """When the server was started again (server faults); `started` otherwise."""
    ended: float = 0.0
    ready_s: float | None = None
    """The service answered /readyz from a new process, after the fault (service faults)."""
    writes_s: float | None = None
    """A write sent after `cleared` was answered 201, after `cleared`."""
    events_s: float | None = None
    """The SSE reader had every acknowledged write's event, one of them written after `cleared`."""
    prediction_s: float | None = None
    """The enriched view had its prediction again, after the fault (inference faults)."""
    in_flight: int = 0
    in_flight_answered: int = 0
    in_flight_dropped: list[str] = field(default_factory=list)
    """Why each request in flight at the signal that was not answered failed."""
    degraded_reads: int = 0
    wall_started: float = 0.0
    """`started` as a Unix time."""
    failure_details: list[str] = field(default_factory=list)
    """The distinct reasons (status and problem title) of the failed write attempts."""

    @property
    def recovered(self) -> bool:
        needed: list[float | None] = [self.writes_s, self.events_s]
        if self.fault.service is not None:
            needed.append(self.ready_s)
        if self.fault.service == "inference":
            needed.append(self.prediction_s)
        return all(value is not None for value in needed)


NATS_KILL = Fault("NATS", "kill -9 nats-server; start it again on the same port and store")
POSTGRES_KILL = Fault(
    "PostgreSQL", "kill -9 the postmaster; start it again on the same port and data"
)
CATALOG_KILL = Fault("catalog", "kill -9", "catalog", signal.SIGKILL)
FAULTS = (
    NATS_KILL,
    POSTGRES_KILL,
    Fault("inference", "kill -9", "inference", signal.SIGKILL),
    CATALOG_KILL,
    Fault("gateway", "SIGTERM under load", "gateway", signal.SIGTERM),
    Fault("catalog", "SIGTERM under load", "catalog", signal.SIGTERM),
    Fault("inference", "SIGTERM under load", "inference", signal.SIGTERM),
)


class Faults:
    def __init__(self, stack: Stack, workload: Workload, timing: Timing) -> None:
        self.stack = stack
        self.workload = workload
        self.seen = workload.seen
        self.timing = timing

    def inject(self, fault: Fault) -> FaultResult:
        """Inject `fault`, wait until the stack has recovered (or RECOVERY_TIMEOUT_S)."""
        old_pid: int | None = None
        if fault.service is None:
            is_nats = fault.name == "NATS"
            pid = self.stack.nats_pid() if is_nats else self.stack.postgres_pid()
            started = time.monotonic()
            os.kill(pid, signal.SIGKILL)
            _wait_gone(pid)
            time.sleep(self.timing.down_s)
            if is_nats:
                self.stack.nats.start()
            else:
                self._start_postgres()
            cleared = time.monotonic()
        else:
            assert fault.sig is not None
            old_pid = self.stack.service_pid(fault.service)
            if old_pid is None:
                raise BenchError(f"no {fault.service} process found in /proc")
            if fault.sig == signal.SIGTERM:
                self.workload.burst(fault.service)
            started = cleared = time.monotonic()
            os.kill(old_pid, fault.sig)
        # The services' log lines carry wall-clock times: this maps them to the fault.
        result = FaultResult(fault, started=started, cleared=cleared)
        result.wall_started = time.time() - (time.monotonic() - started)
        self._await_recovery(result, old_pid)
        return result

    def _start_postgres(self) -> None:
        # Backends of the killed postmaster may still hold its shared memory for a moment.
        for attempt in range(10):
            try:
                self.stack.postgres.start()
                return
            except ServerError:
                if attempt == 9:
                    raise
                time.sleep(0.5)

    def _await_recovery(self, result: FaultResult, old_pid: int | None = None) -> None:
        """Poll until every sign of recovery has been seen, or RECOVERY_TIMEOUT_S.

        Writes and events count once the fault is over: the server restarted, or
        the service ready again from a new process (a request a draining service
        still served says nothing about its successor). Times are reported from
        `reference`: the server's restart, or the signal.
        """
        fault = result.fault
        deadline = result.cleared + RECOVERY_TIMEOUT_S
        reference = result.cleared if fault.service is None else result.started
        over: float | None = result.cleared if fault.service is None else None
        before: list[str] = []
        while not result.recovered and time.monotonic() < deadline:
            time.sleep(0.1)
            now = time.monotonic()
            if fault.service is not None and result.ready_s is None:
                pid = self.stack.service_pid(fault.service)
                if pid is not None and pid != old_pid and self.stack.ready(fault.service):
                    result.ready_s = now - result.started
                    over = now
            if over is None:
                continue
            if not before:
                before = [
                    w.product_id
                    for w in list(self.seen.writes)
                    if w.product_id is not None
                    and w.acknowledged_at is not None
                    and w.acknowledged_at < over
                ]
            if result.writes_s is None:
                result.writes_s = self._first_201_after(over, reference)
            if result.writes_s is not None and result.events_s is None:
                result.events_s = self._caught_up(over, before, reference)
            if fault.service == "inference" and result.prediction_s is None:
                result.prediction_s = self._prediction_back(result)
        result.ended = time.monotonic()
        result.in_flight, result.in_flight_answered, result.in_flight_dropped = self._in_flight(
            result.started
        )
        result.degraded_reads = sum(
            1
            for r in list(self.seen.reads)
            if result.started <= r.at <= result.ended and "prediction" in r.degraded
        )
        window = [
            a
            for a in self.seen.attempts()
            if a.ended >= result.started and a.started < result.ended
        ]
        result.failure_details = sorted({a.detail for a in window if a.detail})

    def _first_201_after(self, since: float, reference: float) -> float | None:
        ended = [
            a.ended
            for w in list(self.seen.writes)
            for a in list(w.attempts)
            if a.started >= since and a.status == 201
        ]
        return min(ended) - reference if ended else None

    def _caught_up(self, since: float, before: list[str], reference: float) -> float | None:
        """When the SSE reader had the events of `before` and of a write acknowledged after `since`."""
        seen = self.seen.events_by_product()
        if any(product not in seen for product in before):
            return None
        after = [
            seen[w.product_id]
            for w in list(self.seen.writes)
            if w.product_id in seen and w.acknowledged_at is not None and w.acknowledged_at >= since
        ]
        if not after:
            return None
        arrivals = [seen[p] for p in before] + [min(after)]
        return max(arrivals) - reference

    def _prediction_back(self, result: FaultResult) -> float | None:
        if result.ready_s is None:
            return None
        ready_at = result.started + result.ready_s
        for read in list(self.seen.reads):
            if read.at >= ready_at and read.status == 200 and "prediction" not in read.degraded:
                return read.at - result.started
        return None

    def _in_flight(self, at: float) -> tuple[int, int, list[str]]:
        """Requests (writes and reads) in flight at `at`, and how many were answered.

        Answered: an HTTP answer other than 502/504. A dropped connection, or a
        502/504 (the gateway saw its upstream cut the request off or stall), means
        the stopping service abandoned a request; a 503 is the gateway's honest
        refusal of one the stopping service never took (it no longer accepts).
        """
        spans = [(a.started, a.ended, a.status, a.detail or a.error) for a in self.seen.attempts()]
        spans += [(r.at, r.ended, r.status, r.detail or r.error) for r in list(self.seen.reads)]
        in_flight = [(status, why) for started, ended, status, why in spans if started < at < ended]
        dropped = [str(why) for status, why in in_flight if status is None or status in (502, 504)]
        return len(in_flight), len(in_flight) - len(dropped), dropped


# --- checks and the report ---------------------------------------------------------


@dataclass
class Check:
    what: str
    passed: bool
    figures: str


def _stream_events(stack: Stack, first: int) -> dict[int, str | None]:
    """Every event of stream CATALOG after `first`: sequence -> created product id (or None)."""

    async def read() -> dict[int, str | None]:
        client = await nats.connect(stack.nats.url, connect_timeout=2)
        try:
            jetstream = client.jetstream()
            info = await jetstream.stream_info(v1.CATALOG_STREAM)
            events: dict[int, str | None] = {}
            for sequence in range(first + 1, int(info.state.last_seq) + 1):
                message = await jetstream.get_msg(v1.CATALOG_STREAM, sequence)
                events[sequence] = _product_id((message.data or b"").decode())
            return events
        finally:
            await client.close()

    return run_sync(read())


def _stored_products(stack: Stack) -> dict[str, str]:
    """sku -> id of every product this scenario wrote that is in the database."""

    async def read() -> dict[str, str]:
        connection = await asyncpg.connect(stack.database_url)
        try:
            rows = await connection.fetch(
                "SELECT sku, id::text FROM products WHERE sku LIKE 'FLT-%'"
            )
            return {row["sku"]: row["id"] for row in rows}
        finally:
            await connection.close()

    return run_sync(read())


def _service_5xx(log_file: Path) -> list[tuple[float, str]]:
    """(Unix time, what) of each answer with a 5xx other than 502/503/504 in the services' logs.

    The gateway turns an upstream 500 into a 502, so the client alone would not see
    the catalog's 500: each service's JSON access lines (in `tessera up`'s output,
    behind `<name> | `) tell. Unhandled errors are listed by exception too.
    """
    found: list[tuple[float, str]] = []
    for line in log_file.read_text(errors="replace").splitlines():
        name, bar, text = line.partition(" | ")
        if not bar or not text.startswith("{"):
            continue
        with contextlib.suppress(ValueError, TypeError):
            record = json.loads(text)
            at = datetime.fromisoformat(record["time"]).timestamp()
            status = record.get("status")
            if record.get("logger") == "tessera.access" and isinstance(status, int):
                if status >= 500 and status not in ACCEPTABLE_5XX:
                    route = f"{record.get('method')} {record.get('route')}"
                    found.append((at, f"{name.strip()} {route} {status}"))
            elif record.get("level") == "ERROR" and "unhandled" in str(record.get("message")):
                found.append((at, f"{name.strip()}: {record.get('message')}"))
    return found


def _checks(
    stack: Stack, seen: Observations, first: int, results: list[FaultResult]
) -> list[Check]:
    acknowledged = {w.sku: w.product_id for w in seen.writes if w.product_id is not None}
    stored = _stored_products(stack)
    lost = sorted(sku for sku, product in acknowledged.items() if stored.get(sku) != product)
    stream = _stream_events(stack, first)
    created = collections.Counter(p for p in stream.values() if p is not None)
    twice = sorted(p for p, count in created.items() if count > 1)
    not_on_stream = sorted(p for p in acknowledged.values() if p not in created)
    delivered = collections.Counter(event.sequence for event in seen.events)
    sse_missing = sorted(set(stream) - set(delivered))
    sse_twice = sorted(s for s, count in delivered.items() if count > 1)
    sse_unknown = sorted(set(delivered) - set(stream))
    attempts = list(seen.attempts())
    statuses = collections.Counter(a.status for a in attempts)
    server_errors = {s: n for s, n in statuses.items() if s is not None and s >= 500}
    bad_5xx = {s: n for s, n in server_errors.items() if s not in ACCEPTABLE_5XX}
    read_500 = sum(
        1
        for r in seen.reads
        if r.status is not None and r.status >= 500 and r.status not in ACCEPTABLE_5XX
    )
    service_5xx = collections.Counter(what for _, what in _service_5xx(stack.log_file))
    hung = sum(1 for a in attempts if a.timed_out)
    sigterm = [r for r in results if r.fault.sig == signal.SIGTERM]
    in_flight = sum(r.in_flight for r in sigterm)
    in_flight_answered = sum(r.in_flight_answered for r in sigterm)
    not_recovered = [f"{r.fault.name} ({r.fault.how})" for r in results if not r.recovered]
    all_ready = all(stack.ready(name) for name in SERVICES)
    return [
        Check(
            "no write answered 201 is lost",
            not lost,
            f"{len(acknowledged)} answered 201, {len(acknowledged) - len(lost)} of them in the database"
            + (f"; missing: {', '.join(lost[:5])}" if lost else ""),
        ),
        Check(
            "each product's `product.created` is on stream CATALOG exactly once",
            not twice and not not_on_stream,
            f"{len(created)} products on the stream ({len(stream)} events), "
            f"{len(not_on_stream)} acknowledged ones missing, {len(twice)} twice",
        ),
        Check(
            "every event of the stream reaches the SSE reader exactly once",
            not sse_missing and not sse_twice and not sse_unknown,
            f"{len(delivered)} of {len(stream)} delivered, {len(sse_missing)} missing"
            + (f" (sequences {', '.join(map(str, sse_missing[:10]))})" if sse_missing else "")
            + f", "
            f"{len(sse_twice)} twice, {len(seen.sse_connects)} (re)connections, "
            f"{seen.sse_stalls} stalls of {SSE_READ_TIMEOUT_S:g} s",
        ),
        Check(
            "no 500 (no 5xx but 502/503/504, at the client or in any service's log)",
            not bad_5xx and read_500 == 0 and not service_5xx,
            f"writes: {_answers(attempts)}; enriched reads with another 5xx: {read_500}; "
            "in the services' logs: "
            + ("; ".join(f"{n} x `{what}`" for what, n in service_5xx.most_common()) or "none"),
        ),
        Check(
            f"no hung request (no answer within {CLIENT_TIMEOUT_S:g} s)",
            hung == 0,
            f"{hung} of {len(attempts)} write attempts",
        ),
        Check(
            "requests in flight at a SIGTERM are answered",
            in_flight_answered == in_flight,
            f"{in_flight_answered} of {in_flight}",
        ),
        Check(
            "every fault is recovered from without a manual restart",
            not not_recovered and all_ready and stack.up_running,
            (
                "all recovered"
                if not not_recovered
                else f"not within {RECOVERY_TIMEOUT_S:g} s: {'; '.join(not_recovered)}"
            )
            + (
                ", every service ready at the end"
                if all_ready
                else ", NOT every service ready at the end"
            )
            + ("" if stack.up_running else ", tessera up exited"),
        ),
    ]


def _answers(attempts: list[Attempt]) -> str:
    """`12 x 201, 3 x 503, 2 x ConnectError`: HTTP statuses, then why others got none."""
    statuses = collections.Counter(a.status for a in attempts if a.status is not None)
    errors = collections.Counter(a.error for a in attempts if a.status is None)
    parts = [f"{n} x {s}" for s, n in sorted(statuses.items())]
    parts += [f"{n} x {e}" for e, n in sorted(errors.items(), key=lambda i: str(i[0]))]
    return ", ".join(parts) or "none"


def _seconds(value: float | None) -> str:
    return "not recovered" if value is None else f"{value:.1f} s"


def _fault_rows(
    seen: Observations, results: list[FaultResult], service_5xx: list[tuple[float, str]]
) -> list[list[object]]:
    rows: list[list[object]] = []
    for index, r in enumerate(results):
        # Every attempt that overlaps the fault, the one in flight when it hit included.
        attempts = [a for a in seen.attempts() if a.ended >= r.started and a.started < r.ended]
        # A fault's window runs until the next one starts.
        until = results[index + 1].wall_started if index + 1 < len(results) else float("inf")
        errors = sum(1 for at, _ in service_5xx if r.wall_started <= at < until)
        rows.append(
            [
                f"{r.fault.name}: {r.fault.how}",
                _answers(attempts),
                errors,
                "-" if r.fault.service is None else _seconds(r.ready_s),
                _seconds(r.writes_s) if any(a.status != 201 for a in attempts) else "never failed",
                _seconds(r.events_s),
                f"{_seconds(r.prediction_s)} ({r.degraded_reads} enriched reads degraded)"
                if r.fault.service == "inference"
                else "-",
                f"{r.in_flight_answered} of {r.in_flight}"
                if r.fault.sig == signal.SIGTERM
                else "-",
            ]
        )
    return rows


def _report(
    quick: bool,
    timing: Timing,
    seen: Observations,
    results: list[FaultResult],
    checks: list[Check],
    log_file: Path,
) -> str:
    # What `tessera up` itself said about each exit and restart (not the services' logs).
    supervisor = [
        line.strip()
        for line in log_file.read_text(errors="replace").splitlines()
        if " exited with status " in line or " is ready again after " in line
    ]
    lines = [
        "### Faults under load (`tessera up`)",
        "",
        f"{WRITERS} writers POST products through the gateway (Idempotency-Key on each, "
        f"retried with the same key), an enriched reader and an SSE reader run throughout; "
        f"servers stay down {timing.down_s:g} s. Times of the server faults count from the "
        "server's restart; those of the service faults from the signal.",
        "",
        markdown_table(
            [
                "fault",
                "write answers during the fault",
                "5xx or unhandled errors in the services' logs",
                "service ready again",
                "201s again",
                "SSE caught up",
                "prediction back",
                "in flight at SIGTERM answered",
            ],
            _fault_rows(seen, results, _service_5xx(log_file)),
        ),
        "",
        "Why requests failed, by fault (writes: distinct answers, each retried with its key):",
        "",
    ]
    for r in results:
        if r.fault.sig == signal.SIGTERM and r.in_flight_dropped:
            dropped = collections.Counter(r.in_flight_dropped)
            lines.append(
                f"- {r.fault.name}, {r.fault.how}: requests in flight at the signal not answered: "
                + "; ".join(f"{n} x `{why}`" for why, n in dropped.most_common())
            )
        if r.failure_details:
            shown = "; ".join(f"`{d}`" for d in r.failure_details[:3])
            more = len(r.failure_details) - 3
            lines.append(
                f"- {r.fault.name}, {r.fault.how}: writes answered {shown}"
                + (f" (+{more} more)" if more > 0 else "")
            )
    unanswered = [w for w in seen.writes if w.product_id is None]
    last_answers = collections.Counter(
        (w.attempts[-1].detail or w.attempts[-1].error or "?") if w.attempts else "not sent"
        for w in unanswered
    )
    lines += [
        "",
        f"Writes that ended without a 201 (given up after {WRITE_GIVE_UP_S:g} s, a final 4xx, "
        f"or cut short by the end of the run): {len(unanswered)}"
        + (
            ": " + "; ".join(f"{n} x `{a}`" for a, n in last_answers.most_common())
            if unanswered
            else ""
        ),
        "",
        "Invariants:",
        "",
    ]
    lines += [f"- {'PASS' if c.passed else 'FAIL'}: {c.what}: {c.figures}" for c in checks]
    lines += ["", "What `tessera up` printed about the services it restarted:", "", "```"]
    lines += [*supervisor, "```"]
    if quick:
        lines += ["", "_A --quick run: shorter outages._"]
    return "\n".join(lines)


KEPT_LOG = Path(tempfile.gettempdir()) / "tessera-faults-up.log"
"""The last run's `tessera up` output (its services' logs included), kept for a look."""


def run(quick: bool) -> str:
    """The scenario of `bench.run`: every fault in turn; raises ScenarioFailed with the report."""
    timing = QUICK if quick else FULL
    section, checks = run_faults(timing, FAULTS, quick=quick)
    failed = [c.what for c in checks if not c.passed]
    if failed:
        raise ScenarioFailed(
            f"{len(failed)} invariant(s) failed: {'; '.join(failed)} (log: {KEPT_LOG})", section
        )
    return section


def run_faults(
    timing: Timing, faults: Sequence[Fault], *, quick: bool = True
) -> tuple[str, list[Check]]:
    """Start the stack, inject `faults` in turn under load; the report and its checks."""
    root = Path(tempfile.mkdtemp(prefix="tessera-faults-"))
    stack = Stack(root)
    workload: Workload | None = None
    results: list[FaultResult] = []
    try:
        stack.start()
        first = stack.stream_last_sequence()
        workload = Workload(stack.url("gateway"), stack.api_key(), first)
        workload.start()
        injector = Faults(stack, workload, timing)
        time.sleep(timing.steady_s)
        for fault in faults:
            print(f"faults: {fault.name}: {fault.how}", file=sys.stderr, flush=True)
            result = injector.inject(fault)
            results.append(result)
            print(
                f"faults:   recovered={result.recovered} "
                f"ready={'-' if fault.service is None else _seconds(result.ready_s)} "
                f"201s={_seconds(result.writes_s)} sse={_seconds(result.events_s)}",
                file=sys.stderr,
                flush=True,
            )
            time.sleep(timing.settle_s)
        workload.stop_writing()
        _drain(stack, workload.seen)
        workload.stop()
        checks = _checks(stack, workload.seen, first, results)
        section = _report(quick, timing, workload.seen, results, checks, stack.log_file)
    finally:
        if workload is not None:
            workload.stop()
        stack.stop()
        with contextlib.suppress(OSError):
            shutil.copyfile(stack.log_file, KEPT_LOG)
        shutil.rmtree(root, ignore_errors=True)
    return section, checks


def _drain(stack: Stack, seen: Observations) -> None:
    """Wait until the SSE reader has every acknowledged write's event and the stream's last."""
    deadline = time.monotonic() + DRAIN_TIMEOUT_S
    while time.monotonic() < deadline:
        events = seen.events_by_product()
        if all(w.product_id in events for w in seen.writes if w.product_id is not None):
            last = stack.stream_last_sequence()
            if any(event.sequence >= last for event in list(seen.events)):
                return
        time.sleep(0.2)
