"""The versioned model configuration (``config/models.yaml``), validated on read."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator

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


class KpiImpactConfig(_Strict):
    """The KPI impact analysis run on the holdout after training (``training/kpi_impact.py``)."""

    enabled: bool = False
    n_bootstrap: int = Field(200, ge=20, description="Session resamples per interval")
    model_refits: int = Field(
        0, ge=0, description="Models refitted on bootstrap resamples of the training rows for the model interval"
    )

    @field_validator("model_refits")
    @classmethod
    def _spread_needs_two(cls, value: int) -> int:
        if value == 1:
            raise ValueError("model_refits: one refit has no spread; use 0 (session intervals only) or 2 or more")
        return value


class ModelConfig(_Strict):
    enabled: bool = True
    feature_service: str
    training_window_days: int = Field(gt=0)
    holdout_days: int = Field(gt=0)
    hyperparameters: dict[str, Any]
    gate: GateConfig
    calibration: Literal["none", "platt"] = Field(
        "none", description="platt: a logistic recalibration of the output fitted on the validation days"
    )
    kpi_impact: KpiImpactConfig = KpiImpactConfig()


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
