"""Batch scoring: where a champion's scores of a date go; the scores partition feeds drift monitoring and reports.

``<lake>/scores/<model>/dt=<day>/scores.parquet``, written by each model's ``score_*_day``; re-scoring a date
replaces its partition.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from config import get_settings


def scores_path(model: str, day: dt.date) -> Path:
    return get_settings().lake / "scores" / model / f"dt={day.isoformat()}" / "scores.parquet"
