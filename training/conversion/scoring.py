"""The conversion champion scores a date's sessions.

``<lake>/scores/conversion/dt=<day>/scores.parquet``: one row per session of the date with the features as known
at its start (the same Feast path as training), the score and the model version that produced it.
"""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from config.models import get_models_config
from feature_repo.features.tables import EVENT_TIMESTAMP
from training.shared.scoring import scores_path

log = logging.getLogger(__name__)


def score_conversion_day(day: dt.date) -> Path | None:
    """Score every session of ``day`` with ``conversion@champion``; None (and a warning) when there is no champion."""
    from feature_repo.store import historical_features
    from training.conversion.data import conversion_entity_rows
    from training.shared.registry import champion, load_model, model_input, model_version_uri

    version = champion("conversion")
    if version is None:
        log.warning("scoring conversion %s: skipped, no champion yet", day)
        return None
    rows = conversion_entity_rows(day, 1)
    features = historical_features(rows, get_models_config().model("conversion").feature_service)
    model = load_model(model_version_uri("conversion", version.version))  # the version named in the rows
    scores = np.asarray(model.predict(model_input(model, features)), dtype=np.float64).reshape(-1)
    out = pd.DataFrame({
        "session_id": features["session_id"],
        "customer_id": features["customer_id"],
        EVENT_TIMESTAMP: features[EVENT_TIMESTAMP],
        "p_convert": scores,
        "model_name": "conversion",
        "model_version": str(version.version),
    }).sort_values([EVENT_TIMESTAMP, "session_id"], kind="stable")
    path = scores_path("conversion", day)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    out.to_parquet(tmp, index=False, coerce_timestamps="us", allow_truncated_timestamps=False)
    tmp.replace(path)
    log.info("scored %d sessions of %s with conversion v%s (mean p %.4f) -> %s", len(out), day, version.version,
             float(scores.mean()) if len(scores) else float("nan"), path)
    return path
