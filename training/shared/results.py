"""The record every model's ``train_*`` returns: what it logged and registered.

``to_dict`` is the part that travels through XCom (``training.shared.pipeline.train_challenger``): every field except
those marked ``IN_PROCESS`` (large or not JSON-ready), paths as strings, seconds rounded.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any


class NothingToTrain(Exception):
    """A model has no labelled rows for the date yet (its labels lag, e.g. a 10-week outcome window still open),
    or too little data in its window to fit (raised from its train stage).

    The nightly DAG skips the model's task group with this reason instead of failing the run; the champion stays.
    """


IN_PROCESS = {"in_process": True}  # field metadata: kept on the object, left out of ``to_dict``


@dataclass
class TrainingResult:
    run_id: str
    model_name: str
    model_version: str
    model_uri: str  # models:/<name>/<version>
    # the holdout the gate scores challenger and champion on, as an artifact of the run (runs:/<id>/holdout/...):
    # the gate may run on another worker, so it downloads this, never a path on the training worker's disk
    holdout_uri: str
    holdout_path: Path = field(metadata=IN_PROCESS)  # this worker's scratch copy, for in-process callers
    metrics: dict[str, float]
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in fields(self):
            if f.metadata.get("in_process"):
                continue
            value = getattr(self, f.name)
            out[f.name] = str(value) if isinstance(value, Path) else value
        out["seconds"] = round(self.seconds, 2)
        return out


@dataclass(frozen=True)
class Candidate:
    """One point of a seeded hyperparameter search and how it did on validation."""

    hyperparameters: dict[str, Any]
    val_loss: float
    best_epoch: int
    epochs: int
    seconds: float


@dataclass
class SearchedTrainingResult(TrainingResult):
    """The record of a network chosen by a search: its holdout and reference artifacts, the winner and the grid."""

    reference_uri: str
    hyperparameters: dict[str, Any]
    device: str
    candidates: list[Candidate] = field(default_factory=list, metadata=IN_PROCESS)


def fetch_holdout(holdout_uri: str, destination: Path) -> Path:
    """Download the holdout folder of ``holdout_uri`` (``runs:/<id>/holdout/holdout.parquet``: the file and what
    was logged beside it) from the tracking server into ``destination``; returns the local ``holdout.parquet``."""
    import mlflow.artifacts

    from config.settings import get_settings

    folder, _, name = holdout_uri.rstrip("/").rpartition("/")
    if not folder.startswith("runs:/") or not name:
        raise ValueError(f"not a run artifact URI of a holdout file: {holdout_uri!r}")
    local = mlflow.artifacts.download_artifacts(
        artifact_uri=folder, dst_path=str(destination), tracking_uri=get_settings().tracking_uri
    )
    path = Path(local) / name
    if not path.is_file():
        raise FileNotFoundError(f"{holdout_uri}: the run's holdout folder holds no {name}")
    return path


def local_holdout_path(model: str, day: dt.date, run_id: str) -> Path:
    """Where a training run keeps a scratch copy of its holdout: ``<var>/training/<model>/dt=<day>/<run_id>/``.

    Only for callers in the same process (tests, the KPI impact CLI): the gate downloads the logged artifact.

    Keyed by run id as well as date, so a second challenger of the same date cannot overwrite the first one's.
    The folder is created.
    """
    from config.settings import get_settings

    path = get_settings().var_root / "training" / model / f"dt={day.isoformat()}" / run_id / "holdout.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    return path
