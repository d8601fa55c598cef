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
    holdout_path: Path  # local copy of the holdout the gate scores challenger and champion on
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

    holdout_uri: str  # the holdout as an artifact of the run
    reference_uri: str
    hyperparameters: dict[str, Any]
    device: str
    candidates: list[Candidate] = field(default_factory=list, metadata=IN_PROCESS)


def local_holdout_path(model: str, day: dt.date, run_id: str) -> Path:
    """Where a training run keeps its holdout for the gate: ``<var>/training/<model>/dt=<day>/<run_id>/``.

    Keyed by run id as well as date, so a second challenger of the same date cannot overwrite the first one's.
    The folder is created.
    """
    from config.settings import get_settings

    path = get_settings().var_root / "training" / model / f"dt={day.isoformat()}" / run_id / "holdout.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    return path
