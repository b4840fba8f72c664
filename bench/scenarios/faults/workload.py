"""The load the faults land on: writers, an enriched reader and an SSE reader.

The writers POST products through the gateway with an Idempotency-Key on each,
retried with the same key after a 429, a 5xx or a connection error, as a careful
client does; the reader GETs recent products' `/enriched` view; the SSE reader
follows `/v1/events`, reconnecting with `Last-Event-ID`.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
import uuid

import httpx

from bench.scenarios.faults.observations import (
    Attempt,
    Observations,
    Read,
    SseEvent,
    Write,
    created_product_id,
)

CLIENT_TIMEOUT_S = 10.0
"""A request without an answer after this is a hung request (an invariant fails)."""
SSE_READ_TIMEOUT_S = 20.0
"""The gateway sends a keep-alive comment every 15 s: silence beyond this is a stall."""
WRITERS = 4
WRITE_PAUSE_S = 0.05
RETRY_PAUSE_S = 0.2
WRITE_GIVE_UP_S = 30.0
"""A write still unanswered (201) after this is abandoned (it counts as not acknowledged)."""
BURST = 48
"""Requests started at once just before a SIGTERM, so that some are in flight when it lands."""
# Rows of scikit-learn's breast-cancer data (10 "mean" features): the product
# then has a prediction, so the enriched view depends on the inference service.
FEATURES = [17.99, 10.38, 122.8, 1001.0, 0.1184, 0.2776, 0.3001, 0.1471, 0.2419, 0.07871]


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
                Read(started, time.monotonic(), response.status_code, detail=why_failed(response))
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
                    Attempt(
                        started, time.monotonic(), response.status_code, detail=why_failed(response)
                    )
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
                        SseEvent(
                            time.monotonic(), int(event_id), created_product_id("\n".join(data))
                        )
                    )
                    # Kept at once: a connection that breaks mid-stream resumes here.
                    self._last_event_id = int(event_id)
                    event_id, data = None, []


def why_failed(response: httpx.Response) -> str | None:
    """`503: <problem title>: <detail>` of a failed answer (None for a 2xx)."""
    if response.is_success:
        return None
    with contextlib.suppress(ValueError, AttributeError):
        problem = response.json()
        return f"{response.status_code}: {problem.get('title')}: {problem.get('detail')}"
    return f"{response.status_code}: {response.text[:120]}"
