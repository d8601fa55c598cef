"""The ranking model: LambdaRank relevance with position-bias correction, and revenue-aware re-ranking.

``data`` builds the training set, ``model`` trains, evaluates and registers, ``metrics`` the counterfactual list
metrics, ``pyfunc`` is what MLflow logs and serves, ``report`` the ECDF and trade-off report.
"""

from __future__ import annotations

from feature_repo.features.tables import PRODUCT_RANKING
from training.shared.model_registry import ModelSpec

MODEL = ModelSpec(
    name="ranking",
    label="grade",
    build_training_set="training.ranking.data:build_ranking_training_set",
    train="training.ranking.model:train_ranking",
    score_day="training.ranking.model:score_ranking_day",
    drift_feature_table=PRODUCT_RANKING.name,
    gate_scorer="training.ranking.model:gate_scorer",
    read_holdout="training.ranking.model:read_holdout",
    drift_columns=tuple(PRODUCT_RANKING.column_names),
    serving_router="serving.endpoints.ranking:router",
    serving_prepare="serving.endpoints.ranking:prepare_ranking",
)
