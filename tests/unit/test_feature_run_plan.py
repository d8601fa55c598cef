"""What a features run builds and validates: each table's dates, and the raw partitions their builds read."""

from __future__ import annotations

import datetime as dt

import pytest

from feature_repo.features.jobs import raw_table_days, raw_tables_read, run_plan, table_days
from feature_repo.features.state import date_range
from feature_repo.features.tables import FEATURE_TABLES

NIGHTS = date_range(dt.date(2026, 4, 2), dt.date(2026, 4, 29))


def test_every_table_gets_the_run_dates_by_default() -> None:
    plan = table_days(NIGHTS)
    assert list(plan) == list(FEATURE_TABLES)
    assert all(days == NIGHTS for days in plan.values())


def test_a_reach_back_date_extends_only_its_table() -> None:
    plan = table_days(NIGHTS, reach_back={"customer_history": dt.date(2026, 1, 1)})
    assert plan["customer_history"] == date_range(dt.date(2026, 1, 1), dt.date(2026, 4, 29))
    assert plan["session_kpis"] == NIGHTS and plan["product_demand"] == NIGHTS


def test_raw_tables_are_checked_over_the_union_of_their_readers_dates() -> None:
    plan = table_days(NIGHTS, reach_back={"customer_history": dt.date(2026, 1, 1),
                                          "product_demand": dt.date(2026, 2, 4)})
    reads = raw_table_days(plan)
    assert set(reads) == set(raw_tables_read(list(FEATURE_TABLES)))
    # orders are read by customer_history (from 01-01) and product_demand (from 02-04): the earlier one wins
    assert reads["orders"][0] == dt.date(2026, 1, 1) and reads["orders"][-1] == NIGHTS[-1]
    # impressions are read by product_demand, product_ranking and interactions, not by customer_history
    assert reads["impressions"][0] == dt.date(2026, 2, 4)
    assert len(reads["impressions"]) == len(set(reads["impressions"]))


def test_tables_limit_the_run_and_its_reads() -> None:
    plan = table_days(NIGHTS, ["session_kpis"])
    assert list(plan) == ["session_kpis"]
    assert list(raw_table_days(plan)) == ["sessions"]


@pytest.mark.parametrize(
    ("tables", "reach_back", "message"),
    [
        (["session_kpis"], {"customer_history": dt.date(2026, 1, 1)}, "does not build"),
        (None, {"customer_history": dt.date(2026, 5, 1)}, "after the run's last date"),
        (["no_such_table"], None, "unknown feature table"),
    ],
)
def test_bad_plans_fail_before_anything_runs(tables, reach_back, message) -> None:
    with pytest.raises(ValueError, match=message):
        table_days(NIGHTS, tables, reach_back)


def test_a_run_of_every_table_gates_every_raw_table() -> None:
    plan, reads = run_plan(NIGHTS, reach_back={"customer_history": dt.date(2026, 1, 1)})
    assert plan == table_days(NIGHTS, reach_back={"customer_history": dt.date(2026, 1, 1)})
    from feature_repo.contract.schema import TABLES

    assert list(reads) == list(TABLES)
    assert reads["experiments"] == NIGHTS  # read by no build: the A/B readouts read it
    assert reads["orders"][0] == dt.date(2026, 1, 1)
    _, limited = run_plan(NIGHTS, ["session_kpis"])
    assert list(limited) == ["sessions"]
