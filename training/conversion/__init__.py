"""The conversion model: P(session converts) from performance KPIs and customer history, and the KPI what-if.

``data`` builds the training set, ``model`` trains, calibrates and registers, ``pyfunc`` is what MLflow logs and
serves, ``kpi_impact`` the what-if analysis and its report, ``scoring`` the champion's batch scores.
"""

from __future__ import annotations

from training.shared.model_registry import ModelSpec

MODEL = ModelSpec(
    name="conversion",
    label="converted",
    build_training_set="training.conversion.data:build_conversion_training_set",
    train="training.conversion.model:train_conversion",
    score_day="training.conversion.scoring:score_conversion_day",
    drift_feature_table="session_kpis",
    serving_router="serving.endpoints.conversion:router",
    serving_prepare="serving.endpoints.conversion:prepare_conversion",
)
