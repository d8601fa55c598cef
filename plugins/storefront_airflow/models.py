"""The models the nightly DAG trains, one task group each. Only names: their config lives in config/models.yaml."""

from __future__ import annotations

# conversion lands first; ranking, recommendation, elasticity and promotion join with their issues.
TRAINED_MODELS: tuple[str, ...] = ("conversion", "recommendation", "promotion", "ranking", "elasticity")
