"""On-call alert routing for drift: an alert file per (model, date) and a WARNING in the task log.

An alert is a JSON file ``<reports>/alerts/drift-<model>-<date>.json`` that says what drifted, since when
(from the ``summary.json`` of the days before), and where the reports are. On-call tooling watches that folder;
the Airflow failure and drift callbacks (``plugins``) may point people at it.

Not here yet, on purpose: a pluggable push target (a webhook, a pager, a chat channel) read from the settings.
When one is needed it belongs behind :func:`route_drift_alert`, after the file is written, so the file stays the
record whatever the push target does.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from config.settings import get_settings
from monitoring.drift.report import SUMMARY_FILE, DriftResult, drift_summary_line

logger = logging.getLogger(__name__)

ALERT_SCHEMA_VERSION = 1
MAX_LOOKBACK_DAYS = 366  # how far back "since when" walks through earlier summaries


def alerts_dir(reports_root: Path | None = None) -> Path:
    """``<reports>/alerts``: where on-call alerts are written."""
    return (reports_root or get_settings().reports) / "alerts"


def alert_path(model: str, day: dt.date, folder: Path | None = None) -> Path:
    return (folder or alerts_dir()) / f"drift-{model}-{day.isoformat()}.json"


def route_drift_alert(result: DriftResult, *, folder: Path | None = None) -> Path | None:
    """When ``result.alert``, write its alert file and log a WARNING; returns the file, or None without an alert.

    Idempotent per (model, date): a rerun overwrites the date's alert, and a rerun that no longer alerts
    (thresholds changed) removes the stale file. "Since when" is read from the ``summary.json`` files of the
    days before in the same report tree: the first day of the unbroken run of alerting days, and per drifted
    column the first day of its unbroken run of drifted days (a day without a summary breaks the run).

    Args:
        result: the day's drift report.
        folder: where alert files go [default: ``<reports>/alerts``].
    """
    path = alert_path(result.model, result.day, folder)
    if not result.alert:
        if path.exists():
            path.unlink()
            logger.info("drift %s %s no longer alerts: removed %s", result.model, result.day, path)
        return None

    history = _earlier_summaries(result)
    alerting_since = _run_start(result.day, history, lambda s: bool(s.get("alert")))
    columns = []
    for column in result.drifted_columns:
        since = _run_start(result.day, history, _column_drifted(column.name))
        columns.append({**column.record(), "drifted_since": since.isoformat()})

    record: dict[str, Any] = {
        "schema_version": ALERT_SCHEMA_VERSION,
        "kind": "drift",
        "model": result.model,
        "day": result.day.isoformat(),
        "alerting_since": alerting_since.isoformat(),
        "consecutive_alert_days": (result.day - alerting_since).days + 1,
        "drift_share": round(result.drift_share, 6),
        "drift_share_alert": result.drift_share_alert,
        "n_drifted": result.n_drifted,
        "n_columns": result.n_columns,
        "drifted_columns": columns,
        "reports": {
            "summary": str(result.summary_path.resolve()),
            "html": str(result.html_path.resolve()),
            "json": str(result.json_path.resolve()),
        },
        "message": drift_summary_line(result),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(record, indent=2) + "\n")
    tmp.replace(path)
    logger.warning("DRIFT ALERT (since %s): %s; alert %s", alerting_since, drift_summary_line(result), path)
    return path


def _earlier_summaries(result: DriftResult) -> dict[dt.date, dict[str, Any]]:
    """Summaries of the days before ``result.day`` that sit beside its report folder (``../dt=<date>/``)."""
    model_dir = result.summary_path.parent.parent
    found: dict[dt.date, dict[str, Any]] = {}
    for back in range(1, MAX_LOOKBACK_DAYS + 1):
        day = result.day - dt.timedelta(days=back)
        path = model_dir / f"dt={day.isoformat()}" / SUMMARY_FILE
        if not path.is_file():
            break
        try:
            found[day] = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as err:
            logger.warning("unreadable drift summary %s (%s): 'since' stops there", path, err)
            break
    return found


def _column_drifted(name: str) -> Callable[[dict[str, Any]], bool]:
    """Whether a day's summary lists ``name`` among its drifted columns."""
    return lambda summary: name in {c["column"] for c in summary.get("drifted_columns", [])}


def _run_start(
    day: dt.date, history: dict[dt.date, dict[str, Any]], holds: Callable[[dict[str, Any]], bool]
) -> dt.date:
    """The first day of the unbroken run of days up to ``day`` on which ``holds(summary)`` is true."""
    start = day
    while (previous := start - dt.timedelta(days=1)) in history and holds(history[previous]):
        start = previous
    return start
