"""HTTP APIs: v1 (the seed contract) and v2 (Open Inference Protocol)."""
