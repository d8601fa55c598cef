"""The Spark job that labels promotion offers with their outcome window, checked against pandas on the raw lake.

The tiny lake (2026-01-01..01-21) has campaigns on 01-11 and 01-18; with a 7-day window on run date 01-21 only
the first campaign's offers are complete (01-18 + 7 days is after 01-21), which is what the selection must give.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from feature_repo.contract import lake
from feature_repo.contract.schema import TABLES
from feature_repo.features.partitions import MissingRawPartitionError
from feature_repo.features.promotion_outcomes import OFFER_COLUMNS, OUTCOME_COLUMNS, offer_outcomes

RUN_DATE = dt.date(2026, 1, 21)
WINDOW = 7


@pytest.fixture(scope="module")
def spark():
    from feature_repo.features.spark_session import spark_session

    with spark_session("test-promotion-outcomes") as session:
        yield session


@pytest.fixture(scope="module")
def outcomes(spark, tiny_lake: Path) -> pd.DataFrame:
    frame = offer_outcomes(spark, tiny_lake, RUN_DATE, WINDOW).toPandas()
    return frame.sort_values("offer_id").reset_index(drop=True)


def _expected(raw_root: Path) -> pd.DataFrame:
    """The same outcomes, computed independently with pandas from the raw tables."""
    offers = lake.read_table(raw_root, TABLES["promotion_offers"]).to_pandas()
    offers = offers[offers["offered_at"] + pd.Timedelta(days=WINDOW) <= pd.Timestamp(RUN_DATE + dt.timedelta(days=1),
                                                                                     tz="UTC")]
    orders = lake.read_table(raw_root, TABLES["orders"]).to_pandas().dropna(subset=["customer_id"])
    catalog = lake.read_table(raw_root, TABLES["catalog"]).to_pandas()
    orders["snapshot_date"] = orders["ordered_at"].dt.date
    orders = orders.merge(catalog[["snapshot_date", "product_id", "unit_cost"]], on=["snapshot_date", "product_id"])
    orders["revenue"] = orders["unit_price_paid"] * orders["quantity"] - orders["discount"]
    orders["margin"] = (orders["unit_price_paid"] - orders["unit_cost"]) * orders["quantity"] - orders["discount"]
    per_order = orders.groupby(["customer_id", "order_id"]).agg(
        ordered_at=("ordered_at", "min"), revenue=("revenue", "sum"), discount=("discount", "sum"),
        margin=("margin", "sum"), coupon=("promotion_id", lambda s: s.notna().any()),
    ).reset_index()
    rows = []
    for offer in offers.itertuples():
        mine = per_order[(per_order["customer_id"] == offer.customer_id)
                         & (per_order["ordered_at"] >= offer.offered_at)
                         & (per_order["ordered_at"] < offer.offered_at + pd.Timedelta(days=WINDOW))]
        rows.append({
            "offer_id": offer.offer_id, "revenue_10w": mine["revenue"].sum(), "discount_10w": mine["discount"].sum(),
            "margin_10w": mine["margin"].sum(), "orders_10w": len(mine), "coupon_orders_10w": int(mine["coupon"].sum()),
            "bought_again_without_coupon": bool(((mine["ordered_at"] >= offer.expires_at) & ~mine["coupon"]).any()),
        })
    return pd.DataFrame(rows).sort_values("offer_id").reset_index(drop=True)


def test_only_offers_with_a_closed_window_are_labelled(outcomes: pd.DataFrame) -> None:
    assert list(outcomes.columns) == [*OFFER_COLUMNS, *OUTCOME_COLUMNS]
    assert len(outcomes) > 50
    assert (outcomes["offered_at"].dt.date == dt.date(2026, 1, 11)).all()  # the 01-18 campaign is still open
    assert set(outcomes["assignment"]) == {"random", "policy"}
    assert "none" in set(outcomes["promotion_id"])
    assert outcomes["offer_id"].is_unique


def test_outcomes_match_an_independent_pandas_computation(outcomes: pd.DataFrame, tiny_lake: Path) -> None:
    expected = _expected(tiny_lake)
    assert outcomes["offer_id"].tolist() == expected["offer_id"].tolist()
    for column in ("revenue_10w", "discount_10w", "margin_10w"):
        np.testing.assert_allclose(outcomes[column], expected[column], atol=1e-6, err_msg=column)
    for column in ("orders_10w", "coupon_orders_10w", "bought_again_without_coupon"):
        assert outcomes[column].tolist() == expected[column].tolist(), column
    assert outcomes["orders_10w"].sum() > 0 and outcomes["coupon_orders_10w"].sum() > 0
    # unit costs are never negative: the margin cannot exceed what the customer paid
    assert (outcomes["margin_10w"] <= outcomes["revenue_10w"] + 1e-9).all()


def test_a_run_date_before_any_closed_window_fails_with_the_reason(spark, tiny_lake: Path) -> None:
    with pytest.raises(ValueError, match="no offer made by then has a closed 70-day outcome window"):
        offer_outcomes(spark, tiny_lake, RUN_DATE, 70)


def test_a_missing_orders_partition_fails_before_spark_reads(spark, tiny_lake: Path, tmp_path: Path) -> None:
    import shutil

    copy = tmp_path / "raw"
    shutil.copytree(tiny_lake, copy)
    shutil.rmtree(lake.partition_dir(copy, "orders", dt.date(2026, 1, 15)))
    with pytest.raises(MissingRawPartitionError, match="dt=2026-01-15"):
        offer_outcomes(spark, copy, RUN_DATE, WINDOW)


def test_the_training_set_of_a_lake_younger_than_the_window_is_nothing_to_train(tiny_lake: Path) -> None:
    from training.promotion.data import offer_outcome_rows
    from training.shared.pipeline import NothingToTrain

    with pytest.raises(NothingToTrain, match="closed 70-day outcome window on 2026-01-21"):
        offer_outcome_rows(RUN_DATE, raw_root=tiny_lake)  # fails before any Spark session starts
