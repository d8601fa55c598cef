"""The real-data A/B benchmark's core on the Udacity landing-page test: the cleaning and statsmodels agreement.

The full benchmark (also Hillstrom) is ``benchmarks/ab_readouts_real.py``. Skips where ``../shared/data`` is absent.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from config.experiments import ExperimentRegistry

BENCHMARK = Path(__file__).resolve().parents[2] / "benchmarks" / "ab_readouts_real.py"


def _load_benchmark():
    spec = importlib.util.spec_from_file_location("ab_readouts_real_benchmark", BENCHMARK)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the file executes
    spec.loader.exec_module(module)
    return module


bench = _load_benchmark()


def test_udacity_cleaning_and_readout_match_statsmodels(shared_data: Path) -> None:
    if not (shared_data / bench.UDACITY).is_file():
        pytest.skip(f"{bench.UDACITY} not in {shared_data}")
    clean, cleaning = bench.load_udacity(shared_data)
    # the source's notes: 294,478 rows, 3,893 group/landing-page mismatches, one user logged twice
    assert (cleaning.rows, cleaning.mismatched, cleaning.duplicated_users) == (294_478, 3_893, 1)
    assert cleaning.kept == clean.user_id.nunique() == 290_584
    record, panel = bench.udacity_readout(clean, ExperimentRegistry(experiments={}))
    assert len(panel.looks) == 23
    ours = record["fixed_horizon"]["conversion_rate"][0]
    theirs = bench.statsmodels_baseline(panel, "conversion_rate")[0]
    for key in ("difference", "ci_low", "ci_high", "statistic", "p_value"):
        assert ours[key] == pytest.approx(theirs[key], rel=1e-9, abs=1e-12), key
    assert ours["relative_lift"] == pytest.approx(-0.0131, abs=5e-4)
    assert record["decision"]["status"] == "stop" and record["srm"]["chi_square_p"] > 0.5
