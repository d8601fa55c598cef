"""Which date a task works on: never "now", always the run's data interval, a param, or the triggering asset event."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from airflow.sdk import Asset


def run_date(context: Mapping[str, Any], asset: Asset | None = None) -> dt.date:
    """The date a run processes.

    In order: the ``date`` param (manual runs and ``airflow dags test -c '{"date": ...}'``), the ``date`` in the
    extra of the latest triggering event of ``asset`` (asset-scheduled runs), the start of the data interval
    (scheduled and backfilled runs: the run for [d, d+1) processes d), and the logical date. Raises when none is
    set rather than guess from the clock.
    """
    param = (context.get("params") or {}).get("date")
    if param:
        return dt.date.fromisoformat(str(param))
    if asset is not None:
        events = (context.get("triggering_asset_events") or {}).get(asset) or []
        for event in reversed(list(events)):
            if event.extra and event.extra.get("date"):
                return dt.date.fromisoformat(str(event.extra["date"]))
    for key in ("data_interval_start", "logical_date"):
        value = context.get(key)
        if value is not None:
            return value.date()
    raise ValueError("this run has no date: pass the 'date' param, or run it on a schedule or from an asset event")


def run_days(context: Mapping[str, Any]) -> list[dt.date]:
    """The dates a features run covers: its date, or every date from the ``history_from`` param up to it.

    ``history_from`` is for the initial history load: one run builds the features of a whole training window
    (one Spark session, one materialization) instead of one run per date.
    """
    last = run_date(context)
    first_param = (context.get("params") or {}).get("history_from")
    first = dt.date.fromisoformat(str(first_param)) if first_param else last
    if first > last:
        raise ValueError(f"history_from {first} is after the run's date {last}")
    return [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]
