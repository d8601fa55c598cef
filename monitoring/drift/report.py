"""Data drift of a model's inputs: Evidently behind one small module.

The daily drift monitor compares the date's session features (``current``) with the champion model's training
reference sample (``reference``, a parquet of the same feature columns) and writes, per (model, date), under
``<reports>/drift/<model>/dt=<date>/``:

- ``report.html``: Evidently's report, for people (about 5 MB even for a small frame; never parse it);
- ``report.json``: Evidently's own result (``Snapshot.save_json``: metrics and per-column tests);
- ``summary.json``: our small, stable record (:data:`SUMMARY_SCHEMA_VERSION`), the machine contract that the
  on-call tooling and the Airflow Asset trigger read. It is written last and atomically, so a reader that finds
  it also finds both reports complete.

Columns are typed by us, never guessed by Evidently: :data:`COLUMN_KINDS` comes from the ``session_kpis``
feature table (strings and 0/1 flags categorical, KPIs numerical). The stattests are pinned too:
normed Wasserstein distance for numerical and Jensen-Shannon distance for categorical columns. Left to itself,
Evidently picks them from the reference's size (KS and chi-square p-values up to 1000 rows, those distances
above), which would silently flip what ``DriftConfig.stattest_threshold`` means between a small and a big
reference. Both pinned tests are distances: a column drifted when its score is at or above the threshold, and
their scores do not grow with the sample size the way p-values shrink. ``DriftConfig.stattest_threshold`` is
therefore the distance threshold of both (Evidently's own default for them is 0.1).

Every Evidently and MLflow call of the monitor is in this file, so an upgrade of either touches only it.
Running a date twice overwrites that date's files with the same content (the report's timestamp is the date,
not the clock) and reuses that date's MLflow run.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pandas as pd

from config.models import DriftConfig, get_models_config
from config.settings import get_settings
from feature_repo.features.tables import CUSTOMER_HISTORY, PRODUCT_DEMAND, PRODUCT_RANKING, SESSION_KPIS

logger = logging.getLogger(__name__)

ColumnKind = Literal["numerical", "categorical"]

NUMERICAL_STATTEST = "wasserstein"  # Wasserstein distance normed by the reference's standard deviation
CATEGORICAL_STATTEST = "jensenshannon"  # Jensen-Shannon distance of the category shares (natural log)
SUMMARY_SCHEMA_VERSION = 1
REFERENCE_SAMPLE_SEED = 0  # only used when a reference is larger than DriftConfig.reference_sample_rows
HTML_FILE, JSON_FILE, SUMMARY_FILE = "report.html", "report.json", "summary.json"

_NOT_MONITORED = frozenset({"customer_id"})  # an identifier, not a distribution
_CATEGORICAL_FLAGS = frozenset({"is_anonymous"})  # 0/1: what can drift is the share, not a magnitude

COLUMN_KINDS: dict[str, ColumnKind] = {
    c.name: "categorical" if c.dtype == "string" or c.name in _CATEGORICAL_FLAGS else "numerical"
    for c in SESSION_KPIS.columns
    if c.name not in _NOT_MONITORED
}
# the ranking model's product features (``product_ranking``): monitored when the caller names them
COLUMN_KINDS.update({c.name: "categorical" if c.dtype == "string" else "numerical" for c in PRODUCT_RANKING.columns})
# the recommender's interactions (``customer_product_interactions``), ids excluded: device mix and interaction depth
COLUMN_KINDS.update({c: "numerical" for c in ("impressions", "clicks", "carts", "purchases", "strength")})
# the promotion model's inputs (``customer_history``): counts, amounts, days and shares; the acquisition channel
COLUMN_KINDS.update({c.name: "categorical" if c.dtype == "string" else "numerical" for c in CUSTOMER_HISTORY.columns})
# the elasticity model's product days (``product_demand``): category and the 0/1 flags categorical, the rest numerical
COLUMN_KINDS.update(
    {
        c.name: "categorical" if c.dtype == "string" or c.name in ("is_marked_down", "has_promotion") else "numerical"
        for c in PRODUCT_DEMAND.columns
    }
)
"""Every column the monitor knows how to compare, and how. Extend it here (e.g. logged predictions)."""

DEFAULT_COLUMNS: tuple[str, ...] = tuple(c.name for c in SESSION_KPIS.columns if c.name not in _NOT_MONITORED)
"""What is monitored when the caller names no columns: the ``session_kpis`` features (customer_id excluded)."""


@dataclass(frozen=True)
class ColumnDrift:
    """One column's comparison: the stattest, its score (a distance for the pinned tests) and the verdict."""

    name: str
    kind: ColumnKind
    stattest: str
    score: float
    threshold: float
    drifted: bool

    def record(self) -> dict[str, Any]:
        return {
            "column": self.name,
            "kind": self.kind,
            "stattest": self.stattest,
            "score": round(self.score, 6),
            "threshold": self.threshold,
        }


@dataclass(frozen=True)
class DriftResult:
    """The outcome of one drift report: the share of drifted columns, which ones, and where the files are."""

    model: str
    day: dt.date
    drift_share: float  # drifted columns / monitored columns, 0..1
    n_columns: int
    columns: tuple[ColumnDrift, ...]  # every monitored column, in the order given
    alert: bool  # drift_share >= drift_share_alert
    stattest_threshold: float
    drift_share_alert: float
    reference_rows: int  # rows compared (after sampling the reference down to reference_sample_rows)
    current_rows: int
    html_path: Path
    json_path: Path
    summary_path: Path

    @property
    def drifted_columns(self) -> tuple[ColumnDrift, ...]:
        return tuple(c for c in self.columns if c.drifted)

    @property
    def n_drifted(self) -> int:
        return len(self.drifted_columns)

    @property
    def drifted_names(self) -> list[str]:
        return [c.name for c in self.drifted_columns]

    def summary(self) -> dict[str, Any]:
        """The ``summary.json`` record (paths relative to its folder: the three files travel together)."""
        from evidently import __version__ as evidently_version

        return {
            "schema_version": SUMMARY_SCHEMA_VERSION,
            "model": self.model,
            "day": self.day.isoformat(),
            "drift_share": round(self.drift_share, 6),
            "n_drifted": self.n_drifted,
            "n_columns": self.n_columns,
            "alert": self.alert,
            "drifted_columns": [c.record() for c in self.drifted_columns],
            "scores": {c.name: round(c.score, 6) for c in self.columns},
            "thresholds": {
                "stattest_threshold": self.stattest_threshold,
                "drift_share_alert": self.drift_share_alert,
                "numerical_stattest": NUMERICAL_STATTEST,
                "categorical_stattest": CATEGORICAL_STATTEST,
            },
            "rows": {"reference": self.reference_rows, "current": self.current_rows},
            "reports": {"html": self.html_path.name, "json": self.json_path.name},
            "evidently_version": evidently_version,
        }


def drift_report_dir(model: str, day: dt.date, reports_root: Path | None = None) -> Path:
    """``<reports>/drift/<model>/dt=<day>``: where a (model, date)'s three files live."""
    return (reports_root or get_settings().reports) / "drift" / model / f"dt={day.isoformat()}"


def drift_report(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    *,
    day: dt.date,
    model: str,
    columns: list[str] | None = None,
    config: DriftConfig | None = None,
    out_dir: Path | None = None,
) -> DriftResult:
    """Compare ``current`` with ``reference`` column by column and write the report, its JSON and the summary.

    Args:
        reference: the champion's training reference sample; sampled down (seeded) to
            ``config.reference_sample_rows`` when larger. Extra columns are ignored.
        current: the date's features. Extra columns are ignored.
        day: the date the report is about (the run's data interval, never the clock).
        model: the model whose inputs these are; names the report folder and the MLflow experiment.
        columns: what to compare [default: :data:`DEFAULT_COLUMNS`]; each must be in :data:`COLUMN_KINDS`.
        config: thresholds [default: ``drift`` of ``config/models.yaml``].
        out_dir: folder for the three files [default: :func:`drift_report_dir`].

    Raises:
        ValueError: an unknown or missing column, or an empty frame: a report that could not compare what it
            should is an error, never an empty "no drift".
    """
    config = config or get_models_config().drift
    columns = _checked_columns(columns, reference, current)
    reference = _prepared(_sampled(reference, config.reference_sample_rows), columns)
    current = _prepared(current, columns)
    out_dir = Path(out_dir) if out_dir is not None else drift_report_dir(model, day)

    snapshot = _run_evidently(reference, current, columns, config, day=day, model=model)
    report = snapshot.dict()
    column_results = _column_results(report, columns)
    n_drifted = sum(c.drifted for c in column_results)
    _check_dataset_count(report, n_drifted, len(columns))
    share = n_drifted / len(columns)
    result = DriftResult(
        model=model,
        day=day,
        drift_share=share,
        n_columns=len(columns),
        columns=tuple(column_results),
        alert=share >= config.drift_share_alert,
        stattest_threshold=config.stattest_threshold,
        drift_share_alert=config.drift_share_alert,
        reference_rows=len(reference),
        current_rows=len(current),
        html_path=out_dir / HTML_FILE,
        json_path=out_dir / JSON_FILE,
        summary_path=out_dir / SUMMARY_FILE,
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    _write_atomically(result.html_path, lambda path: snapshot.save_html(str(path)))
    _write_atomically(result.json_path, lambda path: snapshot.save_json(str(path)))
    summary_text = json.dumps(result.summary(), indent=2) + "\n"
    _write_atomically(result.summary_path, lambda path: path.write_text(summary_text))
    logger.info("%s; reports in %s", drift_summary_line(result), out_dir)
    return result


def drift_summary_line(result: DriftResult) -> str:
    """One line for the task log: the share, the threshold, the drifted columns and whether on-call is alerted."""
    drifted = ", ".join(result.drifted_names) or "none"
    return (
        f"drift {result.model} {result.day}: share {result.drift_share:.2f} "
        f"({result.n_drifted}/{result.n_columns} columns; alert at {result.drift_share_alert:.2f}), "
        f"alert {'yes' if result.alert else 'no'}; drifted: {drifted}"
    )


def drift_experiment(model: str) -> str:
    """The MLflow experiment of ``model``'s drift runs (``storefront.stores.prepare_stores`` creates it up front)."""
    return f"drift-{model}"


def log_drift_to_mlflow(result: DriftResult, champion_version: str | None) -> str:
    """Record ``result`` in MLflow: one run per (model, day) in experiment ``drift-<model>``; returns its id.

    Metrics ``drift_share``, ``n_drifted``, ``n_columns``, the row counts and ``score.<column>`` (stamped with
    the day, so runs chart in date order), tags naming the day, the champion version, the thresholds and the
    drifted columns, and the three files as artifacts under ``drift/``. Running the same (model, day) again
    updates that run instead of adding one. Through ``training.shared.registry`` (the one door to MLflow), on a
    client of its own (no global MLflow state).
    """
    from training.shared.registry import log_dated_run

    day = result.day.isoformat()
    tags = {
        "model": result.model,
        "drift_day": day,
        "champion_version": champion_version or "none",
        "alert": str(result.alert).lower(),
        "drifted_columns": ",".join(result.drifted_names),
        "stattest_threshold": str(result.stattest_threshold),
        "drift_share_alert": str(result.drift_share_alert),
        "numerical_stattest": NUMERICAL_STATTEST,
        "categorical_stattest": CATEGORICAL_STATTEST,
    }
    stamp = int(dt.datetime.combine(result.day, dt.time(), dt.UTC).timestamp() * 1000)
    values = {
        "drift_share": result.drift_share,
        "n_drifted": result.n_drifted,
        "n_columns": result.n_columns,
        "reference_rows": result.reference_rows,
        "current_rows": result.current_rows,
        **{f"score.{c.name}": c.score for c in result.columns},
    }
    name = drift_experiment(result.model)
    run_id = log_dated_run(
        name, key_tag="drift_day", run_name=f"drift-{result.model}-{day}", tags=tags, metrics=values,
        timestamp_ms=stamp, artifacts=(result.html_path, result.json_path, result.summary_path), artifact_path="drift",
    )
    logger.info("drift %s %s logged to MLflow run %s (experiment %s)", result.model, day, run_id, name)
    return run_id


# --- internals -----------------------------------------------------------------------------------------------------
def _checked_columns(columns: Sequence[str] | None, reference: pd.DataFrame, current: pd.DataFrame) -> list[str]:
    columns = list(DEFAULT_COLUMNS if columns is None else columns)
    if not columns:
        raise ValueError("no columns to compare")
    if len(set(columns)) != len(columns):
        raise ValueError(f"columns named twice: {sorted({c for c in columns if columns.count(c) > 1})}")
    unknown = [c for c in columns if c not in COLUMN_KINDS]
    if unknown:
        raise ValueError(
            f"no column kind for {unknown}: declare them in monitoring.drift.report.COLUMN_KINDS "
            "(the monitor never lets Evidently guess a type)"
        )
    for label, frame in (("reference", reference), ("current", current)):
        missing = [c for c in columns if c not in frame.columns]
        if missing:
            raise ValueError(f"the {label} frame lacks {missing}")
        if frame.empty:
            raise ValueError(f"the {label} frame has no rows")
    return columns


def _sampled(reference: pd.DataFrame, rows: int) -> pd.DataFrame:
    if len(reference) <= rows:
        return reference
    logger.info("reference has %d rows; comparing a seeded sample of %d", len(reference), rows)
    return reference.sample(n=rows, random_state=REFERENCE_SAMPLE_SEED).sort_index()


def _prepared(frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """Only ``columns``, numerical as float64, categorical as strings (0/1 flags read the same from any dtype)."""
    out = frame.loc[:, columns].reset_index(drop=True)
    for column in columns:
        if COLUMN_KINDS[column] == "numerical":
            out[column] = pd.to_numeric(out[column], errors="raise").astype("float64")
        else:
            values = out[column]
            if pd.api.types.is_bool_dtype(values) or pd.api.types.is_numeric_dtype(values):
                values = values.astype("Int64")  # True, 1 and 1.0 all become "1"
            out[column] = (
                values.astype("object").where(values.notna(), None).map(lambda v: None if v is None else str(v))
            )
    return out


def _run_evidently(
    reference: pd.DataFrame, current: pd.DataFrame, columns: list[str], config: DriftConfig, *, day: dt.date, model: str
) -> Any:
    """Evidently's snapshot of the comparison, every column typed and every stattest and threshold pinned."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    definition = DataDefinition(
        numerical_columns=[c for c in columns if COLUMN_KINDS[c] == "numerical"],
        categorical_columns=[c for c in columns if COLUMN_KINDS[c] == "categorical"],
        # an empty list (not None) for every other kind, or Evidently infers the rest from the data
        text_columns=[],
        datetime_columns=[],
        unknown_columns=[],
        list_columns=[],
    )
    preset = DataDriftPreset(
        columns=columns,
        drift_share=config.drift_share_alert,
        num_method=NUMERICAL_STATTEST,
        cat_method=CATEGORICAL_STATTEST,
        threshold=config.stattest_threshold,
    )
    report = Report([preset], include_tests=True, metadata={"model": model, "day": day.isoformat()})
    return report.run(
        current_data=Dataset.from_pandas(current, data_definition=definition),
        reference_data=Dataset.from_pandas(reference, data_definition=definition),
        timestamp=dt.datetime.combine(day, dt.time()),
        tags=["drift", model],
    )


def _column_results(report: dict[str, Any], columns: list[str]) -> list[ColumnDrift]:
    """Per-column results from ``Snapshot.dict()``: scores from the ValueDrift metrics, verdicts from their tests.

    A ValueDrift metric carries the column, method, threshold and score; its test (linked by metric id) carries
    Evidently's verdict (``FAIL`` = drifted), so the direction of each stattest stays Evidently's business.
    """
    metrics = {m["id"]: m for m in report["metrics"] if m["config"].get("type", "").endswith(":ValueDrift")}
    verdicts = {
        t["metric_config"]["metric_id"]: t["status"]
        for t in report["tests"]
        if t["metric_config"]["metric_id"] in metrics
    }
    by_column: dict[str, ColumnDrift] = {}
    for metric_id, metric in metrics.items():
        config = metric["config"]
        status = verdicts.get(metric_id)
        if status not in ("FAIL", "SUCCESS"):
            raise RuntimeError(f"Evidently gave no drift verdict for {config['column']!r} (test status {status!r})")
        by_column[config["column"]] = ColumnDrift(
            name=config["column"],
            kind=COLUMN_KINDS[config["column"]],
            stattest=str(config["method"]),
            score=float(metric["value"]),
            threshold=float(config["threshold"]),
            drifted=status == "FAIL",
        )
    missing = [c for c in columns if c not in by_column]
    if missing:
        raise RuntimeError(f"Evidently's report has no drift result for {missing}")
    return [by_column[c] for c in columns]


def _check_dataset_count(report: dict[str, Any], n_drifted: int, n_columns: int) -> None:
    """Evidently counts drifted columns on a second code path; a disagreement means its API moved under us."""
    counts = [m["value"] for m in report["metrics"] if m["config"].get("type", "").endswith(":DriftedColumnsCount")]
    if len(counts) != 1:
        raise RuntimeError(f"expected one DriftedColumnsCount in Evidently's report, found {len(counts)}")
    count = round(float(counts[0]["count"]))
    if count != n_drifted:
        raise RuntimeError(
            f"Evidently counts {count} drifted columns of {n_columns}, its per-column tests {n_drifted}: "
            "check monitoring.drift.report against the installed Evidently"
        )


def _write_atomically(path: Path, write: Callable[[Path], object]) -> None:
    """Write through a temporary file in the same folder and rename it over ``path``."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
