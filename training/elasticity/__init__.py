"""The elasticity model: demand response to price per category (double ML), and profit-optimal prices.

``model`` builds the training set, fits, gates and registers, ``estimator`` the double-ML estimator,
``price_recommendation`` the guarded price search, ``pyfunc`` is what MLflow logs and serves, ``report`` its report.
"""

from __future__ import annotations

from feature_repo.features.tables import PRODUCT_DEMAND
from training.shared.model_registry import ModelSpec

MODEL = ModelSpec(
    name="elasticity",
    label="units",
    build_training_set="training.elasticity.model:build_elasticity_training_set",
    train="training.elasticity.model:train_elasticity",
    score_day="training.elasticity.model:score_elasticity_day",
    drift_feature_table=PRODUCT_DEMAND.name,
    trains_on_device=False,  # Newton on the CPU
    gate_scorer="training.elasticity.model:demand_scorer",
    drift_columns="training.elasticity.model:DRIFT_COLUMNS",
    serving_router="serving.endpoints.pricing:router",
)
