"""Which experiments a date's readout covers, and whether the registry (the plan) agrees with the record.

The registry (``config/experiments.yaml``) says what was planned; the raw ``experiments`` table's snapshot of the
date says what the experimentation service actually ran. ``reconcile`` compares them field by field: an
experiment whose plan and record disagree is analysed but can never be called (its readout is ``invalid`` with
the differences as the reason), an experiment that ran without being registered is listed on the index page
as unregistered, and a registered experiment that should be running but has no record is reported.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

from config.experiments import ExperimentConfig, ExperimentRegistry
from feature_repo.contract import lake
from feature_repo.contract.schema import EXPERIMENTS


@dataclass
class Reconciliation:
    """The registry against the ``experiments`` snapshot of one date."""

    day: str
    analysed: list[str] = field(default_factory=list)  # registered, started on or before the date
    mismatches: dict[str, list[str]] = field(default_factory=dict)  # experiment -> what differs
    unregistered: list[str] = field(default_factory=list)  # in the table, not in the registry
    names: dict[str, str] = field(default_factory=dict)  # display name of every experiment listed

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class AnalysisWindow:
    """One experiment's exposures and outcomes are read from ``start`` to ``end`` (inclusive)."""

    experiment_id: str
    start: dt.date
    end: dt.date


def analysis_windows(registry: ExperimentRegistry, day: dt.date) -> list[AnalysisWindow]:
    """Registered experiments started by ``day``, each read up to the earlier of ``day`` and its planned end."""
    return [
        AnalysisWindow(exp_id, cfg.start_date, min(day, cfg.end_date))
        for exp_id, cfg in sorted(registry.experiments.items())
        if cfg.start_date <= day
    ]


def _differences(cfg: ExperimentConfig, row: dict) -> list[str]:
    out = []
    if list(row["variants"]) != cfg.variant_names:
        out.append(f"variants: registry {cfg.variant_names} != table {list(row['variants'])}")
    weights = list(row["planned_weights"])
    if len(weights) != len(cfg.weights) or not all(
        math.isclose(a, b, abs_tol=1e-9) for a, b in zip(weights, cfg.weights, strict=False)
    ):
        out.append(f"planned weights: registry {cfg.weights} != table {weights}")
    for name, planned in (("start_date", cfg.start_date), ("end_date", cfg.end_date)):
        if row[name] != planned:
            out.append(f"{name}: registry {planned} != table {row[name]}")
    if row["primary_metric"] != cfg.primary_metric:
        out.append(f"primary metric: registry {cfg.primary_metric} != table {row['primary_metric']}")
    guardrails = sorted(g.metric for g in cfg.guardrails)
    if sorted(row["guardrail_metrics"]) != guardrails:
        out.append(f"guardrails: registry {guardrails} != table {sorted(row['guardrail_metrics'])}")
    if not math.isclose(row["min_detectable_effect"], cfg.min_detectable_effect, abs_tol=1e-9):
        out.append(f"minimum detectable effect: registry {cfg.min_detectable_effect} != table "
                   f"{row['min_detectable_effect']}")
    if row["unit_type"] != cfg.unit_type:
        out.append(f"unit type: registry {cfg.unit_type} != table {row['unit_type']}")
    return out


def reconcile(registry: ExperimentRegistry, raw_root: Path, day: dt.date) -> Reconciliation:
    """Compare the registry with the ``experiments`` snapshot of ``day``.

    Raises FileNotFoundError when the snapshot partition is missing: a readout without the record of what
    ran is not a readout.
    """
    rows = {r["experiment_id"]: r for r in lake.read_partition(raw_root, EXPERIMENTS, day).to_pylist()}
    result = Reconciliation(day=day.isoformat())
    for window in analysis_windows(registry, day):
        cfg = registry.experiment(window.experiment_id)
        result.analysed.append(window.experiment_id)
        result.names[window.experiment_id] = cfg.name
        row = rows.get(window.experiment_id)
        if row is None:
            result.mismatches[window.experiment_id] = [
                f"registered to start on {cfg.start_date} but the experiments table of {day} has no record of it"
            ]
            continue
        differences = _differences(cfg, row)
        if differences:
            result.mismatches[window.experiment_id] = differences
    for exp_id, row in sorted(rows.items()):
        if exp_id not in registry.experiments:
            result.unregistered.append(exp_id)
            result.names[exp_id] = row["name"]
    return result
