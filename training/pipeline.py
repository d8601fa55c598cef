"""The nightly training stages, per model: what the training DAG's tasks call (and ``storefront`` can run by hand).

Each stage takes and returns small references (paths, run ids, versions) so the tasks pass nothing heavy
through XCom. A model joins the nightly run by adding an entry to ``MODELS``; the DAG's task group is the same.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from config import get_settings
from config.models import get_models_config

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelStages:
    """How one model builds its training set and trains; gate and drift are shared."""

    build_training_set: Callable[[dt.date], Path]
    train: Callable[[Path, dt.date], Any]  # returns an object with to_dict(), holdout_path and model_version
    score_day: Callable[[dt.date], Path | None]  # the champion scores the date's entities
    label: str
    drift_feature_table: str  # the offline feature table whose date partition is compared with the reference


def _conversion() -> ModelStages:
    from training.conversion import train_conversion
    from training.datasets import build_conversion_training_set
    from training.scoring import score_conversion_day

    return ModelStages(build_conversion_training_set, train_conversion, score_conversion_day, label="converted",
                       drift_feature_table="session_kpis")


MODELS: dict[str, Callable[[], ModelStages]] = {"conversion": _conversion}


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
    from training.conversion import read_holdout
    from training.registry import promote_if_better

    gate = get_models_config().model(model).gate
    holdout = read_holdout(Path(challenger["holdout_path"]))
    decision = promote_if_better(model, str(challenger["model_version"]), holdout, gate, label=stages(model).label)
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
    from monitoring.alerts import route_drift_alert
    from monitoring.drift import drift_report as evidently_report
    from monitoring.drift import drift_summary_line, log_drift_to_mlflow
    from training.registry import champion, download_artifact

    version = champion(model)
    if version is None:
        log.warning("drift %s %s: skipped, no champion yet (nothing to compare the features with)", model, day)
        return {"skipped": "no champion", "model": model, "day": day.isoformat()}
    reference_path = download_artifact(f"runs:/{version.run_id}/reference/reference_sample.parquet")
    reference = pd.read_parquet(reference_path)
    current = read_feature_partition(get_settings().features_root, stages(model).drift_feature_table, day).to_pandas()
    result = evidently_report(reference, current, day=day, model=model)
    log_drift_to_mlflow(result, str(version.version))
    alert = route_drift_alert(result)
    log.info(drift_summary_line(result))
    return {**result.summary(), "report_dir": str(result.summary_path.parent), "alert_file": str(alert or "")}
