"""The nightly training stages, per model: what the training DAG's tasks call (and ``storefront`` can run by hand).

Each stage takes and returns small references (paths, run ids, versions) so the tasks pass nothing heavy
through XCom. What a stage calls for a model is that model's :class:`~training.shared.model_registry.ModelSpec`
(declared by its package, listed by ``config/models.yaml``); the gate and the drift report are shared.

A stage's code is imported when the stage runs: a task in a process of its own (a scheduler's worker) imports
what its stage needs, not every module of the model (building a training set needs Feast, not torch and MLflow;
the drift report needs neither torch nor the model's training code).
"""

from __future__ import annotations

import datetime as dt
import logging
import tempfile
from pathlib import Path
from typing import Any

from config import get_settings
from config.models import get_models_config
from training.shared.model_registry import function, model_spec
from training.shared.results import NothingToTrain, fetch_holdout

__all__ = ["NothingToTrain", "build_training_set", "drift_report", "gate_and_promote", "score_sessions",
           "train_challenger"]

log = logging.getLogger(__name__)
RESULT_ARTIFACT = "result/train_challenger.json"  # the task's record, logged once training has handed it over


def build_training_set(model: str, day: dt.date) -> Path:
    """Build ``model``'s training set for ``day`` from Feast and return its path."""
    return function(model_spec(model).build_training_set)(day)


def train_challenger(
    model: str, training_set: str | Path, day: dt.date, device: str | None = None
) -> dict[str, Any]:
    """Train and register a challenger; returns its run id, version, holdout URI and metrics.

    ``device``: cpu, cuda, hpu or auto [default: ``$STOREFRONT_DEVICE``]; ignored by a model that trains on no device.
    Before anything is read, a worker serving an accelerator queue (``training_queue`` cuda or hpu) must have that
    accelerator: a task routed to the wrong host fails in seconds with the queue and the device named.
    """
    from training.shared import publish, registry

    spec = model_spec(model)
    if spec.trains_on_device:
        check_queue_device(model)
    registry.check_tracking_server()
    # a retried or re-run task of the same date and inputs: the version it registered is the result, not a second one
    key = publish.training_key(model, day, Path(training_set), get_models_config().model(model))
    previous = registry.version_with_tag(model, publish.TRAINING_KEY_TAG, key)
    if previous is not None:
        record = registry.read_run_json(previous.run_id, RESULT_ARTIFACT)
        if record is not None:
            log.info("%s %s: v%s was already trained from the same inputs (run %s); reused, nothing trained",
                     model, day, previous.version, previous.run_id)
            return record
        registry.discard_version(model, previous.version, "registered, but its task did not finish; training again")
    train = function(spec.train)
    result = train(Path(training_set), day, device=device) if spec.trains_on_device else train(Path(training_set), day)
    record = result.to_dict()
    registry.log_run_json(record["run_id"], RESULT_ARTIFACT, record)  # last: marks the version complete
    return record


def check_queue_device(model: str) -> None:
    """Raise ``DeviceUnavailableError`` when this worker lacks the accelerator of the queue training tasks run on."""
    from training.shared.devices import DeviceUnavailableError, select_device

    queue = get_settings().training_queue
    if queue == "cpu":
        return
    try:
        select_device(queue)
    except DeviceUnavailableError as err:
        raise DeviceUnavailableError(
            f"{model}: this training task was routed to the {queue!r} queue (STOREFRONT_TRAINING_QUEUE), but this "
            f"worker has no {queue} device: {err}"
        ) from None


def gate_and_promote(model: str, challenger: dict[str, Any]) -> dict[str, Any]:
    """Score challenger and champion on the challenger's holdout; move ``champion`` only if the gate passes."""
    import pandas as pd

    from training.shared.registry import promote_if_better

    spec = model_spec(model)
    gate = get_models_config().model(model).gate
    read = function(spec.read_holdout) or pd.read_parquet
    with tempfile.TemporaryDirectory(prefix=f"gate-{model}-") as scratch:  # this worker's disk, not the trainer's
        holdout = read(fetch_holdout(challenger["holdout_uri"], Path(scratch)))
    gate_scorer = function(spec.gate_scorer)
    scorer = gate_scorer(gate) if gate_scorer else None
    guardrail_scorer = None
    if gate.guardrail is not None and gate_scorer:  # the model's own scorer, for the guardrail metric
        guardrail_scorer = gate_scorer(gate.model_copy(update={"metric": gate.guardrail.metric}))
    decision = promote_if_better(
        model, str(challenger["model_version"]), holdout, gate, label=spec.label, scorer=scorer,
        guardrail_scorer=guardrail_scorer,
    )
    log.info("gate %s v%s: %s (%s)", model, challenger["model_version"], decision.decision, decision.reason)
    return decision.to_dict()


def score_sessions(model: str, day: dt.date) -> str | None:
    """Score the date's entities with the champion (after the gate, so a new champion scores its first day)."""
    path = function(model_spec(model).score_day)(day)
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
    spec = model_spec(model)
    current = read_feature_partition(get_settings().features_root, spec.drift_feature_table, day).to_pandas()
    columns = spec.columns_for_drift()
    result = evidently_report(reference, current, day=day, model=model, columns=list(columns) if columns else None)
    log_drift_to_mlflow(result, str(version.version))
    alert = route_drift_alert(result)
    log.info(drift_summary_line(result))
    return {**result.summary(), "report_dir": str(result.summary_path.parent), "alert_file": str(alert or "")}
