"""The ``product_ranking`` Spark build against a pandas oracle on the tiny shop: debiased rates, counts, snapshot."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from feature_repo.contract import lake
from feature_repo.contract.schema import CATALOG, IMPRESSIONS
from feature_repo.features.position_bias import estimate_propensities
from feature_repo.features.product_ranking import PRIOR_EXAMINATIONS, WINDOW_DAYS

DAY = dt.date(2026, 1, 12)  # tiny_lake holds 2026-01-01..2026-01-21: a 12-day window (the lake starts later)


@pytest.fixture(scope="module")
def built(tiny_lake: Path, tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    from feature_repo.features.jobs import build_features
    from feature_repo.features.partitions import read_feature_partition

    root = tmp_path_factory.mktemp("features")
    build_features(DAY, ["product_ranking"], raw_root=tiny_lake, features_root=root)
    return read_feature_partition(root, "product_ranking", DAY).to_pandas()


def _oracle(raw: Path) -> pd.DataFrame:
    """The documented definitions, computed with pandas from the raw partitions."""
    days = [d for d in lake.list_partitions(raw, "impressions") if DAY - dt.timedelta(days=WINDOW_DAYS - 1) <= d <= DAY]
    imp = lake.read_table(raw, IMPRESSIONS, days).to_pandas()
    randomized = imp[imp["ranker"] == "randomized"].groupby("position")["clicked"].agg(["size", "sum"])
    theta = estimate_propensities(randomized.index.to_numpy(), randomized["size"].to_numpy(),
                                  randomized["sum"].to_numpy())
    imp["exam"] = np.round(theta.at(imp["position"].to_numpy()), 6)
    per = imp.groupby("product_id").agg(
        impressions=("position", "size"), clicks=("clicked", "sum"), carts=("added_to_cart", "sum"),
        purchases=("purchased", "sum"), exams=("exam", "sum"), position_sum=("position", "sum"),
    )
    catalog = lake.read_table(raw, CATALOG, [DAY]).to_pandas().set_index("product_id")
    out = catalog[["price", "category"]].join(per, how="left").fillna({"impressions": 0, "clicks": 0, "exams": 0.0})
    prior = per["clicks"].sum() / per["exams"].sum()
    out["ctr_debiased"] = (out["clicks"] + PRIOR_EXAMINATIONS * prior) / (out["exams"] + PRIOR_EXAMINATIONS)
    out["ctr_raw"] = out["clicks"] / out["impressions"].where(out["impressions"] > 0)
    out["mean_position"] = out["position_sum"] / out["impressions"].where(out["impressions"] > 0)
    return out


def test_product_ranking_matches_the_pandas_oracle(built: pd.DataFrame, tiny_lake: Path) -> None:
    oracle = _oracle(tiny_lake)
    got = built.set_index("product_id")
    assert sorted(got.index) == sorted(oracle.index), "one row per product in the day's catalog"
    assert (got["event_timestamp"] == pd.Timestamp("2026-01-12 23:59:59.999999", tz="UTC")).all()
    got = got.loc[oracle.index]
    assert (got["impressions_28d"].to_numpy() == oracle["impressions"].to_numpy()).all()
    assert (got["clicks_28d"].to_numpy() == oracle["clicks"].to_numpy()).all()
    assert np.allclose(got["examinations_28d"], oracle["exams"], rtol=1e-9, atol=1e-9)
    assert np.allclose(got["ctr_debiased"], oracle["ctr_debiased"], rtol=1e-9)
    assert np.allclose(got["ctr_raw"], oracle["ctr_raw"], equal_nan=True)
    assert np.allclose(got["mean_position"], oracle["mean_position"], equal_nan=True)
    assert np.allclose(got["price"], oracle["price"]) and (got["category"] == oracle["category"]).all()


def test_debiasing_credits_products_shown_low_in_the_lists(built: pd.DataFrame) -> None:
    shown = built[built["impressions_28d"] >= 20]
    low = shown["mean_position"] > shown["mean_position"].median()
    # a product shown low gets fewer clicks per impression only because it is examined less: per examination
    # its rate rises more than that of a product shown high
    lift = shown["ctr_debiased"] / shown["ctr_raw"].clip(lower=1e-9)
    assert lift[low].median() > lift[~low].median()
