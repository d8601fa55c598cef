"""The nightly training stages, per model: what the training DAG's tasks call (and ``storefront`` can run by hand).

Each stage takes and returns small references (paths, run ids, versions) so the tasks pass nothing heavy
through XCom. A model joins the nightly run by adding an entry to ``MODELS``; the DAG's task group is the same.

A stage's code is imported when the stage runs (:func:`_lazy`): a task in a process of its own (a scheduler's
worker) imports what its stage needs, not every module of the model (building a training set needs Feast, not
torch and MLflow; the drift report needs neither torch nor the model's training code).
"""

from __future__ import annotations

import datetime as dt
import importlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from config import get_settings
from config.models import GateConfig, get_models_config

if TYPE_CHECKING:
    from training.shared.registry import Scorer

log = logging.getLogger(__name__)


class NothingToTrain(Exception):
    """A model has no labelled rows for the date yet (its labels lag, e.g. a 10-week outcome window still open),
    or too little data in its window to fit (raised from its train stage).

    The nightly DAG skips the model's task group with this reason instead of failing the run; the champion stays.
    """


@dataclass(frozen=True)
class ModelStages:
    """How one model builds its training set and trains; gate and drift are shared."""

    build_training_set: Callable[[dt.date], Path]
    train: Callable[[Path, dt.date], Any]  # returns an object with to_dict(), holdout_path and model_version
    score_day: Callable[[dt.date], Path | None]  # the champion scores the date's entities
    label: str
    drift_feature_table: str  # the offline feature table whose date partition is compared with the reference
    # How the gate scores a model on its holdout: ``gate_scorer(gate) -> scorer(model, holdout) -> float``.
    # None: ``gate.metric`` as a binary metric of ``label`` (a P(positive) model).
    gate_scorer: Callable[[GateConfig], Scorer] | None = None
    # How the gate reads the holdout file a training run wrote [default: pandas.read_parquet].
    read_holdout: Callable[[Path], Any] | None = None
    # The drift_feature_table columns the drift report compares [default: monitoring.drift.report.DEFAULT_COLUMNS]; a
    # callable is asked when the report runs (a constant of a model module, imported then).
    drift_columns: tuple[str, ...] | Callable[[], tuple[str, ...]] | None = None

    def columns_for_drift(self) -> tuple[str, ...] | None:
        return self.drift_columns() if callable(self.drift_columns) else self.drift_columns


def _lazy(path: str) -> Callable[..., Any]:
    """``module:attribute``, imported on first use: a function is called through, a constant returned."""
    module, _, name = path.partition(":")

    def resolve(*args: Any, **kwargs: Any) -> Any:
        target = getattr(importlib.import_module(module), name)
        return target(*args, **kwargs) if callable(target) else target

    resolve.__qualname__ = resolve.__name__ = path
    return resolve


def _conversion() -> ModelStages:
    return ModelStages(
        _lazy("training.conversion.data:build_conversion_training_set"),
        _lazy("training.conversion.model:train_conversion"),
        _lazy("training.conversion.scoring:score_conversion_day"),
        label="converted",
        drift_feature_table="session_kpis",
    )


def _ranking() -> ModelStages:
    from feature_repo.features.tables import PRODUCT_RANKING

    return ModelStages(
        _lazy("training.ranking.data:build_ranking_training_set"),
        _lazy("training.ranking.model:train_ranking"),
        _lazy("training.ranking.model:score_ranking_day"),
        label="grade",
        drift_feature_table=PRODUCT_RANKING.name,
        gate_scorer=_lazy("training.ranking.model:gate_scorer"),
        read_holdout=_lazy("training.ranking.model:read_holdout"),
        drift_columns=tuple(PRODUCT_RANKING.column_names),
    )


def _recommendation() -> ModelStages:
    from feature_repo.features.tables import CUSTOMER_PRODUCT_INTERACTIONS

    return ModelStages(
        _lazy("training.recommendation.model:build_recommendation_training_set"),
        _lazy("training.recommendation.model:train_recommendation"),
        _lazy("training.recommendation.model:score_recommendation_day"),
        label="product_id",
        drift_feature_table=CUSTOMER_PRODUCT_INTERACTIONS.name,
        gate_scorer=_lazy("training.recommendation.model:recommendation_scorer"),
        read_holdout=_lazy("training.recommendation.model:read_holdout"),
        drift_columns=_lazy("training.recommendation.model:DRIFT_COLUMNS"),
    )


def _promotion() -> ModelStages:
    from feature_repo.features.tables import CUSTOMER_HISTORY

    return ModelStages(
        _lazy("training.promotion.data:build_promotion_training_set"),
        _lazy("training.promotion.model:train_promotion"),
        _lazy("training.promotion.policy:score_promotion_day"),
        label="margin_10w",
        drift_feature_table=CUSTOMER_HISTORY.name,
        gate_scorer=_lazy("training.promotion.model:gate_scorer"),
        read_holdout=_lazy("training.promotion.model:read_holdout"),
        drift_columns=tuple(CUSTOMER_HISTORY.column_names),
    )


def _elasticity() -> ModelStages:
    from feature_repo.features.tables import PRODUCT_DEMAND

    return ModelStages(
        _lazy("training.elasticity.model:build_elasticity_training_set"),
        _lazy("training.elasticity.model:train_elasticity"),
        _lazy("training.elasticity.model:score_elasticity_day"),
        label="units",
        drift_feature_table=PRODUCT_DEMAND.name,
        gate_scorer=_lazy("training.elasticity.model:demand_scorer"),
        drift_columns=_lazy("training.elasticity.model:DRIFT_COLUMNS"),
    )


MODELS: dict[str, Callable[[], ModelStages]] = {
    "conversion": _conversion,
    "ranking": _ranking,
    "recommendation": _recommendation,
    "promotion": _promotion,
    "elasticity": _elasticity,
}


def stages(model: str) -> ModelStages:
    try:
        return MODELS[model]()
    except KeyError:
        raise KeyError(f"no training stages for model {model!r}; known: {', '.join(MODELS)}") from None


def build_training_set(model: str, day: dt.date) -> Path:
    """Build ``model``'s training set for ``day`` from Feast and return its path."""
    return stages(model).build_training_set(day)


def train_challenger(model: str, training_set: str | Path, day: dt.date) -> dict[str, Any]:
    """Train and register a challenger; returns its run id, version, holdout path and metrics."""
    result = stages(model).train(Path(training_set), day)
    return result.to_dict()


def gate_and_promote(model: str, challenger: dict[str, Any]) -> dict[str, Any]:
    """Score challenger and champion on the challenger's holdout; move ``champion`` only if the gate passes."""
    import pandas as pd

    from training.shared.registry import promote_if_better

    model_stages = stages(model)
    gate = get_models_config().model(model).gate
    read = model_stages.read_holdout or pd.read_parquet
    holdout = read(Path(challenger["holdout_path"]))
    scorer = model_stages.gate_scorer(gate) if model_stages.gate_scorer else None
    guardrail_scorer = None
    if gate.guardrail is not None and model_stages.gate_scorer:  # the model's own scorer, for the guardrail metric
        guardrail_scorer = model_stages.gate_scorer(gate.model_copy(update={"metric": gate.guardrail.metric}))
    decision = promote_if_better(
        model, str(challenger["model_version"]), holdout, gate, label=model_stages.label, scorer=scorer,
        guardrail_scorer=guardrail_scorer,
    )
    log.info("gate %s v%s: %s (%s)", model, challenger["model_version"], decision.decision, decision.reason)
    return decision.to_dict()


def score_sessions(model: str, day: dt.date) -> str | None:
    """Score the date's entities with the champion (after the gate, so a new champion scores its first day)."""
    path = stages(model).score_day(day)
    return None if path is None else str(path)


def drift_report(model: str, day: dt.date) -> dict[str, Any]:
    """Evidently report of the date's features against the champion's training reference; alert on-call if needed.

    Returns the summary record (and ``skipped`` with the reason when there is no champion to compare with).
    """
    import pandas as pd

    from feature_repo.features.partitions import read_feature_partition
    from monitoring.drift.alerts import route_drift_alert
    from monitoring.drift.report import drift_report as evidently_report
    from monitoring.drift.report import drift_summary_line, log_drift_to_mlflow
    from training.shared.registry import champion, download_artifact

    version = champion(model)
    if version is None:
        log.warning("drift %s %s: skipped, no champion yet (nothing to compare the features with)", model, day)
        return {"skipped": "no champion", "model": model, "day": day.isoformat()}
    reference_path = download_artifact(f"runs:/{version.run_id}/reference/reference_sample.parquet")
    reference = pd.read_parquet(reference_path)
    current = read_feature_partition(get_settings().features_root, stages(model).drift_feature_table, day).to_pandas()
    columns = stages(model).columns_for_drift()
    result = evidently_report(reference, current, day=day, model=model, columns=list(columns) if columns else None)
    log_drift_to_mlflow(result, str(version.version))
    alert = route_drift_alert(result)
    log.info(drift_summary_line(result))
    return {**result.summary(), "report_dir": str(result.summary_path.parent), "alert_file": str(alert or "")}
