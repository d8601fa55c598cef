"""Failure callbacks: tell on-call which task of which date failed and why, in the log and as a JSON record."""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Mapping
from typing import Any

log = logging.getLogger(__name__)


def notify_on_call(context: Mapping[str, Any]) -> None:
    """Log the failure at ERROR and write ``<reports>/alerts/failures/<dag>__<task>__<run>.json``."""
    from config import get_settings  # inside: DAG files import this module at parse time

    ti = context.get("task_instance") or context.get("ti")
    dag_id = getattr(ti, "dag_id", "?")
    task_id = getattr(ti, "task_id", "?")
    run_id = str(context.get("run_id") or getattr(ti, "run_id", "?"))
    error = context.get("exception")
    record = {
        "dag_id": dag_id,
        "task_id": task_id,
        "run_id": run_id,
        "params": dict(context.get("params") or {}),
        "error": f"{type(error).__name__}: {error}" if error else None,
        "try_number": getattr(ti, "try_number", None),
        "recorded_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    log.error("storefront task failed: %s.%s (%s): %s", dag_id, task_id, run_id, record["error"])
    folder = get_settings().reports / "alerts" / "failures"
    folder.mkdir(parents=True, exist_ok=True)
    safe_run = "".join(c if c.isalnum() or c in "-_." else "_" for c in run_id)
    (folder / f"{dag_id}__{task_id}__{safe_run}.json").write_text(json.dumps(record, indent=2, default=str))
