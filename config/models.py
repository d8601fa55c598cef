"""The versioned model configuration (``config/models.yaml``), validated on read."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field

from config.settings import get_settings


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class GateConfig(_Strict):
    """When a challenger may become champion."""

    metric: str
    direction: Literal["higher_is_better", "lower_is_better"] = "higher_is_better"
    floor: float = Field(description="The first model must reach this")
    min_improvement: float = Field(ge=0, description="A challenger must beat the champion by this margin")

    def passes_floor(self, score: float) -> bool:
        return score >= self.floor if self.direction == "higher_is_better" else score <= self.floor

    def beats(self, challenger: float, champion: float) -> bool:
        if self.direction == "higher_is_better":
            return challenger >= champion + self.min_improvement
        return challenger <= champion - self.min_improvement


class ModelConfig(_Strict):
    enabled: bool = True
    feature_service: str
    training_window_days: int = Field(gt=0)
    holdout_days: int = Field(gt=0)
    hyperparameters: dict[str, Any]
    gate: GateConfig


class DriftConfig(_Strict):
    stattest_threshold: float = Field(gt=0, lt=1)
    drift_share_alert: float = Field(gt=0, le=1)
    reference_sample_rows: int = Field(gt=0)


class ModelsConfig(_Strict):
    models: dict[str, ModelConfig]
    drift: DriftConfig

    def model(self, name: str) -> ModelConfig:
        try:
            return self.models[name]
        except KeyError:
            raise KeyError(f"no model {name!r} in the models config; it has {', '.join(self.models)}") from None


def read_models_config(path: Path | None = None) -> ModelsConfig:
    path = path or get_settings().models_config
    return ModelsConfig.model_validate(yaml.safe_load(Path(path).read_text()))


@lru_cache(maxsize=1)
def get_models_config() -> ModelsConfig:
    return read_models_config()
