"""Inference settings, read from `INFERENCE_*` environment variables."""

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

# The trained models ship inside the package, so a wheel or an image needs nothing else.
PACKAGED_MODELS = Path(__file__).parent / "models"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="INFERENCE_", env_file=".env", extra="ignore")

    model_dir: Path = PACKAGED_MODELS
    """Directory of model directories (`<name>/<version>/model.onnx` + `model.json`)."""
    nats_url: str = "nats://127.0.0.1:4222"
    """NATS server for the `inference.v1.predict` queue-group worker."""
    nats_enabled: bool = True
    batching_enabled: bool = True
    max_batch_size: int = Field(default=64, ge=1)
    max_batch_wait_ms: float = Field(default=2.0, ge=0)
    log_level: str = "INFO"
