"""Catalog settings, read from `CATALOG_*` environment variables."""

from pydantic import Field, PostgresDsn
from pydantic_settings import SettingsConfigDict
from tessera_runtime.messaging import NatsSettings
from tessera_runtime.server import ServerSettings


class Settings(ServerSettings, NatsSettings):
    model_config = SettingsConfigDict(env_prefix="CATALOG_", env_file=".env", extra="ignore")

    port: int = Field(default=8001, ge=0, le=65535)
    """Port to listen on."""

    database_url: PostgresDsn
    """PostgreSQL the catalog owns (schema, outbox, idempotency keys)."""
    nats_url: str = "nats://127.0.0.1:4222"
    """NATS with JetStream: events out, inference requests over request-reply."""
    pool_min_size: int = Field(default=2, ge=0)
    pool_max_size: int = Field(default=10, ge=1)
    pool_acquire_timeout_s: float = Field(default=2.0, gt=0)
    """How long a request waits for a free pool connection before answering 503."""
    statement_timeout_s: float = Field(default=5.0, gt=0)
    """PostgreSQL `statement_timeout` of the pool's sessions: a stuck query ends as a 503."""
    part_timeout_s: float = Field(default=0.5, gt=0)
    """Time budget of each optional database part of an enriched product (reviews,
    inventory); a part over it is left out and named in `degraded`."""
    product_timeout_s: float = Field(default=1.0, gt=0)
    """Time budget of the product row of an enriched product. It is not optional
    (no product, no answer), so it gets longer before the request fails with 503."""
    prediction_timeout_s: float = Field(default=0.5, gt=0)
    """Time budget of the NATS request to inference for an enriched product."""
    enriched_review_limit: int = Field(default=5, ge=0, le=50)
    """Most recent reviews embedded in an enriched product (the summary covers all)."""
    outbox_poll_interval_s: float = Field(default=0.2, gt=0)
    """Fallback poll of the outbox relay; LISTEN/NOTIFY normally wakes it at once."""
    outbox_batch_size: int = Field(default=100, ge=1, le=10_000)
    """Outbox rows the relay publishes per transaction."""
    outbox_backoff_initial_s: float = Field(default=0.1, gt=0)
    """First pause of the relay after a failed round (NATS or PostgreSQL down, no
    ack). It doubles with each further failure up to `outbox_backoff_max_s`, each
    pause drawn between half and all of its step (jitter), and starts over after
    a round that works."""
    outbox_backoff_max_s: float = Field(default=5.0, gt=0)
    """Cap of the relay's backoff. The backoff ends early when the cause is gone:
    NATS reconnecting, or the LISTEN connection to PostgreSQL coming back."""
    outbox_listen_retry_max_s: float = Field(default=1.0, gt=0)
    """Longest pause between attempts to reopen the relay's LISTEN connection once
    it is lost (backing off from `outbox_backoff_initial_s`). Reopening it ends
    the relay's backoff, so this bounds how late the relay resumes after
    PostgreSQL comes back."""
    outbox_pending_refresh_s: float = Field(default=1.0, gt=0)
    """How often `catalog_outbox_pending` is recounted, whatever the relay is doing
    (also while it backs off or PostgreSQL is unreachable)."""
    outbox_shutdown_grace_s: float = Field(default=5.0, ge=0)
    """At shutdown, how long the relay keeps publishing pending events (retrying
    through a failure) before it stops; what it leaves stays in the outbox for
    the next relay. It runs after uvicorn's drain, within the pod's grace period."""
    outbox_retention_s: float = Field(default=7 * 24 * 3600, gt=0)
    """Published outbox rows older than this are deleted (the stream keeps the events)."""
    idempotency_ttl_s: float = Field(default=24 * 3600, gt=0)
    """How long an Idempotency-Key is remembered."""
    nats_required_for_readiness: bool = False
    """Whether `/readyz` fails while NATS is unreachable. Off by default: without
    NATS the catalog still serves every request (events wait in the outbox,
    enriched products omit the prediction), and an unready catalog would turn a
    NATS outage into a catalog outage. NATS state is in `/metrics` either way."""
    # nats_connect_timeout_s, nats_reconnect_wait_s, nats_jetstream_timeout_s and
    # nats_drain_timeout_s: NatsSettings's, with its defaults.
    nats_publish_timeout_s: float = Field(default=2.0, gt=0)
    """How long the relay waits for JetStream to acknowledge one event."""
    stream_max_age_s: float = Field(default=7 * 24 * 3600, gt=0)
    """Retention of stream CATALOG when the catalog creates it."""
    stream_duplicate_window_s: float = Field(default=120.0, gt=0)
    """JetStream drops a re-sent event (same Nats-Msg-Id) within this window."""
    stream_replicas: int = Field(default=1, ge=1, le=5)
    """Replicas of stream CATALOG when the catalog creates it (3 on a NATS cluster)."""
    log_level: str = "INFO"
