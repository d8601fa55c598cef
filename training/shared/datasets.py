"""Training windows: the dates a model's training set covers (each model package builds its own set)."""

from __future__ import annotations

import datetime as dt


def training_window(day: dt.date, days: int) -> list[dt.date]:
    """The ``days`` dates that end with ``day`` (inclusive)."""
    return [day - dt.timedelta(days=days - 1 - i) for i in range(days)]
