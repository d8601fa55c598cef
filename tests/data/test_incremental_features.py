"""Incremental feature builds: a night reads one day of raw data plus bounded state, and gives exactly the values
of a build from scratch over all history; a range of dates built in one pass equals the dates built one by one.

The lake is about 100 days of the tiny shop, so that customer_history's 90-day window and its all-time totals
both bind (orders older than 90 days exist), and product_ranking's 28-day window slides over real data.
"""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from feature_repo.features.partitions import read_feature_partition
from feature_repo.features.state import STATE_DIR, date_range, state_days, state_dir
from feature_repo.features.tables import FEATURE_TABLES

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

START, END = dt.date(2025, 10, 1), dt.date(2026, 1, 8)
NIGHTS = date_range(END - dt.timedelta(days=2), END)  # the nights compared
PREFIX = date_range(END - dt.timedelta(days=6), NIGHTS[0] - dt.timedelta(days=1))  # carried state comes from these
TABLES = sorted(FEATURE_TABLES)


@pytest.fixture(scope="module")
def raw(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from simulator.shop import simulate

    out = tmp_path_factory.mktemp("incremental") / "raw"
    simulate(START, END, out, seed=5, scale="tiny")
    return out


def _build(days: list[dt.date], raw: Path, features: Path) -> None:
    from feature_repo.features.jobs import build_features_for_days

    build_features_for_days(days, raw_root=raw, features_root=features)


@pytest.fixture(scope="module")
def from_scratch(spark: SparkSession, raw: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The nights built in one pass on a fresh features root: no carried state, every window from raw."""
    root = tmp_path_factory.mktemp("scratch")
    _build(NIGHTS, raw, root)
    return root


@pytest.fixture(scope="module")
def nightly(spark: SparkSession, raw: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A history load of the days before, then each night built alone from the state the previous one left."""
    root = tmp_path_factory.mktemp("nightly")
    _build(PREFIX, raw, root)
    for night in NIGHTS:
        _build([night], raw, root)
    return root


def _assert_same_partitions(left: Path, right: Path, days: list[dt.date]) -> None:
    for table in TABLES:
        for day in days:
            a, b = read_feature_partition(left, table, day), read_feature_partition(right, table, day)
            assert a.num_rows > 0, (table, day)
            assert a.equals(b), f"{table} dt={day} differs"


def test_nightly_builds_from_carried_state_equal_a_build_from_scratch(from_scratch: Path, nightly: Path) -> None:
    _assert_same_partitions(nightly, from_scratch, NIGHTS)
    # and the comparison is not vacuous: the all-time totals and the 90-day windows differ somewhere
    history = read_feature_partition(from_scratch, "customer_history", END).to_pandas()
    assert (history["orders_total"] > history["orders_30d"]).any()
    assert (history["revenue_total"] > history["revenue_90d"] + 1e-6).any()


def test_a_night_reads_only_its_own_raw_partitions_once_state_exists(raw: Path, nightly: Path) -> None:
    from feature_repo.features import customer_history, product_ranking

    for module in (customer_history, product_ranking):
        reads = module.plan(raw, nightly, [END])
        assert reads and all(days == [END] for days in reads.values()), (module.__name__, reads)
    assert len(state_days(nightly, "customer_totals")) == len(PREFIX) + len(NIGHTS)


def test_a_range_in_one_pass_reads_each_raw_partition_once_and_equals_dates_built_alone(
    spark: SparkSession, raw: Path, from_scratch: Path, tmp_path: Path
) -> None:
    from feature_repo.features import customer_history

    reads = customer_history.plan(raw, tmp_path, NIGHTS)
    assert reads["orders"] == date_range(START, END)  # from scratch: all history, each date once
    assert reads["customers"] == NIGHTS

    alone = tmp_path / "alone"
    _build([END], raw, alone)  # END alone on a fresh root: its windows and totals from raw
    for table in TABLES:
        assert read_feature_partition(alone, table, END).equals(read_feature_partition(from_scratch, table, END)), table


def test_rebuilding_a_night_and_those_after_it_changes_nothing(
    spark: SparkSession, raw: Path, from_scratch: Path, nightly: Path, tmp_path: Path
) -> None:
    root = tmp_path / "features"
    shutil.copytree(nightly, root)
    _build([NIGHTS[1]], raw, root)  # a re-run of one night
    _build(NIGHTS[1:], raw, root)  # a backfill of that night and every night after it
    _assert_same_partitions(root, from_scratch, NIGHTS)


def test_lost_state_is_recomputed_from_raw(spark: SparkSession, raw: Path, from_scratch: Path, nightly: Path,
                                           tmp_path: Path) -> None:
    from feature_repo.features import customer_history, product_ranking

    root = tmp_path / "features"
    shutil.copytree(nightly, root)
    lost = END - dt.timedelta(days=20)  # inside both windows
    for name in ("customer_daily", "product_position_daily"):
        shutil.rmtree(state_dir(root, name) / f"dt={lost}")
    assert customer_history.plan(raw, root, [END])["orders"] == [lost, END]
    assert product_ranking.plan(raw, root, [END])["impressions"] == [lost, END]
    _build([END], raw, root)
    assert {lost, END} <= state_days(root, "customer_daily")
    _assert_same_partitions(root, from_scratch, [END])
    assert (root / STATE_DIR).is_dir()
