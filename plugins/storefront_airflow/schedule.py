"""The daily DAGs' schedule bounds, from the settings (``STOREFRONT_PIPELINE_START_DATE`` / ``_END_DATE``).

Read when a DAG file is parsed: environment only, no database or Variable lookups.
"""

from __future__ import annotations

import datetime as dt

import pendulum


def _midnight(day: dt.date) -> pendulum.DateTime:
    return pendulum.datetime(day.year, day.month, day.day, tz="UTC")


def start_date() -> pendulum.DateTime:
    from config import get_settings

    return _midnight(get_settings().pipeline_start_date)


def end_date() -> pendulum.DateTime | None:
    from config import get_settings

    end = get_settings().pipeline_end_date
    return None if end is None else _midnight(end)


def task_retries() -> int:
    from config import get_settings

    return get_settings().task_retries
