"""Catalog settings, read from `CATALOG_*` environment variables."""

from pydantic import Field, PostgresDsn
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CATALOG_", env_file=".env", extra="ignore")

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
    outbox_backoff_max_s: float = Field(default=5.0, gt=0)
    """Longest wait between relay attempts while NATS is down (doubling from the poll interval)."""
    outbox_retention_s: float = Field(default=7 * 24 * 3600, gt=0)
    """Published outbox rows older than this are deleted (the stream keeps the events)."""
    idempotency_ttl_s: float = Field(default=24 * 3600, gt=0)
    """How long an Idempotency-Key is remembered."""
    nats_required_for_readiness: bool = False
    """Whether `/readyz` fails while NATS is unreachable. Off by default: without
    NATS the catalog still serves every request (events wait in the outbox,
    enriched products omit the prediction), and an unready catalog would turn a
    NATS outage into a catalog outage. NATS state is in `/metrics` either way."""
    nats_connect_timeout_s: float = Field(default=2.0, gt=0)
    nats_reconnect_wait_s: float = Field(default=1.0, gt=0)
    """Pause between NATS (re)connect attempts; the catalog keeps trying forever."""
    nats_publish_timeout_s: float = Field(default=2.0, gt=0)
    """How long the relay waits for JetStream to acknowledge one event."""
    stream_max_age_s: float = Field(default=7 * 24 * 3600, gt=0)
    """Retention of stream CATALOG when the catalog creates it."""
    stream_duplicate_window_s: float = Field(default=120.0, gt=0)
    """JetStream drops a re-sent event (same Nats-Msg-Id) within this window."""
    stream_replicas: int = Field(default=1, ge=1, le=5)
    """Replicas of stream CATALOG when the catalog creates it (3 on a NATS cluster)."""
    log_level: str = "INFO"
