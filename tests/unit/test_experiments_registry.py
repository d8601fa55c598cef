"""The experiment registry: validation, agreement with what the simulator runs, reconciliation, decisions."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pytest
import yaml
from pydantic import ValidationError

from config.experiments import ExperimentRegistry, read_experiments_registry
from config.settings import REPO_ROOT, Settings
from monitoring.ab_readouts.experiments import analysis_windows, reconcile
from monitoring.ab_readouts.readout import MetricPath, decide

DEMO_START, DEMO_END = dt.date(2026, 1, 1), dt.date(2026, 4, 30)  # the range `make demo` simulates


@pytest.fixture(scope="module")
def demo_range_lake(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo date range at tiny scale: experiment windows depend on the range only, not the scale."""
    from simulator.shop import simulate

    out = tmp_path_factory.mktemp("demo_range") / "raw"
    simulate(DEMO_START, DEMO_END, out, seed=7, scale="tiny")
    return out


def _registry_dict() -> dict:
    return yaml.safe_load((REPO_ROOT / "config" / "experiments.yaml").read_text())


def test_the_setting_points_at_the_repo_registry_and_it_validates() -> None:
    assert Settings().experiments_config == REPO_ROOT / "config" / "experiments.yaml"
    registry = read_experiments_registry(REPO_ROOT / "config" / "experiments.yaml")
    assert set(registry.experiments) == {"exp_checkout_redesign", "aa_homepage", "exp_recs_widget"}


def test_the_registry_agrees_with_the_experiments_the_simulator_runs(demo_range_lake: Path) -> None:
    from simulator import world

    registry = read_experiments_registry(REPO_ROOT / "config" / "experiments.yaml")
    assert set(registry.experiments) == set(world.EXPERIMENTS)
    for exp_id, cfg in registry.experiments.items():
        assert cfg.name == world.EXPERIMENTS[exp_id][0]
    for day in (dt.date(2026, 1, 30), dt.date(2026, 3, 1), dt.date(2026, 4, 12)):
        result = reconcile(registry, demo_range_lake, day)
        assert result.mismatches == {} and result.unregistered == [], result
        assert result.analysed == sorted(e for e, c in registry.experiments.items() if c.start_date <= day)


def test_reconciliation_reports_each_difference_and_unregistered_experiments(demo_range_lake: Path) -> None:
    raw = _registry_dict()
    checkout = raw["experiments"]["exp_checkout_redesign"]
    checkout["variants"] = [{"name": "control", "weight": 0.6}, {"name": "treatment", "weight": 0.4}]
    checkout["end_date"] = dt.date(2026, 4, 2)
    del raw["experiments"]["aa_homepage"]
    result = reconcile(ExperimentRegistry.model_validate(raw), demo_range_lake, dt.date(2026, 3, 1))
    problems = result.mismatches["exp_checkout_redesign"]
    assert any("planned weights" in p for p in problems) and any("end_date" in p for p in problems)
    assert len(problems) == 2
    assert result.unregistered == ["aa_homepage"]


def test_analysis_windows_stop_at_the_planned_end() -> None:
    registry = read_experiments_registry(REPO_ROOT / "config" / "experiments.yaml")
    windows = {w.experiment_id: w for w in analysis_windows(registry, dt.date(2026, 4, 30))}
    assert windows["exp_recs_widget"].end == dt.date(2026, 4, 12)
    assert analysis_windows(registry, dt.date(2026, 1, 29)) == []


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda e: e.update(variants=[{"name": "control", "weight": 0.5}, {"name": "b", "weight": 0.6}]), "sum to"),
        (lambda e: e.update(end_date=dt.date(2026, 1, 1)), "before start_date"),
        (lambda e: e.update(primary_metric="page_load_ms"), "primary_metric"),
        (lambda e: e.update(variants=[{"name": "control", "weight": 1.0}]), "weight"),
        (lambda e: e.update(guardrails=[{"metric": "page_load_ms", "max_relative_degradation": 0.05}] * 2), "repeat"),
        (lambda e: e.update(surprise=1), "surprise"),
    ],
)
def test_invalid_registries_are_rejected_with_the_reason(change, message: str) -> None:
    raw = _registry_dict()
    change(raw["experiments"]["aa_homepage"])
    with pytest.raises(ValidationError, match=message):
        ExperimentRegistry.model_validate(raw)


def _path(name: str, role: str, lift: float, low: float, high: float, p: float, threshold=None) -> MetricPath:
    arr = lambda v: np.array([[v]])  # noqa: E731 - one treatment, one look
    return MetricPath(name, role, arr(1000), np.array([[0.3], [0.3]]),
                      {"lift": arr(lift), "ci_low": arr(low), "ci_high": arr(high), "p_value": arr(p)}, arr(p),
                      threshold=threshold)


def test_decisions_never_ship_on_a_broken_split_or_a_breached_guardrail() -> None:
    registry = read_experiments_registry(REPO_ROOT / "config" / "experiments.yaml")
    winner = _path("conversion_rate", "primary", 0.08, 0.02, 0.14, 0.001)
    fine = _path("page_load_ms", "guardrail", 0.0, -0.02, 0.02, 0.9, threshold=0.05)
    slower = _path("page_load_ms", "guardrail", 0.07, 0.03, 0.11, 0.001, threshold=0.05)
    variants = ["control", "treatment"]

    ship = decide(0, {"c": winner, "g": fine}, 0.5, 0.5, variants, registry, False, [])
    assert ship.status == "ship" and ship.variant == "treatment" and "significantly better" in ship.reason
    srm = decide(0, {"c": winner, "g": fine}, 1e-5, 0.5, variants, registry, False, [])
    assert srm.status == "invalid" and "sample-ratio mismatch" in srm.reason
    breach = decide(0, {"c": winner, "g": slower}, 0.5, 0.5, variants, registry, False, [])
    assert breach.status == "stop" and "page_load_ms" in breach.reason
    mismatch = decide(0, {"c": winner, "g": fine}, 0.5, 0.5, variants, registry, False, ["planned weights differ"])
    assert mismatch.status == "invalid" and "planned weights differ" in mismatch.reason
    unsure = _path("conversion_rate", "primary", 0.02, -0.03, 0.07, 0.4)
    assert decide(0, {"c": unsure, "g": fine}, 0.5, 0.5, variants, registry, False, []).status == "keep running"
    end = decide(0, {"c": unsure, "g": fine}, 0.5, 0.5, variants, registry, True, [])
    assert end.status == "stop" and "planned end" in end.reason
