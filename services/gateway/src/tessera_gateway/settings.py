"""Gateway settings, read from `GATEWAY_*` environment variables."""

from pydantic import Field, HttpUrl
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="GATEWAY_", env_file=".env", extra="ignore")

    catalog_url: HttpUrl = HttpUrl("http://127.0.0.1:8001")
    inference_url: HttpUrl = HttpUrl("http://127.0.0.1:8002")
    nats_url: str = "nats://127.0.0.1:4222"
    """NATS with JetStream: the gateway reads the CATALOG stream for `/v1/events`."""
    api_keys: str = ""
    """API keys as `id:sha256-hex:scope1 scope2` entries separated by commas (hashes, never keys)."""
    anonymous_reads: bool = True
    upstream_timeout_s: float = Field(default=5.0, gt=0)
    log_level: str = "INFO"
