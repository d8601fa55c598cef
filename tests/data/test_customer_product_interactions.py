"""The Spark build of ``customer_product_interactions`` against a pandas oracle written from its definition.

The oracle joins impressions and orders to their sessions in pandas and applies the module docstring's rules
(a row per customer, product and device with a click or an order line; strength purchase 4 > cart 2 > click 1;
guests pooled under 'anonymous'); the build must match it row for row. The partition must also pass its
Great Expectations suite (the nightly gate).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from config.settings import get_settings
from feature_repo.contract import lake
from feature_repo.contract.schema import IMPRESSIONS, ORDERS, SESSIONS
from feature_repo.features.partitions import check_feature_partition, read_feature_partition
from feature_repo.features.tables import ANONYMOUS_CUSTOMER, CUSTOMER_PRODUCT_INTERACTIONS, EVENT_TIMESTAMP

DAY = dt.date(2026, 1, 12)  # inside tiny_lake (2026-01-01..2026-01-21)
TABLE = CUSTOMER_PRODUCT_INTERACTIONS.name


@pytest.fixture(scope="module")
def features_root(tiny_lake: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A private var root whose features root holds DAY's partition of the table, built from ``tiny_lake``."""
    from feature_repo.features.jobs import build_features

    var = tmp_path_factory.mktemp("interactions-var")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("STOREFRONT_VAR_ROOT", str(var))
        get_settings.cache_clear()
        root = get_settings().features_root
        build_features(DAY, [TABLE], raw_root=tiny_lake, features_root=root)
        yield root
    get_settings.cache_clear()


def _oracle(raw_root: Path, day: dt.date) -> pd.DataFrame:
    sessions = lake.read_table(raw_root, SESSIONS, [day]).to_pandas()[["session_id", "customer_id", "device"]]
    sessions["customer_id"] = sessions["customer_id"].fillna(ANONYMOUS_CUSTOMER)
    pair = ["customer_id", "product_id", "device"]
    impressions = lake.read_table(raw_root, IMPRESSIONS, [day]).to_pandas().merge(sessions, on="session_id")
    shown = impressions.groupby(pair).agg(
        impressions=("product_id", "size"), clicks=("clicked", "sum"), carts=("added_to_cart", "sum")
    )
    orders = (
        lake.read_table(raw_root, ORDERS, [day])
        .to_pandas()
        .drop(columns="customer_id")
        .merge(sessions, on="session_id")
    )
    bought = orders.groupby(pair).agg(purchases=("product_id", "size"), units_purchased=("quantity", "sum"))
    rows = shown.join(bought, how="outer").fillna(0).astype("int64").reset_index()
    rows = rows[(rows["clicks"] > 0) | (rows["purchases"] > 0)].copy()
    rows["strength"] = np.select([rows["purchases"] > 0, rows["carts"] > 0], [4.0, 2.0], 1.0)
    rows.insert(0, "interaction_id", rows["customer_id"] + "|" + rows["product_id"] + "|" + rows["device"])
    return rows.sort_values("interaction_id").reset_index(drop=True)


def test_build_matches_the_pandas_oracle(features_root: Path, tiny_lake: Path) -> None:
    built = read_feature_partition(features_root, TABLE, DAY).to_pandas()
    assert check_feature_partition(features_root, TABLE, DAY) == len(built)
    stamps = pd.to_datetime(built.pop(EVENT_TIMESTAMP), utc=True)
    assert (stamps == pd.Timestamp(dt.datetime.combine(DAY, dt.time(23, 59, 59, 999_999), tzinfo=dt.UTC))).all()
    expected = _oracle(tiny_lake, DAY)
    assert len(expected) > 100  # the tiny shop clicks a few hundred times a day
    pd.testing.assert_frame_equal(built, expected[built.columns], check_dtype=False)


def test_rows_cover_guests_and_every_strength(features_root: Path) -> None:
    built = read_feature_partition(features_root, TABLE, DAY).to_pandas()
    assert built["interaction_id"].is_unique
    assert (built["customer_id"] == ANONYMOUS_CUSTOMER).any()
    assert set(built["strength"]) == {1.0, 2.0, 4.0}
    # a purchase always outranks a cart, a cart a click
    assert (built.loc[built["purchases"] > 0, "strength"] == 4.0).all()
    assert (built.loc[(built["purchases"] == 0) & (built["carts"] > 0), "strength"] == 2.0).all()
    assert ((built["clicks"] > 0) | (built["purchases"] > 0)).all()


def test_partition_passes_its_expectation_suite(features_root: Path) -> None:
    from feature_repo.expectations.validate import validate_partition

    outcome = validate_partition("features", TABLE, DAY)
    assert outcome.success, outcome.summary()
