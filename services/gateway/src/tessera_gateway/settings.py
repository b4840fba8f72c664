"""Gateway settings, read from `GATEWAY_*` environment variables.

Every limit the gateway enforces is a setting, so operators tune it per
environment (a ConfigMap; the API key hashes come from a Secret).
"""

from typing import Literal, Self

from pydantic import Field, HttpUrl, field_validator, model_validator
from pydantic_settings import SettingsConfigDict
from tessera_runtime.messaging import NatsSettings
from tessera_runtime.server import ServerSettings

from tessera_gateway.domain.auth import parse_key_entries


class Settings(ServerSettings, NatsSettings):
    model_config = SettingsConfigDict(
        env_prefix="GATEWAY_", env_file=".env", extra="ignore", use_attribute_docstrings=True
    )

    # `port` is the base class's field as it is: its default, 8000, is the gateway's.

    catalog_url: HttpUrl = HttpUrl("http://127.0.0.1:8001")
    inference_url: HttpUrl = HttpUrl("http://127.0.0.1:8002")
    nats_url: str = "nats://127.0.0.1:4222"
    """NATS with JetStream: the gateway reads the CATALOG stream for `/v1/events`."""
    log_level: str = "INFO"
    access_log: bool = True
    """One JSON line per request (logger `tessera.access`); off, only warnings and errors."""

    # --- authentication -------------------------------------------------------
    api_keys: str = ""
    """Comma-separated `id:sha256-hex:scope1 scope2` entries (hashes, never keys).

    A key looks like `tsk_<id>_<secret>`; its entry holds the SHA-256 hex digest
    of the whole key. Scopes: `catalog:read`, `catalog:write`, `inference:predict`.
    """
    anonymous_reads: bool = True
    """Let requests without a key use GET operations (rate limited per client address)."""
    auth_failure_rate_per_s: float = Field(default=0.1, gt=0)
    """Failed key checks (401) regained per second per client address: brute-force
    protection. An address out of attempts gets 429 for every request with a key."""
    auth_failure_burst: int = Field(default=10, ge=1)
    """Failed key checks one client address may make at once before it is blocked."""

    # --- rate limiting (token bucket per key, or per client address) -----------
    rate_limit_per_s: float = Field(default=100.0, gt=0)
    """Sustained requests per second for one API key."""
    rate_limit_burst: int = Field(default=200, ge=1)
    """Bucket size for one API key: how many requests may arrive at once."""
    anonymous_rate_limit_per_s: float = Field(default=20.0, gt=0)
    anonymous_rate_limit_burst: int = Field(default=40, ge=1)
    rate_limit_max_buckets: int = Field(default=100_000, ge=1)
    """Buckets kept in memory; the least recently used is dropped beyond this."""

    # --- request limits and CORS ----------------------------------------------
    max_body_bytes: int = Field(default=1_048_576, ge=0)
    """Largest request body accepted (413 beyond it), counted while it streams in."""
    cors_allow_origins: list[str] = []
    """Origins allowed by CORS, as a JSON list (`["https://app.example"]`); empty: CORS off."""
    cors_allow_credentials: bool = False
    cors_max_age_s: int = Field(default=600, ge=0)

    # --- upstreams -------------------------------------------------------------
    catalog_timeout_s: float = Field(default=5.0, gt=0)
    """Deadline for the catalog's answer (retries included; the queue wait is not)."""
    inference_timeout_s: float = Field(default=5.0, gt=0)
    """Deadline for the inference service's answer (retries included; the queue wait is not)."""
    connect_timeout_s: float = Field(default=1.0, gt=0)
    upstream_max_connections: int = Field(default=64, ge=1)
    """Requests in flight (and keep-alive connections) per upstream and gateway process.
    More wait in a FIFO queue, so an overloaded upstream is not pushed further."""
    upstream_queue_timeout_s: float = Field(default=5.0, gt=0)
    """How long a request may wait for one of those connections before a 503."""
    upstream_keepalive_s: float = Field(default=4.0, gt=0)
    """Idle time after which a pooled upstream connection is dropped; keep it below the
    upstream's own keep-alive timeout (uvicorn: 5 s) so the gateway never reuses a
    connection the upstream is closing."""
    upstream_client: Literal["aiohttp", "httpx"] = "aiohttp"
    """HTTP client of the pass-through path; see docs/gateway.md (performance)."""

    retry_max_attempts: int = Field(default=3, ge=1)
    """Attempts per idempotent request, the first included."""
    retry_backoff_s: float = Field(default=0.05, ge=0)
    """Base of the exponential backoff (full jitter) between attempts."""
    retry_backoff_max_s: float = Field(default=1.0, ge=0)
    retry_budget_ratio: float = Field(default=0.2, ge=0)
    """Retries earned per request: retries stay below this share of the traffic."""
    retry_budget_min: int = Field(default=10, ge=0)
    """Retries allowed before any traffic earned them (and the floor after a quiet spell)."""

    breaker_failure_threshold: int = Field(default=5, ge=1)
    """Consecutive failures of an upstream that open its circuit."""
    breaker_open_s: float = Field(default=5.0, gt=0)
    """How long an open circuit fails fast before letting a probe through."""
    breaker_half_open_probes: int = Field(default=1, ge=1)
    """Requests let through at once while half-open; their success closes the circuit."""

    # --- events (SSE) ----------------------------------------------------------
    events_batch: int = Field(default=64, ge=1)
    """Messages fetched from JetStream at a time per SSE client (bounds its memory)."""
    events_ping_s: float = Field(default=15.0, gt=0)
    """Interval of SSE comments that keep idle connections open through proxies."""
    events_max_clients: int = Field(default=1000, ge=1)
    """Concurrent SSE clients per gateway process (503 beyond it)."""
    events_resubscribe_backoff_s: float = Field(default=0.1, gt=0)
    """Base of the backoff (exponential, full jitter) between attempts of an SSE client
    to reopen its consumer while the stream is unavailable; reset once it works."""
    events_resubscribe_backoff_max_s: float = Field(default=5.0, gt=0)
    """Longest of those pauses, however many attempts have failed."""
    events_resubscribe_jitter_s: float = Field(default=0.3, ge=0)
    """Longest random pause of an SSE client before it reopens its consumer once NATS
    is back. The reconnection wakes every client at once; the spread keeps their
    JetStream calls from all reaching the server at the same moment. It adds up to
    this much to a client's resumption."""
    events_retry_ms: int = Field(default=1000, ge=0)
    """Reconnection delay suggested to SSE clients (`retry:`) when the gateway ends
    their stream at shutdown."""
    events_shutdown_grace_s: float = Field(default=2.0, ge=0)
    """How long SSE streams get at shutdown to send their last line and end cleanly;
    keep it below `graceful_shutdown_s`, the server's own bound."""
    events_consumer_inactive_s: float = Field(default=30.0, gt=0)
    """How long NATS keeps the consumer of an SSE client whose gateway vanished
    without deleting it (a crash). Keep it above `events_ping_s`, the longest an
    idle client goes between two pulls."""
    nats_reconnect_wait_s: float = Field(default=0.5, gt=0)
    """Pause between attempts to reach NATS again after losing it (so SSE clients
    resume about this soon after NATS is back)."""
    # nats_connect_timeout_s, nats_jetstream_timeout_s and nats_drain_timeout_s:
    # NatsSettings's, with its defaults.

    @field_validator("api_keys")
    @classmethod
    def _api_keys_parse(cls, value: str) -> str:
        # Fail at startup, naming the bad entry, rather than at the first request.
        parse_key_entries(value)
        return value

    @model_validator(mode="after")
    def _events_end_within_the_shutdown(self) -> Self:
        # A stream still saying goodbye when the server's bound runs out is cut off,
        # which is what the grace period is there to avoid. 0 (no goodbye) always fits.
        if (
            self.events_shutdown_grace_s
            and self.events_shutdown_grace_s >= self.graceful_shutdown_s
        ):
            raise ValueError(
                f"GATEWAY_EVENTS_SHUTDOWN_GRACE_S ({self.events_shutdown_grace_s} s) must be "
                f"below GATEWAY_GRACEFUL_SHUTDOWN_S ({self.graceful_shutdown_s} s): SSE "
                "streams must end within the server's graceful shutdown, or they are cut off"
            )
        return self
