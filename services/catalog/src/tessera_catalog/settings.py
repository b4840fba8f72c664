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
    part_timeout_s: float = Field(default=0.5, gt=0)
    """Time budget of each part of an enriched product (rows, reviews, inventory, prediction)."""
    prediction_timeout_s: float = Field(default=0.5, gt=0)
    """Time budget of the NATS request to inference for an enriched product."""
    outbox_poll_interval_s: float = Field(default=0.2, gt=0)
    log_level: str = "INFO"
