"""The one log-train-register sequence every model's ``train`` ends with: :func:`log_and_register`.

A model's train stage fits and evaluates; it then hands a :class:`TrainingRecord` to :func:`log_and_register`,
which opens the MLflow run with the tags every nightly run carries (:func:`registry.run_tags`: model, feature
service, the data interval, run date, git commit, device), logs the parameters every run has (:func:`shared_params`)
beside the model's own and the metrics, lets the model log
what is its own (curves, reports, search candidates: ``log_extra``), logs the holdout the gate scores on and the
reference sample the drift monitor compares with, writes and logs the pyfunc model with its files and registers
it as a new version tagged with its :func:`training_key`, and keeps a scratch copy of the holdout for in-process
callers (the gate downloads the logged one). Everything goes through
``training.shared.registry``, the one door to MLflow.
"""

from __future__ import annotations

import datetime as dt
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from config.models import ModelConfig
from config.settings import REPO_ROOT
from training.shared import registry, results

HOLDOUT_DIR, REFERENCE_DIR = "holdout", "reference"
TRAINING_KEY_TAG = "training_key"  # on the registered version: what it was trained from (:func:`training_key`)


def training_key(model: str, day: dt.date, training_set: Path, config: ModelConfig) -> str:
    """A digest of what a training run depends on: the model, the run date, the training set's bytes, the model's
    block of ``config/models.yaml`` and the code's commit. The same key means a re-run would train the same model,
    so the nightly reuses the version registered under it instead of registering a second one."""
    import hashlib

    digest = hashlib.sha256(f"{model}\n{day.isoformat()}\n".encode())
    digest.update(config.model_dump_json().encode())
    digest.update(registry.git_commit(REPO_ROOT).encode())
    path = Path(training_set)
    files = sorted(f for f in path.rglob("*") if f.is_file()) if path.is_dir() else [path]
    for f in files:
        digest.update(f"\n{f.relative_to(path) if path.is_dir() else f.name}\n".encode())
        with f.open("rb") as handle:
            for block in iter(lambda handle=handle: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class ModelPackage:
    """The pyfunc model to log: its code file, how to write its fitted state, and how it is called."""

    python_model: Path  # the models-from-code file (it calls ``mlflow.models.set_model``)
    write_files: Callable[[Path], Mapping[str, str]]  # writes the fitted state into a folder; returns the artifacts
    signature: Any  # mlflow.models.ModelSignature
    requirements: tuple[str, ...]  # pinned at the installed versions (``torch==2.13.0``, never ``+cpu``)
    input_example: pd.DataFrame | None = None
    code_paths: tuple[Path, ...] = ()  # modules the code file imports (``training.shared.nets.CODE_PATH``)
    version_tags: Mapping[str, str] = field(default_factory=dict)  # model-specific tags of the registered version


@dataclass
class TrainingRecord:
    """What a train stage hands over to be logged and registered."""

    model: str  # the experiment and the registered model's name
    config: ModelConfig  # its block of config/models.yaml: feature service, windows, the hyperparameter grid
    day: dt.date
    window_start: dt.date  # first date of the data interval the model learnt from (the interval ends with ``day``)
    training_set: Path
    device: str  # where it was trained: cpu, cuda, hpu
    hyperparameters: Mapping[str, Any] | None  # the chosen point of the grid (``hp.*``); None: not searched
    params: Mapping[str, Any]  # the model's own, beside the shared ones
    metrics: Mapping[str, float]
    holdout: pd.DataFrame  # what the gate scores challenger and champion on
    reference: pd.DataFrame  # the drift monitor's reference sample
    package: ModelPackage
    tags: Mapping[str, str] = field(default_factory=dict)  # model-specific run tags, beside the shared ones
    log_extra: Callable[[registry.TrainingRun, Path], Mapping[str, str] | None] | None = None
    beside_holdout: Mapping[str, pd.DataFrame] = field(default_factory=dict)  # file stem -> frame, kept with it


@dataclass(frozen=True)
class Published:
    """Where a record went: the run, the registered version, the holdout (logged and local), the reference."""

    run_id: str
    version: str
    model_uri: str  # models:/<name>/<version>
    holdout_path: Path
    holdout_uri: str
    reference_uri: str
    extra: Mapping[str, str]  # what ``log_extra`` returned (e.g. report name -> runs:/ URI)


def _parquet(frame: pd.DataFrame, path: Path) -> Path:
    frame.to_parquet(path, index=False, coerce_timestamps="us", allow_truncated_timestamps=True)
    return path


def shared_params(record: TrainingRecord) -> dict[str, Any]:
    """The parameters every run logs: the chosen hyperparameters and the grid, the windows, the training set."""
    searched = {} if record.hyperparameters is None else {
        **{f"hp.{k}": v for k, v in record.hyperparameters.items()}, "grid": record.config.hyperparameters,
    }
    return {
        **searched,
        "training_window_days": record.config.training_window_days,
        "holdout_days": record.config.holdout_days,
        "training_set": str(record.training_set),
    }


def log_and_register(record: TrainingRecord) -> Published:
    """Log ``record`` as one MLflow run and register its model; returns where everything went."""
    day = record.day.isoformat()
    feature_service = record.config.feature_service
    tags = registry.run_tags(
        record.model, feature_service, record.window_start, record.day, device=record.device, **record.tags
    )
    package = record.package
    with (
        tempfile.TemporaryDirectory() as tmp,
        registry.training_run(record.model, f"{record.model}-{day}", tags) as run,
    ):
        folder = Path(tmp)
        run.log_params({**shared_params(record), **record.params})
        run.log_metrics(record.metrics)
        extra = dict(record.log_extra(run, folder) or {}) if record.log_extra is not None else {}
        holdout_uri = run.log_artifact(_parquet(record.holdout, folder / "holdout.parquet"), HOLDOUT_DIR)
        for stem, frame in record.beside_holdout.items():
            run.log_artifact(_parquet(frame, folder / f"{stem}.parquet"), HOLDOUT_DIR)
        reference_uri = run.log_artifact(_parquet(record.reference, folder / "reference_sample.parquet"), REFERENCE_DIR)
        logged = run.log_pyfunc_model(
            name="model",
            python_model=package.python_model,
            artifacts=package.write_files(folder / "model"),
            signature=package.signature,
            pip_requirements=[registry.pinned_requirement(p) for p in package.requirements],
            registered_model_name=record.model,
            input_example=package.input_example,
            code_paths=package.code_paths,
            tags={"feature_service": feature_service, "run_date": day, **package.version_tags,
                  TRAINING_KEY_TAG: training_key(record.model, record.day, record.training_set, record.config)},
        )
        run_id = run.run_id
    if logged.version is None:
        raise RuntimeError(f"{record.model} {day}: the model of run {run_id} was logged but not registered")
    holdout_path = results.local_holdout_path(record.model, record.day, run_id)
    _parquet(record.holdout, holdout_path)
    for stem, frame in record.beside_holdout.items():
        _parquet(frame, holdout_path.parent / f"{stem}.parquet")
    return Published(run_id, logged.version, logged.registry_uri, holdout_path, holdout_uri, reference_uri, extra)
