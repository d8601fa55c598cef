"""The promotion model: coupon uplift on 10-week profit per customer; the policy offers the coupon that pays.

``data`` builds the training set, ``model`` trains, gates and registers, ``policy`` turns uplift into offers and
scores a date, ``uplift_metrics`` Qini/AUUC, ``pyfunc`` is what MLflow logs and serves, ``report`` its report.
"""

from __future__ import annotations

from feature_repo.features.tables import CUSTOMER_HISTORY
from training.shared.model_registry import ModelSpec

MODEL = ModelSpec(
    name="promotion",
    label="margin_10w",
    build_training_set="training.promotion.data:build_promotion_training_set",
    train="training.promotion.model:train_promotion",
    score_day="training.promotion.policy:score_promotion_day",
    drift_feature_table=CUSTOMER_HISTORY.name,
    gate_scorer="training.promotion.model:gate_scorer",
    read_holdout="training.promotion.model:read_holdout",
    drift_columns=tuple(CUSTOMER_HISTORY.column_names),
    serving_router="serving.endpoints.promotion:router",
)
