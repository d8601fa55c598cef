"""The prediction log: every prediction the service makes, written in batches off the request path.

Layout (hive partitions the drift monitor and Spark read as they are)::

    <lake>/predictions/<model>/dt=YYYY-MM-DD/part-<first logged_at, us>-<pid>-<n>.parquet

One row per prediction: ``request_id``, ``logged_at`` (UTC, microseconds), ``model_name``, ``model_version``,
``endpoint``, ``latency_ms``, ``fallback`` (the fallback reason, or null), then the request's features under
their feature names (the columns the model's training reference sample has, so ``monitoring.drift.report`` compares
them directly), then the output (scalars as columns, lists as JSON text in ``output``).

A request only appends to an in-memory queue (microseconds). A writer thread takes what is queued every
``flush_seconds`` or every ``batch_rows`` rows, whichever comes first, and writes one file per (model, date)
with a temporary name and an atomic rename, so a reader never sees half a file. ``close()`` (the app's
shutdown) writes everything still queued before it returns: a clean shutdown loses nothing. When the queue is
full (the disk cannot keep up) a prediction is dropped and counted rather than slowing the response.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import queue
import threading
import time
from collections import defaultdict
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from serving.metrics import ServingMetrics

log = logging.getLogger(__name__)

BASE_COLUMNS = ("request_id", "logged_at", "model_name", "model_version", "endpoint", "latency_ms", "fallback")
_STOP = object()


def prediction_log_root(lake: Path) -> Path:
    return lake / "predictions"


class PredictionLog:
    """Batched, asynchronous writer of prediction rows (see the module docstring)."""

    def __init__(
        self,
        root: Path,
        metrics: ServingMetrics,
        *,
        flush_seconds: float = 2.0,
        batch_rows: int = 2000,
        max_queue: int = 200_000,
    ) -> None:
        self.root = root
        self._metrics = metrics
        self._flush_seconds = flush_seconds
        self._batch_rows = batch_rows
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=max_queue)
        self._thread: threading.Thread | None = None
        self._files = 0
        self._lock = threading.Lock()

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="prediction-log", daemon=True)
            self._thread.start()

    def append(self, row: Mapping[str, Any]) -> None:
        """Queue one prediction row (``BASE_COLUMNS`` plus features and outputs); never blocks."""
        try:
            self._queue.put_nowait(row)
        except queue.Full:
            self._metrics.prediction_log_rows.labels("dropped").inc()

    def close(self) -> None:
        """Write everything queued and stop the writer (idempotent)."""
        if self._thread is None:
            self._write(self._drain())
            return
        self._queue.put(_STOP)
        self._thread.join()
        self._thread = None

    def flush(self) -> None:
        """Write what is queued now, from the calling thread (tests, shutdown)."""
        self._write(self._drain())

    def _drain(self) -> list[Mapping[str, Any]]:
        rows = []
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return rows
            if item is not _STOP:
                rows.append(item)

    def _run(self) -> None:
        batch: list[Mapping[str, Any]] = []
        deadline = time.monotonic() + self._flush_seconds
        while True:
            try:
                item = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                item = None
            if item is _STOP:
                batch.extend(self._drain())
                self._write(batch)
                return
            if item is not None:
                batch.append(item)
            if len(batch) >= self._batch_rows or time.monotonic() >= deadline:
                self._write(batch)
                batch = []
                deadline = time.monotonic() + self._flush_seconds
            self._metrics.prediction_log_queue.set(self._queue.qsize() + len(batch))

    def _write(self, rows: list[Mapping[str, Any]]) -> None:
        if not rows:
            return
        groups: dict[tuple[str, dt.date], list[Mapping[str, Any]]] = defaultdict(list)
        for row in rows:
            groups[(str(row["model_name"]), row["logged_at"].date())].append(row)
        for (model, day), group in groups.items():
            try:
                self._write_file(model, day, group)
            except Exception:  # a write error must not kill the writer thread: count the rows as dropped
                log.exception("prediction log: writing %d rows of %s %s failed", len(group), model, day)
                self._metrics.prediction_log_rows.labels("dropped").inc(len(group))
            else:
                self._metrics.prediction_log_rows.labels("written").inc(len(group))

    def _write_file(self, model: str, day: dt.date, rows: list[Mapping[str, Any]]) -> Path:
        frame = pd.DataFrame.from_records(rows)
        for column in frame.columns:  # lists and dicts (ranked ids, per-coupon figures) travel as JSON text
            if frame[column].dtype == object and frame[column].map(lambda v: isinstance(v, list | dict)).any():
                frame[column] = frame[column].map(lambda v: None if v is None else json.dumps(v))
        frame["logged_at"] = pd.to_datetime(frame["logged_at"], utc=True)
        table = pa.Table.from_pandas(frame, preserve_index=False)
        folder = self.root / model / f"dt={day.isoformat()}"
        folder.mkdir(parents=True, exist_ok=True)
        with self._lock:
            self._files += 1
            n = self._files
        first = int(frame["logged_at"].min().value // 1000)
        path = folder / f"part-{first}-{os.getpid()}-{n:06d}.parquet"
        tmp = folder / f".{path.name}.tmp"  # hidden: readers skip names starting with '.' or '_'
        pq.write_table(table, tmp, coerce_timestamps="us", allow_truncated_timestamps=True)
        tmp.replace(path)
        return path


def read_prediction_log(root: Path, model: str, day: dt.date | None = None) -> pd.DataFrame:
    """The logged predictions of ``model`` (one date, or all), oldest first; empty when none were logged."""
    folder = root / model
    if day is not None:
        folder = folder / f"dt={day.isoformat()}"
    files = sorted(p for p in folder.rglob("part-*.parquet")) if folder.exists() else []
    if not files:
        return pd.DataFrame(columns=list(BASE_COLUMNS))
    # files written before and after a model version change may hold different feature columns: union them
    frame = pd.concat([pq.read_table(f).to_pandas() for f in files], ignore_index=True)
    return frame.sort_values(["logged_at", "request_id"], kind="stable").reset_index(drop=True)
