"""The main job on the embedded default: simulate a shop, then run the nightly pipeline through Airflow.

1. simulate the shop (``demo`` scale by default) into the raw lake, with the checkout slowing down for the
   last nights so the drift report has something to find;
2. prepare Airflow's metadata database (SQLite) and parse the DAGs;
3. the initial history load: one run of the features DAG that covers the training window before the first
   night (``history_from``), so the first training set has the features of every session it holds; the tables of
   the models with longer windows reach further back in the same run (``table_history_from``);
4. for each of the last ``nights`` dates: ``airflow dags test`` of the features DAG, then of the training DAG;
   after the last night, the A/B readouts DAG;
5. a summary: what ran, how long each stage took (from Airflow's own task records), which version of each model
   is champion and why (from the gate's record in MLflow), the drift verdicts, and where to look.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import resource
import sqlite3
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import click
from storefront_airflow.models import TRAINED_MODELS

from config import get_settings
from config.models import get_models_config
from simulator.shop import DriftSwitch, simulate
from storefront.airflow_env import airflow_env, prepare_metadata_db, run_airflow
from storefront.progress import JobProgress, PlannedStep

log = logging.getLogger(__name__)

# The feature tables a model with a longer training window than the others reads that far back: promotion joins
# each offer of its 120-day window with the customer's history, elasticity fits 12 weeks of product demand.
LONG_WINDOW_TABLES: dict[str, tuple[str, ...]] = {
    "promotion": ("customer_history",),
    "elasticity": ("product_demand",),
}


@dataclass
class StepTiming:
    name: str
    seconds: float
    ok: bool
    log_file: Path | None = None


@dataclass
class MainJobReport:
    steps: list[StepTiming] = field(default_factory=list)
    task_seconds: dict[str, list[float]] = field(default_factory=dict)
    champions: dict[str, dict | None] = field(default_factory=dict)  # model -> its champion's gate record
    drift: dict[str, dict | None] = field(default_factory=dict)  # model -> the last night's drift summary
    readouts: Path | None = None  # the A/B readouts' index page of the last night
    wall_seconds: float = 0.0
    peak_rss_mb: float = 0.0


def _timed(report: MainJobReport, name: str, fn, log_file: Path | None = None):
    began = time.perf_counter()
    ok = False
    try:
        result = fn()
        ok = True
        return result
    finally:
        seconds = time.perf_counter() - began
        report.steps.append(StepTiming(name, seconds, ok, log_file))
        where = f" (log: {log_file})" if log_file else ""
        log.info("%s %s in %.1f s%s", name, "done" if ok else "FAILED", seconds, where)


def _task_durations(airflow_db: Path) -> dict[str, list[float]]:
    """Seconds per task id over every successful task instance, from Airflow's metadata database."""
    if not airflow_db.exists():
        return {}
    with sqlite3.connect(airflow_db) as db:
        rows = db.execute(
            "select dag_id, task_id, duration from task_instance where state = 'success' and duration is not null"
        ).fetchall()
    out: dict[str, list[float]] = {}
    for dag_id, task_id, duration in rows:
        out.setdefault(f"{dag_id}.{task_id}", []).append(float(duration))
    return out


def _champion_summary(model: str) -> dict | None:
    from training.shared.registry import champion, configure_mlflow

    configure_mlflow()
    version = champion(model)
    if version is None:
        return None
    tags = dict(version.tags or {})
    return {
        "model": model,
        "version": version.version,
        "run_id": version.run_id,
        "decision": tags.get("gate.decision"),
        "reason": tags.get("gate.reason"),
        "metric": tags.get("gate.metric"),
        "score": tags.get("gate.challenger_score"),
        "previous_champion_score": tags.get("gate.champion_score"),
    }


def _latest_drift(model: str, day: dt.date) -> dict | None:
    summary = get_settings().reports / "drift" / model / f"dt={day.isoformat()}" / "summary.json"
    if not summary.exists():
        return None
    record = json.loads(summary.read_text())
    record["path"] = str(summary.parent)
    return record


def run_main_job(
    report: MainJobReport, start: dt.date, end: dt.date, nights: int, scale: str, seed: int, fresh: bool
) -> MainJobReport:
    """Run every step, recording each in ``report`` as it finishes (so a failure still leaves a summary)."""
    settings = get_settings()
    began = time.perf_counter()
    logs = settings.var_root / "logs" / "main_job"
    first_night = end - dt.timedelta(days=nights - 1)
    models_config = get_models_config()
    windows = {m: models_config.model(m).training_window_days for m in TRAINED_MODELS}
    base_window = min(windows.values())
    history_from = max(start, first_night - dt.timedelta(days=base_window))
    # Models with a longer window need only their own tables that far back: the same run reaches further back
    # for those tables alone (each table's earliest date over the models that read it).
    reach_back: dict[str, dt.date] = {}
    for model, tables in LONG_WINDOW_TABLES.items():
        if model in windows and windows[model] > base_window:
            long_from = max(start, first_night - dt.timedelta(days=windows[model]))
            for table in tables:
                reach_back[table] = min(reach_back.get(table, long_from), long_from)
    if max(start, first_night - dt.timedelta(days=max(windows.values()))) == start:
        log.warning("the simulated range starts inside a training window: early nights train on less history")

    env = airflow_env()
    plan: list[tuple[PlannedStep, Callable[[Callable[[str], None]], object], Path | None]] = []

    if fresh or not (settings.raw_root / "_truth" / "truth.json").exists():
        drift = (DriftSwitch("slow_checkout", end - dt.timedelta(days=2)),)
        plan.append((PlannedStep("simulate", "simulate"),
                     lambda _: simulate(start, end, settings.raw_root, seed=seed, scale=scale, drift=drift,
                                        overwrite=True), None))
    plan.append((PlannedStep("airflow metadata database", "metadata"), lambda _: prepare_metadata_db(env), None))

    def dag_test(name: str, kind: str, dag_id: str, day: dt.date, log_name: str, conf: dict | None = None) -> None:
        log_file = logs / f"{log_name}.log"
        args = ["dags", "test", dag_id, day.isoformat(), *(["-c", json.dumps(conf)] if conf else [])]
        plan.append((PlannedStep(name, kind),
                     lambda on_line: run_airflow(args, env=env, log_file=log_file, on_line=on_line), log_file))

    def features(day: dt.date, conf: dict, kind: str) -> None:
        reach = conf.get("table_history_from", {})
        what = f" (history from {conf['history_from']}" if "history_from" in conf else ""
        what += "".join(f", {table} from {first}" for table, first in sorted(reach.items()))
        what += ")" if what else ""
        dag_test(f"features DAG {day}{what}", kind, "storefront_features", day, f"features_{day.isoformat()}", conf)

    # One run for the whole history (every table's folder exists after it, which Feast's apply and materialize
    # read), materialized once, oldest to newest: the online store ends with the newest values.
    last_history_day = first_night - dt.timedelta(days=1)
    if last_history_day >= history_from:
        reach = {table: first.isoformat() for table, first in sorted(reach_back.items()) if first < history_from}
        conf = {"history_from": history_from.isoformat(), **({"table_history_from": reach} if reach else {})}
        features(last_history_day, conf, "history")
    for i in range(nights):
        day = first_night + dt.timedelta(days=i)
        features(day, {}, "features")
        dag_test(f"training DAG {day}", "training", "storefront_training", day, f"training_{day}")
    # The A/B readouts DAG runs on every features run in production; here once, on the last night, where every
    # experiment of the demo range has reached its planned end (its final readout).
    dag_test(f"A/B readouts DAG {end}", "readouts", "storefront_ab_readouts", end, f"ab_readouts_{end}")

    with JobProgress([step for step, _, _ in plan]) as progress:
        for index, (step, run, log_file) in enumerate(plan):
            with progress.step(index):
                _timed(report, step.name, lambda run=run: run(progress.on_line), log_file)

    index = settings.reports / "ab_readouts" / f"dt={end.isoformat()}" / "index.html"
    report.readouts = index if index.exists() else None

    report.champions = {model: _champion_summary(model) for model in TRAINED_MODELS}
    report.drift = {model: _latest_drift(model, end) for model in TRAINED_MODELS}
    report.wall_seconds = time.perf_counter() - began
    return report


def _finish(report: MainJobReport) -> None:
    report.task_seconds = _task_durations(get_settings().var_root / "airflow" / "airflow.db")
    report.peak_rss_mb = max(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss,
                             resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) / 1024


def render_summary(report: MainJobReport) -> str:
    settings = get_settings()
    lines = ["", "== Storefront ML main job ==", ""]
    lines.append(f"{'step':<58}{'seconds':>9}  result")
    for step in report.steps:
        lines.append(f"{step.name:<58}{step.seconds:>9.1f}  {'ok' if step.ok else 'FAILED'}")
    if report.task_seconds:
        lines += ["", f"{'Airflow task (all runs)':<58}{'runs':>5}{'mean s':>9}{'total s':>9}"]
        for task, secs in sorted(report.task_seconds.items()):
            lines.append(f"{task:<58}{len(secs):>5}{sum(secs) / len(secs):>9.1f}{sum(secs):>9.1f}")
    lines.append("")
    for model, c in report.champions.items():
        if c is None:
            lines.append(f"{model} champion: none (no version passed the gate)")
            continue
        lines.append(f"{model} champion: version {c['version']} (run {c['run_id']})")
        lines.append(f"  why: {c['decision']}: {c['reason']} ({c['metric']} {c['score']}, "
                     f"previous champion {c['previous_champion_score']})")
    for model, d in report.drift.items():
        if d is None:
            continue
        drifted = ", ".join(str(c.get("column", c)) if isinstance(c, dict) else str(c) for c in d["drifted_columns"])
        lines.append(f"{model} drift {d.get('day')}: share {d.get('drift_share')}, alert {d.get('alert')}; "
                     f"drifted: {drifted or 'none'}")
    if report.readouts:
        lines.append(f"A/B readouts: {report.readouts}")
    lines += [
        "",
        f"wall time {report.wall_seconds:.1f} s; peak RSS of one process {report.peak_rss_mb:,.0f} MB",
        "",
        "where to look:",
        f"  MLflow UI:   .venv/bin/mlflow ui --backend-store-uri {settings.tracking_uri} "
        f"--default-artifact-root {settings.artifact_root}",
        f"  drift:       {settings.reports / 'drift'}/<model>/",
        f"  data docs:   {settings.reports / 'data_docs' / 'index.html'}",
        f"  quarantine:  {settings.quarantine_root}",
        f"  task logs:   {settings.var_root / 'logs' / 'main_job'} and {settings.var_root / 'airflow' / 'logs'}",
    ]
    return "\n".join(lines)


@click.command("main-job")
@click.option("--start", default="2026-01-01", help="First simulated day.")
@click.option("--end", default="2026-04-30", help="Last simulated day = the last nightly run.")
@click.option("--nights", default=7, show_default=True, help="Nightly runs at the end of the range.")
@click.option("--scale", default=None, help="Shop size [default: $STOREFRONT_SCALE, demo].")
@click.option("--seed", default=None, type=int, help="Seed [default: $STOREFRONT_SEED].")
@click.option("--reuse-lake", is_flag=True, help="Keep a simulated lake that is already there.")
def main_job_command(start: str, end: str, nights: int, scale: str | None, seed: int | None, reuse_lake: bool) -> None:
    """Simulate a shop and run the nightly pipeline through Airflow for its last NIGHTS dates."""
    settings = get_settings()
    report = MainJobReport()
    try:
        run_main_job(
            report, dt.date.fromisoformat(start), dt.date.fromisoformat(end), nights, scale or settings.scale,
            settings.seed if seed is None else seed, fresh=not reuse_lake,
        )
    except subprocess.CalledProcessError:
        _finish(report)
        click.echo(render_summary(report))
        failed = report.steps[-1]
        tail = failed.log_file.read_text().splitlines()[-40:] if failed.log_file and failed.log_file.exists() else []
        click.echo("\n".join(["", f"FAILED: {failed.name}; last lines of {failed.log_file}:", *tail]), err=True)
        raise click.ClickException(f"{failed.name} failed; full log: {failed.log_file}") from None
    _finish(report)
    click.echo(render_summary(report))
