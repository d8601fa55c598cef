"""The models the nightly DAG trains, one task group each: the enabled models of the one model registry.

``training.shared.model_registry`` reads them from config/models.yaml (``enabled: false`` removes one) without
importing any model's code, so the DAG file stays cheap to parse.
"""

from __future__ import annotations

from training.shared.model_registry import enabled_models

TRAINED_MODELS: tuple[str, ...] = enabled_models()
