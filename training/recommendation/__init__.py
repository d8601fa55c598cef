"""The recommendation model: softmax matrix factorisation with popularity and category fallbacks.

``model`` builds the training set, trains, evaluates and registers, ``metrics`` Recall/NDCG@k, ``pyfunc`` is what
MLflow logs and serves.
"""

from __future__ import annotations

from feature_repo.features.tables import CUSTOMER_PRODUCT_INTERACTIONS
from training.shared.model_registry import ModelSpec

MODEL = ModelSpec(
    name="recommendation",
    label="product_id",
    build_training_set="training.recommendation.model:build_recommendation_training_set",
    train="training.recommendation.model:train_recommendation",
    score_day="training.recommendation.model:score_recommendation_day",
    drift_feature_table=CUSTOMER_PRODUCT_INTERACTIONS.name,
    gate_scorer="training.recommendation.model:recommendation_scorer",
    read_holdout="training.recommendation.model:read_holdout",
    drift_columns="training.recommendation.model:DRIFT_COLUMNS",
    serving_router="serving.endpoints.recommendation:router",
)
