"""The NATS worker: `inference.v1.predict` request-reply in the queue group "inference".

The service must serve HTTP even when NATS is down, so the connection
(`tessera_runtime.messaging`) is made in the background: `start()` returns at
once, the connection keeps retrying every `nats_reconnect_wait_s`, the worker
subscribes once it is connected, and readiness reports "nats" as down until
then. Every request gets a reply: the prediction, or a problem
(`Content-Type: application/problem+json`), never silence. Each request
served writes one access line (logger `tessera.access`, like HTTP requests)
carrying the request id and trace id of its headers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from tessera_contracts import PROBLEM_HEADERS
from tessera_contracts.v1.subjects import PREDICT
from tessera_runtime import ACCESS_LOGGER, AccessLog, error_problem, nats_tracing
from tessera_runtime.context import REQUEST_ID_HEADER
from tessera_runtime.messaging import NatsConnection
from tessera_runtime.tasks import cancel_and_wait, finish_within

from tessera_inference.domain.service import InferenceService
from tessera_inference.settings import Settings

logger = logging.getLogger(__name__)


class PredictWorker:
    def __init__(self, service: InferenceService, settings: Settings) -> None:
        self._service = service
        self._settings = settings
        self.nats = NatsConnection(
            settings.nats_url, name="tessera-inference", timing=settings.nats_timing
        )
        self.nats.on_connected(self._subscribe)
        self._subscription: Subscription | None = None
        self._slots = asyncio.Semaphore(settings.nats_max_in_flight)
        self._tasks: set[asyncio.Task[None]] = set()
        self._access_log = AccessLog(ACCESS_LOGGER)

    @property
    def ready(self) -> bool:
        """Subscribed and connected (False while NATS is unreachable)."""
        return self._subscription is not None and self.nats.connected

    def start(self) -> None:
        self.nats.start()

    async def _subscribe(self) -> None:
        if self._subscription is not None:
            return  # nats-py subscribes again by itself after a reconnect
        self._subscription = await self.nats.client.subscribe(
            PREDICT.name, queue=self._settings.nats_queue, cb=self._on_message
        )
        # Ready only once the server has the subscription (a round trip).
        await self.nats.client.flush(timeout=self.nats.timing.connect_timeout_s)  # type: ignore[arg-type]  # int by annotation, any seconds in use
        logger.info(
            "nats subscribed",
            extra={"subject": PREDICT.name, "queue": self._settings.nats_queue},
        )

    async def _on_message(self, msg: Msg) -> None:
        # nats-py awaits this callback before delivering the next message, so
        # each request runs in its own task (which is what lets concurrent
        # requests meet in the batcher). The semaphore bounds them: when it is
        # full, messages wait in the subscription's queue.
        await self._slots.acquire()
        task = asyncio.create_task(self._handle(msg))
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._slots.release()

    async def _handle(self, msg: Msg) -> None:
        with nats_tracing.consume(msg, consumer_group=self._settings.nats_queue) as context:
            if not msg.reply:
                logger.warning("predict request without a reply subject dropped")
                return
            started = time.perf_counter()
            # The request id goes back, as X-Request-ID does over HTTP, so a
            # caller can quote it when reporting a problem.
            headers = {REQUEST_ID_HEADER: context.request_id}
            status, model_version = 200, None
            try:
                request = PREDICT.decode_request(msg.data)
                model_version = request.model_version
                answer = await self._service.predict_v1(request, "nats")
                model_version = answer.model_version
                body = PREDICT.encode_reply(answer)
            except Exception as error:  # every request gets an answer, a problem if need be
                problem = error_problem(
                    error, instance=None, where=f"NATS {msg.subject}", route=msg.subject
                )
                headers.update(PROBLEM_HEADERS)
                status, body = problem.status, PREDICT.encode_problem(problem)
            replied = True
            try:
                await self.nats.client.publish(msg.reply, body, headers=headers)
            except Exception:  # the connection dropped: the requester times out
                replied = False
                logger.warning("could not send the predict reply", exc_info=True)
            self._log(msg.subject, model_version, status, replied, time.perf_counter() - started)

    def _log(
        self, subject: str, model_version: str | None, status: int, replied: bool, duration: float
    ) -> None:
        # The NATS counterpart of the HTTP access line, on the same logger (one
        # level silences both). The bound context adds request_id and trace_id
        # from the message headers, so a request can be followed from the
        # gateway through the catalog to here.
        if not self._access_log.enabled(logging.INFO):
            return
        extra = {
            "transport": "nats",
            "subject": subject,
            "model": self._settings.default_model,
            "model_version": model_version,
            "status": status,
            "outcome": _outcome(status),
            "replied": replied,
            "duration_ms": round(duration * 1000, 3),
        }
        self._access_log.write(logging.INFO, f"NATS {subject} {status}", extra)

    async def stop(self) -> None:
        """Stop taking requests, answer those in flight, close the connection.

        Each step is bounded by `nats_drain_timeout_s`: a request still running
        after it is cancelled (its caller times out), so shutdown always ends.
        """
        bound = self.nats.timing.drain_timeout_s
        subscription = self._subscription
        if subscription is not None and self.nats.connected:
            with contextlib.suppress(Exception):
                # Unsubscribe, then let the messages already delivered be taken.
                await finish_within(subscription.drain(), bound)  # type: ignore[no-untyped-call]  # nats-py leaves it unannotated
        if self._tasks:
            _, running = await asyncio.wait(set(self._tasks), timeout=bound)
            if running:
                logger.warning(
                    "%d NATS requests still running after %gs at shutdown; cancelled",
                    len(running),
                    bound,
                )
            for task in running:
                await cancel_and_wait(task)
        # Sends the replies still buffered, then closes.
        await self.nats.close()


def _outcome(status: int) -> str:
    """The `outcome` label of inference_requests_total for a reply status."""
    if status < 400:
        return "ok"
    return "invalid" if status < 500 else "error"
