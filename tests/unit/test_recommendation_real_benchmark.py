"""The real-data recommendation benchmark's loaders and splits (``benchmarks/recommendation_real.py``).

Needs ../shared/data (skips without it); the benchmark itself is run by hand, never here.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from config.settings import REPO_ROOT


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "recommendation_real", REPO_ROOT / "benchmarks" / "recommendation_real.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve their module's annotations through sys.modules
    spec.loader.exec_module(module)
    return module


def test_movielens_loads_every_rating_and_splits_each_user_by_time(bench: ModuleType, shared_data: Path) -> None:
    data = bench.load_movielens(shared_data / "movielens_100k_recbole")
    assert len(data.frame) == 100_000 and len(data.items) == 1_682
    assert data.frame["customer_id"].nunique() == 943
    part, _ = bench.assign_parts(data.frame, per_user=True)
    frame = data.frame.assign(part=part)
    # within each user, every test rating is at least as late as every training or validation rating
    last_before = frame[frame["part"] < bench.TEST].groupby("customer_id")["ts"].max()
    first_test = frame[frame["part"] == bench.TEST].groupby("customer_id")["ts"].min()
    assert (first_test >= last_before.reindex(first_test.index)).all()
    assert abs((part == bench.TEST).mean() - 0.2) < 0.02


def test_online_retail_keeps_purchases_of_known_customers_and_cuts_globally(
    bench: ModuleType, shared_data: Path
) -> None:
    data = bench.load_online_retail(shared_data / "uci_online_retail_sample40k")
    assert 25_000 < len(data.frame) < 40_000  # guests, cancellations and returns dropped from 40,000 lines
    assert data.frame["customer_id"].str.fullmatch(r"\d+").all()
    s = bench.split(data)
    assert s.history.matrix.shape[1] == len(data.items)
    part, _ = bench.assign_parts(data.frame, per_user=False)
    assert data.frame["ts"][part == bench.TEST].min() > data.frame["ts"][part < bench.TEST].max()
    rows = np.flatnonzero(np.diff(s.test.indptr) > 0)
    assert len(rows) > 500  # test customers who also bought before
