"""Inference settings, read from `INFERENCE_*` environment variables."""

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field
from pydantic_settings import SettingsConfigDict
from tessera_runtime.messaging import NatsSettings
from tessera_runtime.server import ServerSettings

# The trained models ship inside the package, so a wheel or an image needs nothing else.
PACKAGED_MODELS = Path(__file__).parent / "models"


class BatchOverride(BaseModel):
    """Batching settings of one model (or one model version); unset fields keep the global ones."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool | None = None
    max_batch_size: int | None = Field(default=None, ge=1)
    max_wait_ms: float | None = Field(default=None, ge=0)


class Settings(ServerSettings, NatsSettings):
    model_config = SettingsConfigDict(env_prefix="INFERENCE_", env_file=".env", extra="ignore")

    port: int = Field(default=8002, ge=0, le=65535)
    """Port to listen on."""

    model_dir: Path = PACKAGED_MODELS
    """Directory of model directories (`<name>/<version>/model.onnx` + `model.json`)."""
    default_model: str = "breast-cancer"
    """The model the v1 API and the NATS subject serve; `model_version` picks its version."""
    nats_url: str = "nats://127.0.0.1:4222"
    """NATS server for the `inference.v1.predict` queue-group worker."""
    nats_enabled: bool = True
    nats_queue: str = "inference"
    """Queue group: replicas share the subject, each request goes to one of them."""
    nats_max_in_flight: int = Field(default=256, ge=1)
    """NATS requests handled concurrently; more wait in the subscription (back-pressure)."""
    nats_required_for_readiness: bool = True
    """Whether `/readyz` fails while NATS is unreachable. HTTP inference works
    without NATS; set False where HTTP callers must keep reaching the pod
    during a NATS outage (see docs/inference.md)."""
    nats_reconnect_wait_s: float = Field(default=2.0, gt=0)
    """Pause between connection attempts while NATS is unreachable (at start or later)."""
    # nats_connect_timeout_s and nats_drain_timeout_s (also the bound on answering the
    # requests in flight at shutdown): NatsSettings's, with its defaults.

    batching_enabled: bool = True
    max_batch_size: int = Field(default=64, ge=1)
    """Most rows per ONNX Runtime call; a single request with more rows runs alone."""
    max_batch_wait_ms: float = Field(default=0.0, ge=0)
    """Longest a request waits for others to share its call. 0 (default, see
    docs/inference.md for the numbers) gathers only the requests that arrived in
    the same event-loop iteration, so a lone caller never waits. Under uvloop,
    waits are rounded to whole milliseconds."""
    batch_overrides: dict[str, BatchOverride] = Field(default_factory=dict)
    """Per model (`"breast-cancer"`) or per version (`"breast-cancer/2.0"`), as JSON in
    `INFERENCE_BATCH_OVERRIDES`; a version entry beats a model entry."""

    max_rows_per_request: int = Field(default=4096, ge=1)
    """Largest Open Inference Protocol batch (rows) one request may send."""

    inference_threads: int = Field(default=1, ge=1)
    """Threads that run ONNX Runtime calls (off the event loop). On a 2-core pod one
    thread computes while the event loop keeps the other core."""
    onnx_intra_op_threads: int = Field(default=1, ge=1)
    onnx_inter_op_threads: int = Field(default=1, ge=1)
    log_level: str = "INFO"
