"""The inference service's app factory.

Run it with `python -m tessera_inference` (port 8002): the HTTP server with the header
limits, timeouts and probe port of `tessera_runtime.server`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TypedDict

from fastapi import FastAPI
from prometheus_client import CollectorRegistry
from starlette.requests import Request
from tessera_runtime import (
    ReadinessCheck,
    configure_error_tracking,
    configure_logging,
    configure_tracing,
    create_service_app,
)

from tessera_inference import __version__
from tessera_inference.api import v1, v2
from tessera_inference.domain.registry import ModelRegistry
from tessera_inference.domain.service import InferenceService
from tessera_inference.messaging.worker import PredictWorker
from tessera_inference.metrics import InferenceMetrics
from tessera_inference.settings import Settings

DESCRIPTION = """\
ONNX models served side by side.

* **v1** `POST /v1/predict`: one sample, the default model, `model_version` "v1.0" or "v2.0".
* **v2** the Open Inference Protocol (KServe v2): `/v2/models/{name}[/versions/{version}]/infer`
  with batches of rows; errors are `{"error": "..."}`.
* **NATS** `inference.v1.predict` (request-reply, queue group `inference`): the v1 contract.

Concurrent requests for one model version share ONNX Runtime calls (dynamic batching).
"""


class State(TypedDict):
    settings: Settings
    service: InferenceService
    worker: PredictWorker | None


class ModelsMissing(Exception):
    """Readiness: the default model has no loaded version."""


class NatsUnavailable(Exception):
    """Readiness: the NATS worker is not subscribed (yet, or any more)."""


async def _models_ready(request: Request) -> None:
    service: InferenceService = request.state.service
    name = service.settings.default_model
    if name not in service.registry.names():
        raise ModelsMissing(f"default model {name!r} has no loaded version")


async def _nats_ready(request: Request) -> None:
    worker: PredictWorker | None = request.state.worker
    if worker is not None and not worker.ready:
        raise NatsUnavailable(f"not subscribed to {request.state.settings.nats_url}")


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    configure_logging(
        "inference", settings.log_level, flush_interval_s=settings.log_flush_interval_s
    )
    configure_error_tracking("inference", __version__, settings.sentry_dsn)
    configure_tracing("inference", __version__)
    # One registry per app, created here so the service's metrics exist before it runs.
    metrics_registry = CollectorRegistry()
    metrics = InferenceMetrics(metrics_registry)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[State]:
        # Loading takes milliseconds per model and happens before serving: no
        # request can be waiting on the event loop yet.
        registry = ModelRegistry.load(
            settings.model_dir,
            intra_op_threads=settings.onnx_intra_op_threads,
            inter_op_threads=settings.onnx_inter_op_threads,
        )
        service = InferenceService(registry, settings, metrics)
        worker = PredictWorker(service, settings) if settings.nats_enabled else None
        if worker is not None:
            worker.start()  # in the background: HTTP serves even while NATS is down
        try:
            yield {"settings": settings, "service": service, "worker": worker}
        finally:
            # NATS first: its in-flight requests still need the batchers.
            if worker is not None:
                await worker.stop()
            await service.close()

    checks = [ReadinessCheck("models", _models_ready)]
    if settings.nats_enabled and settings.nats_required_for_readiness:
        checks.append(ReadinessCheck("nats", _nats_ready))
    app = create_service_app(
        title="inference",
        version=__version__,
        lifespan=lifespan,
        routers=[v1.router, v2.router],
        registry=metrics_registry,
        readiness_checks=checks,
        description=DESCRIPTION,
    )
    return app
