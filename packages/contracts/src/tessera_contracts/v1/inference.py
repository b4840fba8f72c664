"""v1 prediction: `POST /v1/predict` and NATS `inference.v1.predict` (the seed contract)."""

from __future__ import annotations

from datetime import datetime
from typing import Final

from pydantic import Field

from tessera_contracts._base import Contract
from tessera_contracts._types import FeatureVector

BREAST_CANCER_LABELS: Final = ("malignant", "benign")
"""Class names by index, as in scikit-learn's breast-cancer data set (1 = benign)."""


class PredictionRequest(Contract):
    """Features of one sample to classify."""

    # Lax (Pydantic's default) on purpose: the seed service accepted numeric
    # strings, and rejecting them now would break existing v1 clients.
    features: FeatureVector
    """The ten "mean" measurements (radius, texture, perimeter, area, smoothness,
    compactness, concavity, concave points, symmetry, fractal dimension), each
    finite and >= 0."""
    model_version: str = "v1.0"
    """Version of the model to use."""
    confidence_threshold: float = Field(default=0.5, ge=0, le=1)
    """Minimum probability of class 1 (benign) for the prediction to be 1; below
    it the prediction is 0 (malignant)."""


class PredictionResponse(Contract):
    """The predicted class of one sample."""

    prediction: int
    """Predicted class index; 1 = benign (positive), 0 = malignant, as in scikit-learn."""
    confidence: float
    """Probability the model gives the predicted class, in [0, 1]."""
    model_version: str
    """Version of the model that answered."""
    timestamp: datetime
    """When the prediction was made (the seed sent it without offset; UTC is meant)."""
    processing_time_ms: float
    """Time spent in the service on this prediction, in milliseconds."""
    label: str | None = None
    """Name of the predicted class, e.g. `benign`; absent from older services."""
    probabilities: dict[str, float] | None = None
    """Probability of every class by name; absent from older services."""
