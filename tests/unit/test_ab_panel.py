"""The readout panel of an experiment whose rows the lake does not (yet) hold.

Found by ``benchmarks/feature_builds.py --dags`` on a 60-day shop: an experiment of the registry whose units have
no day rows in the lake's dates made ``build_panel`` index numpy with the float64 of an empty mapped Series, and
the A/B readouts DAG failed.
"""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from config.experiments import ExperimentConfig
from monitoring.ab_readouts.readout import COVARIATE_COLUMNS, OUTCOME_COLUMNS, build_panel

START = dt.date(2026, 3, 1)
CFG = ExperimentConfig(
    name="checkout test",
    variants=({"name": "control", "weight": 0.5}, {"name": "treatment", "weight": 0.5}),
    start_date=START,
    end_date=START + dt.timedelta(days=13),
    primary_metric="conversion_rate",
    min_detectable_effect=0.05,
)


def _units(n: int) -> pd.DataFrame:
    return pd.DataFrame({
        "unit_id": [f"c{i}" for i in range(n)],
        "variant": ["control", "treatment"][:n] * (n // 2) + ["control"] * (n % 2),
        "exposure_date": [pd.Timestamp(START)] * n,
        **{c: [0.0] * n for c in COVARIATE_COLUMNS},
    })


def _unit_days(unit_ids: list[str], days: list[dt.date]) -> pd.DataFrame:
    rows = [(u, pd.Timestamp(d)) for u in unit_ids for d in days]
    return pd.DataFrame({
        "unit_id": [u for u, _ in rows],
        "day": [d for _, d in rows],
        **{c: [1.0] * len(rows) for c in OUTCOME_COLUMNS},
    })


@pytest.mark.parametrize("units", [0, 4], ids=["no units", "units without day rows"])
def test_an_experiment_without_day_rows_gets_an_empty_panel(units: int) -> None:
    panel = build_panel(_units(units), _unit_days([], []), CFG, START + dt.timedelta(days=2))
    assert len(panel.looks) == 3
    assert panel.exposed.shape == (units, 3) and panel.arm.dtype.kind == "i"
    assert all(panel.cumulative[c].shape == (units, 3) and not panel.cumulative[c].any() for c in OUTCOME_COLUMNS)


def test_day_rows_accumulate_per_unit_and_look() -> None:
    units = _units(2)
    days = [START, START + dt.timedelta(days=2), START + dt.timedelta(days=9)]  # the last is after the last look
    panel = build_panel(units, _unit_days(["c0"], days), CFG, START + dt.timedelta(days=2))
    assert panel.cumulative["sessions"].tolist() == [[1.0, 1.0, 2.0], [0.0, 0.0, 0.0]]


@pytest.mark.parametrize("units", [0, 4], ids=["no units", "units without day rows"])
def test_the_readout_page_of_an_experiment_without_day_rows_says_n_a(units: int, tmp_path) -> None:
    """Undefined p-values (no outcomes yet) are null in the JSON and ``n/a`` on the page, not a failed DAG."""
    import json

    from config.experiments import ExperimentRegistry
    from monitoring.ab_readouts.readout import readout
    from monitoring.ab_readouts.report import write_pages

    day = START + dt.timedelta(days=2)
    panel = build_panel(_units(units), _unit_days([], []), CFG, day)
    registry = ExperimentRegistry(experiments={"exp_checkout": CFG})
    record = readout(panel, CFG, registry, experiment_id="exp_checkout", run_date=day, mismatches=[])
    written = write_pages(tmp_path, day, [record], [])
    page = tmp_path / "exp_checkout" / f"dt={day.isoformat()}"
    assert (page / "readout.html").is_file() and "n/a" in (page / "readout.html").read_text()
    assert json.loads((page / "readout.json").read_text())["experiment_id"] == "exp_checkout"
    assert written
