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


class GuardrailConfig(_Strict):
    """A second metric the challenger must not lose by more than ``max_loss`` against the champion."""

    metric: str
    direction: Literal["higher_is_better", "lower_is_better"] = "higher_is_better"
    max_loss: float = Field(ge=0, description="Largest allowed loss against the champion, in the metric's units")

    def holds(self, challenger: float, champion: float) -> bool:
        if self.direction == "higher_is_better":
            return challenger >= champion - self.max_loss
        return challenger <= champion + self.max_loss


class GateConfig(_Strict):
    """When a challenger may become champion."""

    metric: str
    direction: Literal["higher_is_better", "lower_is_better"] = "higher_is_better"
    floor: float = Field(description="The first model must reach this")
    min_improvement: float = Field(ge=0, description="A challenger must beat the champion by this margin")
    guardrail: GuardrailConfig | None = Field(
        None, description="Optional second metric the challenger must not lose against the champion"
    )

    def passes_floor(self, score: float) -> bool:
        return score >= self.floor if self.direction == "higher_is_better" else score <= self.floor

    def beats(self, challenger: float, champion: float) -> bool:
        if self.direction == "higher_is_better":
            return challenger >= champion + self.min_improvement
        return challenger <= champion - self.min_improvement


class KpiImpactConfig(_Strict):
    """The KPI impact analysis run on the holdout after training (``training/conversion/kpi_impact.py``)."""

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


class PromotionPolicyConfig(_Strict):
    """How the promotion model's uplift estimates become one offer per customer (``training/promotion/policy.py``)."""

    min_incremental_profit: float = Field(
        0.0, description="A coupon pays only above this expected incremental 10-week profit, EUR; else none"
    )
    tolerance: float = Field(
        0.25, ge=0, description="Coupons within this many EUR of the best count as tied: the cheapest of them wins"
    )
    confidence_z: float = Field(
        1.0, ge=0, description="Coupons are judged on the ensemble's mean uplift minus this many standard deviations"
    )
    max_offers_per_customer: int = Field(1, ge=1, description="Coupons a customer may get per offer window")
    offer_window_days: int = Field(70, gt=0, description="The window max_offers_per_customer counts over, days")
    budget_offers: int | None = Field(
        None, gt=0, description="At most this many coupons per policy run, best expected profit first [none: no cap]"
    )
    min_spend: dict[str, float] = Field(
        default_factory=dict,
        description="Coupon -> minimum order value, EUR: offered only when the customer's average order reaches it",
    )


class PromotionConfig(_Strict):
    """The promotion uplift model's data and policy settings (``training/promotion/model.py``)."""

    outcome_window_days: int = Field(70, gt=0, description="An offer's outcome is the profit of this many days")
    coupons: list[str] = Field(description="Treatments the model estimates, 'none' (the holdout) excluded")
    holdout_share: float = Field(
        0.3, gt=0, lt=1, description="Share of customers (by a hash of the id) whose randomized offers are the holdout"
    )
    ensemble: int = Field(
        5, ge=1, description="Networks averaged: the first on all training offers, the others on bootstrap resamples"
    )
    n_bootstrap: int = Field(300, ge=50, description="Holdout resamples for the per-1,000-customer intervals")
    policy: PromotionPolicyConfig = PromotionPolicyConfig()


class RankingConfig(_Strict):
    """The ranking model's data, bias-correction and re-ranking settings (``training/ranking/model.py``)."""

    max_lists_per_day: int = Field(
        1500, gt=0, description="Lists per training or validation day kept (seeded by list_id); holdout days keep all"
    )
    validation_days: int = Field(3, gt=0, description="Days before the holdout used for early stopping")
    propensity_window_days: int = Field(
        28, gt=0, description="Days before the holdout whose randomized lists estimate the position propensities"
    )
    propensity_clip: float = Field(
        0.05, gt=0, le=1, description="Position propensities are floored here: inverse weights are at most 1/clip"
    )
    alpha: float = Field(
        1.0, ge=0, le=1, description="Served re-ranker: rank(rank(f)^alpha * rank(price)^(1-alpha)); 1 = relevance"
    )
    alpha_grid: list[float] = Field(
        default_factory=lambda: [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0],
        description="The alphas of the trade-off curve logged with every run",
    )
    purchase_price_weight: bool = Field(
        True, description="Weight the purchase classifier's positive rows by price / mean price (revenue-aware)"
    )


class PricingGuardrails(_Strict):
    """Limits on a recommended price (``training/elasticity/price_recommendation.py``), in the order applied."""

    max_change: float = Field(0.10, gt=0, lt=1, description="Largest relative move from the current price per step")
    min_margin: float = Field(
        0.05, ge=0, description="Floor: never below unit cost x (1 + this); wins over max_change when they conflict"
    )
    max_list_multiple: float = Field(1.0, gt=0, description="Cap: never above list price x this")


class ElasticityConfig(_Strict):
    """The elasticity model's estimator and price recommendation settings (``training/elasticity/model.py``)."""

    group_columns: list[str] = Field(
        default_factory=lambda: ["category"], description="product_demand columns whose values get an elasticity each"
    )
    n_folds: int = Field(3, ge=2, description="Cross-fitting folds, by calendar week")
    product_penalty: float = Field(1.0, gt=0, description="Ridge on the demand nuisance's product effects")
    prior_units: float = Field(1.0, gt=0, description="Forecast levels shrink towards the group's by this many units")
    min_units: float = Field(10.0, ge=0, description="A group that sold fewer units in the window gets no elasticity")
    confidence: float = Field(0.95, gt=0, lt=1, description="Level of the elasticity and recommendation intervals")
    baseline_days: int = Field(28, gt=0, description="Recent days whose rows are a recommendation's baseline demand")
    interval_draws: int = Field(2000, ge=100, description="Elasticity draws behind the recommendation intervals")
    seed: int = 7
    guardrails: PricingGuardrails = PricingGuardrails()


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
    promotion: PromotionConfig | None = None
    ranking: RankingConfig | None = None
    elasticity: ElasticityConfig | None = None


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
