"""Predictions from the inference service over NATS request-reply (`inference.v1.predict`)."""

from __future__ import annotations

from collections.abc import Sequence

from tessera_contracts import v1
from tessera_runtime import nats_tracing
from tessera_runtime.messaging import NatsConnection


class InferenceUnavailable(Exception):
    """No prediction: NATS is not connected (timeouts and no-responders raise as nats-py's)."""


class InferenceClient:
    def __init__(self, nats: NatsConnection, timeout_s: float) -> None:
        self.nats = nats
        self.timeout_s = timeout_s

    async def predict(self, features: Sequence[float]) -> v1.PredictionResponse:
        """Classify `features`; raises on timeout, no responder or a `Problem` reply."""
        if not self.nats.connected:
            # Fail now rather than let nats-py buffer the request until a reconnect.
            raise InferenceUnavailable("NATS is not connected")
        request = v1.PredictionRequest(features=list(features))
        # X-Request-ID and traceparent go along, so inference logs the same request
        # id and its span is a child of this one.
        reply = await nats_tracing.request(
            self.nats.client,
            v1.PREDICT.name,
            v1.PREDICT.encode_request(request),
            timeout=self.timeout_s,
        )
        return v1.PREDICT.decode_reply(reply.data, reply.headers)
