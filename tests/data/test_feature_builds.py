"""Spark feature builds on simulated lakes: schema, row coverage, as-of correctness, idempotency, missing input.

The customer history is checked against a plain pandas oracle written from the definitions in
``feature_repo/features/customer_history.py`` (it derives event dates from the event timestamps, not from the
partition folders, so it does not share the build's reading path).
"""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from click.testing import CliRunner

from feature_repo.contract import lake
from feature_repo.contract.schema import CUSTOMERS, KPI_NAMES, ORDERS, PROMOTION_OFFERS, SESSIONS, Table
from feature_repo.features.partitions import (
    MissingRawPartitionError,
    feature_arrow_schema,
    feature_partition_dir,
    read_feature_partition,
    schema_differences,
)
from feature_repo.features.tables import ANONYMOUS_CUSTOMER, CUSTOMER_HISTORY, EVENT_TIMESTAMP, FEATURE_TABLES

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

DAY = dt.date(2026, 1, 12)  # tiny_lake holds 2026-01-01..2026-01-21, with coupon campaigns on the 11th and 18th
NEXT_DAY = DAY + dt.timedelta(days=1)
HISTORY_START, HISTORY_END = dt.date(2025, 10, 1), dt.date(2026, 1, 10)  # long enough for the 90-day window to bind
RAW_INPUTS = ("customers", "sessions", "orders", "promotion_offers")  # what the builds read


@pytest.fixture(scope="module")
def history_lake(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """About 100 days of the tiny shop, so that orders fall outside the 30- and 90-day windows."""
    from simulator.shop import simulate

    out = tmp_path_factory.mktemp("history") / "raw"
    simulate(HISTORY_START, HISTORY_END, out, seed=5, scale="tiny")
    return out


@pytest.fixture(scope="module")
def built(spark: SparkSession, tiny_lake: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Features root with both tables built by the job for DAY and NEXT_DAY from ``tiny_lake``."""
    from feature_repo.features.jobs import build_features_for_days

    root = tmp_path_factory.mktemp("features")
    paths = build_features_for_days([NEXT_DAY, DAY], raw_root=tiny_lake, features_root=root)
    assert paths == {
        name: [str(feature_partition_dir(root, name, day)) for day in (DAY, NEXT_DAY)] for name in FEATURE_TABLES
    }
    return root


def _copy_inputs(raw_root: Path, dest: Path) -> Path:
    for table in RAW_INPUTS:
        shutil.copytree(raw_root / table, dest / table)
    return dest


def _file_states(root: Path, skip: set[Path]) -> dict[Path, tuple[bytes, int]]:
    return {
        p: (p.read_bytes(), p.stat().st_mtime_ns)
        for p in sorted(root.rglob("*"))
        if p.is_file() and not any(s in p.parents for s in skip)
    }


# --- (a) schema ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("table", sorted(FEATURE_TABLES))
def test_written_schema_is_the_definition(built: Path, table: str) -> None:
    definition = FEATURE_TABLES[table]
    data = read_feature_partition(built, table, DAY)
    assert schema_differences(data.schema, feature_arrow_schema(definition)) == []
    assert data.column_names == [definition.key, EVENT_TIMESTAMP, *definition.column_names]
    # spelled out, independently of feature_arrow_schema: what Feast's Dask store and pandas will see
    assert data.schema.field(definition.key).type == pa.string()
    assert data.schema.field(EVENT_TIMESTAMP).type == pa.timestamp("us", tz="UTC")
    for column in definition.columns:
        expected = {"int64": pa.int64(), "float64": pa.float64(), "string": pa.string()}[column.dtype]
        assert data.schema.field(column.name).type == expected, column.name
        if not column.nullable:
            assert data[column.name].null_count == 0, column.name
    frame = data.to_pandas()
    assert str(frame[EVENT_TIMESTAMP].dtype) == "datetime64[us, UTC]"
    assert frame[definition.key].is_unique and frame[definition.key].is_monotonic_increasing
    assert len(list(feature_partition_dir(built, table, DAY).glob("*.parquet"))) == 1


# --- (b) session_kpis covers exactly the day's sessions -------------------------------------------------------------


def test_session_kpis_rows_are_the_days_raw_sessions(built: Path, tiny_lake: Path) -> None:
    raw = lake.read_table(tiny_lake, SESSIONS, [DAY]).to_pandas().sort_values("session_id", ignore_index=True)
    features = read_feature_partition(built, "session_kpis", DAY).to_pandas()

    assert len(features) == len(raw) > 0
    assert features["session_id"].tolist() == raw["session_id"].tolist()
    assert (features[EVENT_TIMESTAMP] == raw["started_at"]).all()
    anonymous = raw["customer_id"].isna()
    assert 0 < anonymous.sum() < len(raw), "the day should hold both anonymous and logged-in sessions"
    assert (features.loc[anonymous, "customer_id"] == ANONYMOUS_CUSTOMER).all()
    assert (features.loc[~anonymous, "customer_id"] == raw.loc[~anonymous, "customer_id"]).all()
    assert features["is_anonymous"].tolist() == anonymous.astype("int64").tolist()
    assert (features[["device", "channel"]] == raw[["device", "channel"]]).all().all()
    np.testing.assert_array_equal(features[list(KPI_NAMES)].to_numpy(), raw[list(KPI_NAMES)].to_numpy(float))


# --- (c) customer_history as of the end of the day -----------------------------------------------------------------


def _events(raw_root: Path, table: Table, time_column: str, day: dt.date, window_days: int | None) -> pd.DataFrame:
    """Rows of an event table whose event time falls on ``day`` or the ``window_days - 1`` days before."""
    frame = lake.read_table(raw_root, table).to_pandas()
    dates = frame[time_column].dt.date
    keep = dates <= day
    if window_days is not None:
        keep &= dates >= day - dt.timedelta(days=window_days - 1)
    return frame[keep].assign(date=dates[keep])


def customer_history_oracle(raw_root: Path, day: dt.date) -> pd.DataFrame:
    """The customer_history definition, computed row by row in pandas."""
    customers = lake.read_table(raw_root, CUSTOMERS, [day]).to_pandas().sort_values("customer_id")
    lines = _events(raw_root, ORDERS, "ordered_at", day, None)
    lines = lines[lines["customer_id"].notna()]
    orders = (
        lines.assign(amount=lines["unit_price_paid"] * lines["quantity"] - lines["discount"])
        .groupby(["customer_id", "order_id"])
        .agg(date=("date", "max"), amount=("amount", "sum"), promo=("promotion_id", lambda s: s.notna().any()))
        .reset_index()
    )
    sessions = _events(raw_root, SESSIONS, "started_at", day, 30)
    offers = _events(raw_root, PROMOTION_OFFERS, "offered_at", day, 90)
    offers = offers[offers["promotion_id"] != "none"]
    orders_of = dict(tuple(orders.groupby("customer_id")))
    sessions_of = dict(tuple(sessions.groupby("customer_id")))
    offers_of = offers.groupby("customer_id").size().to_dict()
    empty_orders, empty_sessions = orders.iloc[:0], sessions.iloc[:0]

    rows = []
    for customer in customers.itertuples():
        o = orders_of.get(customer.customer_id, empty_orders)
        s = sessions_of.get(customer.customer_id, empty_sessions)
        o30 = o[o["date"] >= day - dt.timedelta(days=29)]
        o90 = o[o["date"] >= day - dt.timedelta(days=89)]
        n = len(o)
        rows.append(
            {
                "customer_id": customer.customer_id,
                "days_since_signup": (day - customer.signup_date).days,
                "days_since_last_order": (day - o["date"].max()).days if n else None,
                "orders_total": n,
                "orders_30d": len(o30),
                "revenue_total": float(o["amount"].sum()),
                "revenue_90d": float(o90["amount"].sum()),
                "avg_order_value": float(o["amount"].mean()) if n else None,
                "sessions_30d": len(s),
                "conversion_rate_30d": float(s["converted"].mean()) if len(s) else None,
                "coupon_offers_90d": int(offers_of.get(customer.customer_id, 0)),
                "coupon_orders_90d": int(o90["promo"].sum()),
                "coupon_order_share": float(o["promo"].mean()) if n else None,
                "acquisition_channel": customer.acquisition_channel,
            }
        )
    return pd.DataFrame(rows)


def _assert_matches_oracle(actual: pa.Table, expected: pd.DataFrame, day: dt.date) -> None:
    assert actual.column(CUSTOMER_HISTORY.key).to_pylist() == expected[CUSTOMER_HISTORY.key].tolist()
    end_of_day = dt.datetime.combine(day, dt.time(23, 59, 59, 999_999), tzinfo=dt.UTC)
    assert set(actual.column(EVENT_TIMESTAMP).to_pylist()) == {end_of_day}
    for column in CUSTOMER_HISTORY.columns:
        got = actual.column(column.name).to_pylist()
        want = [None if pd.isna(v) else v for v in expected[column.name]]
        if column.dtype in ("int64", "string"):
            assert got == want, column.name
        else:
            assert [g is None for g in got] == [w is None for w in want], column.name
            np.testing.assert_allclose(
                np.array(got, dtype=float), np.array(want, dtype=float), rtol=1e-9, atol=1e-9, err_msg=column.name
            )


def test_customer_history_matches_pandas_oracle(built: Path, tiny_lake: Path) -> None:
    actual = read_feature_partition(built, "customer_history", DAY)
    expected = customer_history_oracle(tiny_lake, DAY)
    _assert_matches_oracle(actual, expected, DAY)
    assert expected["orders_total"].sum() > 0 and expected["coupon_offers_90d"].sum() > 0


def test_customer_history_windows_match_oracle_on_a_long_lake(
    spark: SparkSession, history_lake: Path, tmp_path: Path
) -> None:
    from feature_repo.features.customer_history import build_customer_history

    build_customer_history(spark, history_lake, tmp_path, HISTORY_END)
    actual = read_feature_partition(tmp_path, "customer_history", HISTORY_END)
    expected = customer_history_oracle(history_lake, HISTORY_END)
    _assert_matches_oracle(actual, expected, HISTORY_END)
    # the windows must actually cut something here, or this test could not tell a window from all time
    assert (expected["orders_total"] > expected["orders_30d"]).any()
    assert (expected["revenue_total"] > expected["revenue_90d"] + 1e-6).any()
    assert expected["conversion_rate_30d"].isna().any() and expected["avg_order_value"].isna().any()
    assert expected["coupon_orders_90d"].sum() > 0 and expected["days_since_last_order"].max() > 30


def test_customer_history_ignores_everything_after_the_day(
    spark: SparkSession, built: Path, tiny_lake: Path, tmp_path: Path
) -> None:
    from feature_repo.features.customer_history import build_customer_history

    raw = _copy_inputs(tiny_lake, tmp_path / "raw")
    customer = lake.read_table(raw, CUSTOMERS, [DAY]).column("customer_id")[0].as_py()
    at = pa.scalar(dt.datetime.combine(NEXT_DAY, dt.time(8), tzinfo=dt.UTC), pa.timestamp("us", tz="UTC"))
    planted_order = dict(
        order_id="O-FUTURE-1", ordered_at=at, session_id="S-FUTURE-1", customer_id=customer, product_id="P-FUTURE",
        quantity=100, unit_price_paid=999.0, discount=10.0, promotion_id="pct20",
    )  # fmt: skip
    planted_offer = dict(
        offer_id="F-FUTURE-1", customer_id=customer, promotion_id="pct20", promotion_kind="percent_off",
        discount_pct=20.0, min_spend=0.0, offered_at=at, expires_at=at, assignment="random", redeemed=True,
    )  # fmt: skip
    for table, row in ((ORDERS, planted_order), (PROMOTION_OFFERS, planted_offer)):
        part = lake.read_partition(raw, table, NEXT_DAY)
        extra = pa.Table.from_pylist([row], schema=table.arrow_schema())
        target = lake.partition_dir(raw, table.name, NEXT_DAY) / lake.PART_FILE
        lake.write_parquet(table, pa.concat_tables([part, extra]), target)
    for later in (d for d in lake.list_partitions(raw, "sessions") if d > DAY):
        part = lake.read_partition(raw, SESSIONS, later)
        converted = pa.array([True] * part.num_rows, pa.bool_())
        part = part.set_column(part.schema.get_field_index("converted"), "converted", converted)
        lake.write_parquet(SESSIONS, part, lake.partition_dir(raw, "sessions", later) / lake.PART_FILE)

    features = tmp_path / "features"
    build_customer_history(spark, raw, features, DAY)
    assert read_feature_partition(features, "customer_history", DAY).equals(
        read_feature_partition(built, "customer_history", DAY)
    )

    # control: the same edits are seen by the next day's build, so the check above could have failed
    build_customer_history(spark, raw, features, NEXT_DAY)
    before = read_feature_partition(built, "customer_history", NEXT_DAY).to_pandas().set_index("customer_id")
    after = read_feature_partition(features, "customer_history", NEXT_DAY).to_pandas().set_index("customer_id")
    assert after.loc[customer, "revenue_total"] == pytest.approx(before.loc[customer, "revenue_total"] + 99_890.0)
    assert after.loc[customer, "coupon_offers_90d"] == before.loc[customer, "coupon_offers_90d"] + 1
    assert (after["conversion_rate_30d"].fillna(0) >= before["conversion_rate_30d"].fillna(0)).all()


# --- (d) idempotency -------------------------------------------------------------------------------------------------


def test_rebuilding_a_date_gives_the_same_rows_and_touches_nothing_else(
    spark: SparkSession, built: Path, tiny_lake: Path
) -> None:
    from feature_repo.features.jobs import build_features
    from feature_repo.features.state import STATE_DIR

    # the date's partitions, and the date's own state partitions (its daily aggregates and running totals)
    rebuilt = {feature_partition_dir(built, name, DAY) for name in FEATURE_TABLES}
    rebuilt |= set((built / STATE_DIR).glob(f"*/dt={DAY}"))
    assert len(rebuilt) > len(FEATURE_TABLES)
    first = {name: read_feature_partition(built, name, DAY) for name in FEATURE_TABLES}
    others = _file_states(built, skip=rebuilt)
    assert any(f"dt={NEXT_DAY}" in str(p) for p in others)

    build_features(DAY, raw_root=tiny_lake, features_root=built)

    for name in FEATURE_TABLES:
        assert read_feature_partition(built, name, DAY).equals(first[name]), name
        assert len(list(feature_partition_dir(built, name, DAY).glob("*.parquet"))) == 1, "old files left behind"
    assert _file_states(built, skip=rebuilt) == others
    assert spark.range(3).count() == 3, "the job must not stop a session it did not start"


# --- (e) missing raw input --------------------------------------------------------------------------------------------


def test_a_missing_partition_of_the_day_fails_naming_table_and_date(tiny_lake: Path, tmp_path: Path) -> None:
    from feature_repo.features.jobs import build_features

    late = dt.date(2026, 1, 25)
    with pytest.raises(MissingRawPartitionError, match=r"session_kpis for 2026-01-25: raw table 'sessions'") as err:
        build_features(late, ["session_kpis"], raw_root=tiny_lake, features_root=tmp_path)
    assert dt.date(2026, 1, 25) in err.value.missing
    assert not (tmp_path / "session_kpis").exists()


def test_a_gap_in_the_history_fails_naming_table_and_date(spark: SparkSession, tiny_lake: Path, tmp_path: Path) -> None:
    from feature_repo.features.customer_history import build_customer_history

    raw = _copy_inputs(tiny_lake, tmp_path / "raw")
    shutil.rmtree(lake.partition_dir(raw, "orders", dt.date(2026, 1, 5)))
    with pytest.raises(MissingRawPartitionError) as err:
        build_customer_history(spark, raw, tmp_path / "features", DAY)
    message = str(err.value)
    assert "customer_history for 2026-01-12" in message and "'orders'" in message and "dt=2026-01-05" in message
    assert not (tmp_path / "features").exists()


# --- the command ---------------------------------------------------------------------------------------------------


def test_build_features_command(
    spark: SparkSession, tiny_lake: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from config.settings import get_settings
    from feature_repo.features.jobs import build_features_command

    (tmp_path / "lake").mkdir()
    (tmp_path / "lake" / "raw").symlink_to(tiny_lake, target_is_directory=True)
    monkeypatch.setenv("STOREFRONT_LAKE_ROOT", str(tmp_path / "lake"))
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(build_features_command, ["--date", "2026-01-03", "--table", "session_kpis"])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    folder = tmp_path / "lake" / "features" / "session_kpis" / "dt=2026-01-03"
    assert result.output.strip() == f"session_kpis\t{folder}"
    assert read_feature_partition(tmp_path / "lake" / "features", "session_kpis", dt.date(2026, 1, 3)).num_rows > 0

    bad = CliRunner().invoke(build_features_command, ["--date", "2026-01-03", "--table", "nope"])
    assert bad.exit_code == 2 and "nope" in bad.output
    get_settings.cache_clear()
    try:
        missing = CliRunner().invoke(build_features_command, ["--date", "2026-02-01"])
    finally:
        get_settings.cache_clear()
    assert missing.exit_code == 1 and "raw table 'sessions' has no partition dt=2026-02-01" in missing.output
