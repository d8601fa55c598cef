"""The UCI Online Retail elasticity benchmark's cleaning and demand grain on the real sample, and one DML fit.

The full printout is ``benchmarks/elasticity_retail.py``. Skips where ``../shared/data`` is absent.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pandas as pd
import pytest

from training.elasticity.estimator import EstimatorConfig, estimate_elasticities

BENCHMARK = Path(__file__).resolve().parents[2] / "benchmarks" / "elasticity_retail.py"
RETAIL_FILE = Path("uci_online_retail_sample40k") / "online_retail_sample40k.csv"


def _load_benchmark() -> ModuleType:
    """``benchmarks/`` is a folder of scripts, not a package: load the module from its file."""
    spec = importlib.util.spec_from_file_location("elasticity_retail_benchmark", BENCHMARK)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


bench = _load_benchmark()


@pytest.fixture(scope="module")
def lines(shared_data: Path) -> tuple[pd.DataFrame, list[tuple[str, int]]]:
    path = shared_data / RETAIL_FILE
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    return bench.clean(pd.read_csv(path, dtype={"InvoiceNo": str, "StockCode": str}))


def test_cleaning_drops_cancellations_returns_fees_and_outliers(lines: tuple[pd.DataFrame, list]) -> None:
    kept, steps = lines
    counts = [rows for _, rows in steps]
    assert counts == sorted(counts, reverse=True) and counts[0] == 40_000 and counts[-1] == len(kept)
    assert not kept["InvoiceNo"].str.startswith("C").any()
    assert (kept["Quantity"] > 0).all() and (kept["Quantity"] <= bench.MAX_QUANTITY).all()
    assert (kept["UnitPrice"] > 0).all() and kept["StockCode"].str.match(r"^\d").all()


def test_weekly_demand_and_a_dml_fit_with_intervals(lines: tuple[pd.DataFrame, list]) -> None:
    weeks = bench.weekly_demand(lines[0])
    assert not weeks.duplicated(["product_id", "date"]).any()
    assert (weeks["units"] > 0).all() and (weeks["price"] > 0).all()
    assert pd.to_datetime(weeks["date"]).dt.dayofweek.eq(0).all()  # ISO weeks start on Mondays
    assert set(weeks["category"]) <= {name for name, _ in bench.FAMILIES} | {"other"}
    pooled = estimate_elasticities(weeks.assign(category="all"), EstimatorConfig()).model.elasticities().iloc[0]
    assert np.isfinite([pooled["elasticity"], pooled["std_error"]]).all()
    assert pooled["ci_low"] < pooled["elasticity"] < pooled["ci_high"] and pooled["std_error"] > 0
