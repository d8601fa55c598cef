"""The A/B experiment registry (``config/experiments.yaml``), validated on read.

The registry is the plan: for each experiment its variants and planned weights, its window, the metric the
decision is made on, secondary metrics, guardrails with their own thresholds, and the minimum detectable
effect the test was sized for. The raw ``experiments`` table is the record of what actually ran; the daily
readout reconciles the two (``monitoring.ab_readouts.experiments``) and refuses to call an experiment whose plan and
record disagree.
"""

from __future__ import annotations

import datetime as dt
import math
from functools import lru_cache
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from config.settings import get_settings

# Metrics a readout can compute per unit (names as in the raw contract's METRICS).
DecisionMetric = Literal["conversion_rate", "revenue_per_visitor", "average_order_value"]
GuardrailMetric = Literal["page_load_ms", "js_error_rate", "http_5xx_rate"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class VariantConfig(_Strict):
    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_\-]+$")
    weight: float = Field(gt=0, lt=1, description="Planned share of units")


class GuardrailConfig(_Strict):
    """A metric that must not get worse (all guardrails here are lower-is-better) by more than a margin."""

    metric: GuardrailMetric
    max_relative_degradation: float = Field(
        gt=0, lt=1, description="Largest tolerated relative increase over control, e.g. 0.05 = 5% slower pages"
    )


class ExperimentConfig(_Strict):
    name: str
    unit_type: Literal["customer"] = "customer"
    variants: tuple[VariantConfig, ...] = Field(description="The first variant is the control")
    start_date: dt.date = Field(description="First day of exposure (UTC)")
    end_date: dt.date = Field(description="Planned last day: the fixed-horizon readout date")
    primary_metric: DecisionMetric
    secondary_metrics: tuple[DecisionMetric, ...] = ()
    guardrails: tuple[GuardrailConfig, ...] = ()
    min_detectable_effect: float = Field(
        gt=0, lt=1, description="Relative effect on the primary metric the test is sized for (0.05 = 5%)"
    )

    @field_validator("variants")
    @classmethod
    def _variants(cls, value: tuple[VariantConfig, ...]) -> tuple[VariantConfig, ...]:
        if len(value) < 2:
            raise ValueError("an experiment needs a control and at least one treatment")
        names = [v.name for v in value]
        if len(set(names)) != len(names):
            raise ValueError(f"variant names repeat: {names}")
        total = math.fsum(v.weight for v in value)
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"planned weights sum to {total}, not 1")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> ExperimentConfig:
        if self.end_date < self.start_date:
            raise ValueError(f"end_date {self.end_date} is before start_date {self.start_date}")
        if self.primary_metric in self.secondary_metrics:
            raise ValueError(f"{self.primary_metric} is both primary and secondary")
        metrics = [g.metric for g in self.guardrails]
        if len(set(metrics)) != len(metrics):
            raise ValueError(f"guardrail metrics repeat: {metrics}")
        return self

    @property
    def control(self) -> str:
        return self.variants[0].name

    @property
    def variant_names(self) -> list[str]:
        return [v.name for v in self.variants]

    @property
    def weights(self) -> list[float]:
        return [v.weight for v in self.variants]

    def running_on(self, day: dt.date) -> bool:
        return self.start_date <= day <= self.end_date


class ExperimentRegistry(_Strict):
    """Every registered experiment plus the decision thresholds all readouts share."""

    alpha: float = Field(0.05, gt=0, lt=0.5, description="Two-sided error rate of the lift tests and intervals")
    srm_alpha: float = Field(
        0.001, gt=0, lt=0.5, description="Sample-ratio mismatch: the split is declared broken below this p-value"
    )
    srm_prior_concentration: float = Field(
        100.0, gt=0, description="Dirichlet concentration of the sequential SRM test's prior around the plan"
    )
    pre_period_days: int = Field(28, gt=0, description="Days before a unit's first exposure its covariates cover")
    bootstrap_resamples: int = Field(2000, ge=200, description="Resamples of the bootstrap intervals")
    seed: int = Field(7, description="Seed of the bootstrap")
    experiments: dict[str, ExperimentConfig]

    @field_validator("experiments")
    @classmethod
    def _ids(cls, value: dict[str, ExperimentConfig]) -> dict[str, ExperimentConfig]:
        import re

        bad = [k for k in value if not re.fullmatch(r"[A-Za-z0-9_\-:.]{1,64}", k)]
        if bad:
            raise ValueError(f"experiment ids must match the contract's id pattern: {bad}")
        return value

    def experiment(self, experiment_id: str) -> ExperimentConfig:
        try:
            return self.experiments[experiment_id]
        except KeyError:
            raise KeyError(
                f"no experiment {experiment_id!r} in the registry; it has {', '.join(self.experiments)}"
            ) from None


def read_experiments_registry(path: Path | None = None) -> ExperimentRegistry:
    """Read and validate the registry at ``path`` (default: the ``experiments_config`` setting)."""
    path = Path(path or get_settings().experiments_config)
    return ExperimentRegistry.model_validate(yaml.safe_load(path.read_text()))


@lru_cache(maxsize=1)
def get_experiments_registry() -> ExperimentRegistry:
    return read_experiments_registry()
