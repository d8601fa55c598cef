"""Build the ``customer_history`` partition of one date D: each registered customer's history up to the end of D.

Rows: one per customer in the raw ``customers`` snapshot of D, sorted by ``customer_id``. Columns:
``customer_id`` (key), ``event_timestamp`` = D 23:59:59.999999 UTC, then the features of
``tables.CUSTOMER_HISTORY`` in order.

Definitions. An event's date is its raw partition date ``dt`` (the contract partitions events by the UTC date
of their event time). "All time" = every partition with ``dt <= D``. "Last n days" = ``dt`` in
``D-(n-1) .. D``, D included: the 30-day window of 2026-01-30 is 2026-01-01..2026-01-30. Windows and history
start where the raw table's partitions start; a missing partition inside that range fails the build
(``MissingRawPartitionError``). Nothing with ``dt > D`` is ever read.

An order is an ``order_id`` with a non-null ``customer_id`` (guest orders belong to no customer); its amount
is ``sum(unit_price_paid * quantity - discount)`` over its lines, in EUR; it used a promotion when any of its
lines has a non-null ``promotion_id``. Amounts are summed as exact decimals, then written as doubles.

* ``days_since_signup``: D - ``signup_date`` (from the snapshot of D), days.
* ``days_since_last_order``: D - date of the customer's latest order, days; null when never ordered.
* ``orders_total``: orders, all time.                      ``orders_30d``: orders in the last 30 days.
* ``revenue_total``: sum of order amounts, all time, EUR.  ``revenue_90d``: same over the last 90 days.
* ``avg_order_value``: ``revenue_total / orders_total``, EUR; null when never ordered.
* ``sessions_30d``: the customer's logged-in sessions in the last 30 days.
* ``conversion_rate_30d``: share of those sessions with ``converted``; null without sessions.
* ``coupon_offers_90d``: ``promotion_offers`` rows in the last 90 days, holdout rows (``promotion_id = 'none'``)
  excluded.
* ``coupon_orders_90d``: orders that used a promotion, last 90 days.
* ``coupon_order_share``: orders that used a promotion / ``orders_total``, both all time; null when never ordered.
* ``acquisition_channel``: the channel that acquired the customer, from the snapshot of D (a string: CRM data,
  not history; the promotion model reads it, the conversion model does not).

Counts and sums are 0 (not null) for a customer without such events.

Incremental (``feature_repo/features/state.py``). The build of D1..D2 reads the raw ``customers`` snapshots,
``orders``, ``sessions`` and ``promotion_offers`` of D1..D2 once; the 30- and 90-day windows come from the
``customer_daily`` state (one small row per customer and active date: orders, revenue, coupon orders, sessions,
conversions, coupon offers of that date), and the all-time counts from the ``customer_totals`` state of the
latest date before D1 (orders, revenue, coupon orders and the last order date up to it). Each date built writes
its ``customer_daily`` and ``customer_totals`` partitions. A night therefore reads one day of raw events and 89
daily partitions of state, whatever the length of the history. Without state (a fresh lake) the daily
aggregates of the whole history are computed once and kept. An order belongs to the date of its partition (its
lines share its ``ordered_at``).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import NamedTuple

from pyspark.sql import Column as SparkColumn
from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T
from pyspark.sql.pandas.types import to_arrow_schema

from feature_repo.contract.schema import CUSTOMERS, ORDERS, PROMOTION_OFFERS, SESSIONS
from feature_repo.features.spark_io import (
    DT,
    end_of_day_column,
    read_partitions,
    read_raw,
    write_feature_partitions,
    write_partitions,
)
from feature_repo.features.state import (
    DailyAggregate,
    date_range,
    first_partition,
    raw_reads,
    state_days,
    state_dir,
)
from feature_repo.features.tables import CUSTOMER_HISTORY, EVENT_TIMESTAMP

SHORT_WINDOW_DAYS = 30  # the *_30d features
LONG_WINDOW_DAYS = 90  # the *_90d features
HOLDOUT_PROMOTION = "none"

# Money is summed as exact decimals: a double sum depends on the order Spark adds rows in, which would make
# re-runs differ in the last bits.
_MONEY = T.DecimalType(38, 10)


def end_of_day(day: dt.date) -> dt.datetime:
    """The last microsecond of ``day`` in UTC: the row's ``event_timestamp``."""
    return dt.datetime.combine(day, dt.time(23, 59, 59, 999_999), tzinfo=dt.UTC)


def _daily_schema() -> T.StructType:
    long = T.LongType()
    return T.StructType(
        [
            T.StructField("customer_id", T.StringType(), False),
            T.StructField("orders", long, False),
            T.StructField("revenue", _MONEY, False),
            T.StructField("coupon_orders", long, False),
            T.StructField("sessions", long, False),
            T.StructField("converted", long, False),
            T.StructField("coupon_offers", long, False),
        ]
    )


def _totals_schema() -> T.StructType:
    long = T.LongType()
    return T.StructType(
        [
            T.StructField("customer_id", T.StringType(), False),
            T.StructField("orders_total", long, False),
            T.StructField("revenue_total", _MONEY, False),
            T.StructField("coupon_orders_total", long, False),
            T.StructField("last_order_date", T.DateType(), False),
        ]
    )


def _count_if(condition: SparkColumn) -> SparkColumn:
    return F.sum(F.when(condition, 1).otherwise(0)).cast(T.LongType())


def _compute_daily(spark: SparkSession, raw_root: Path, reads: dict[str, list[dt.date]]) -> DataFrame:
    """``customer_daily`` rows of the dates read: one per registered customer with any event that date."""
    orders = read_raw(
        spark, raw_root, ORDERS, reads[ORDERS.name],
        ["order_id", "customer_id", "quantity", "unit_price_paid", "discount", "promotion_id"],
    ).where(F.col("customer_id").isNotNull())
    per_order = orders.groupBy(DT, "customer_id", "order_id").agg(
        F.sum((F.col("unit_price_paid") * F.col("quantity") - F.col("discount")).cast(_MONEY)).alias("amount"),
        F.max(F.col("promotion_id").isNotNull()).alias("used_promotion"),
    )
    bought = per_order.groupBy(DT, "customer_id").agg(
        F.count(F.lit(1)).cast(T.LongType()).alias("orders"),
        F.sum("amount").cast(_MONEY).alias("revenue"),
        _count_if(F.col("used_promotion")).alias("coupon_orders"),
    )
    visited = (
        read_raw(spark, raw_root, SESSIONS, reads[SESSIONS.name], ["customer_id", "converted"])
        .where(F.col("customer_id").isNotNull())
        .groupBy(DT, "customer_id")
        .agg(F.count(F.lit(1)).cast(T.LongType()).alias("sessions"), _count_if(F.col("converted")).alias("converted"))
    )
    offered = (
        read_raw(spark, raw_root, PROMOTION_OFFERS, reads[PROMOTION_OFFERS.name], ["customer_id", "promotion_id"])
        .where(F.col("promotion_id") != HOLDOUT_PROMOTION)
        .groupBy(DT, "customer_id")
        .agg(F.count(F.lit(1)).cast(T.LongType()).alias("coupon_offers"))
    )
    zero = F.lit(0).cast(T.LongType())
    keys = [DT, "customer_id"]
    return (
        bought.join(visited, keys, "full_outer")
        .join(offered, keys, "full_outer")
        .select(
            "customer_id",
            F.coalesce("orders", zero).alias("orders"),
            F.coalesce("revenue", F.lit(0).cast(_MONEY)).alias("revenue"),
            F.coalesce("coupon_orders", zero).alias("coupon_orders"),
            F.coalesce("sessions", zero).alias("sessions"),
            F.coalesce("converted", zero).alias("converted"),
            F.coalesce("coupon_offers", zero).alias("coupon_offers"),
            DT,
        )
    )


CUSTOMER_DAILY = DailyAggregate(
    name="customer_daily",
    key=("customer_id",),
    raw_tables=(ORDERS.name, SESSIONS.name, PROMOTION_OFFERS.name),
    schema=_daily_schema,
    compute=_compute_daily,
)
TOTALS_STATE = "customer_totals"


def _ratio(numerator: str, denominator: str) -> SparkColumn:
    # null when the denominator is 0; when() keeps ANSI mode's division-by-zero error from being reached
    return F.when(F.col(denominator) > 0, F.col(numerator).cast("double") / F.col(denominator).cast("double"))


class _Plan(NamedTuple):
    carry_from: dt.date | None  # the customer_totals partition the all-time counts start from (None: none)
    history_start: dt.date  # the first date not in carry_from's totals (the lake's first date without one)
    daily_days: list[dt.date]  # the customer_daily dates read (windows, and the days after carry_from)
    daily_from_raw: list[dt.date]  # of those, computed from raw
    reads: dict[str, list[dt.date]]  # raw partitions read, by raw table (customers: the snapshots of the dates)


def _plan(raw_root: Path, features_root: Path, days: list[dt.date]) -> _Plan:
    first, last = days[0], days[-1]
    orders_start = first_partition(raw_root, ORDERS.name) or first
    earlier = [d for d in state_days(features_root, TOTALS_STATE) if orders_start <= d < first]
    carry_from = max(earlier, default=None)
    history_start = carry_from + dt.timedelta(days=1) if carry_from is not None else orders_start
    lake_start = min(
        (d for d in (first_partition(raw_root, t) for t in CUSTOMER_DAILY.raw_tables) if d is not None), default=first
    )
    window_start = max(lake_start, first - dt.timedelta(days=LONG_WINDOW_DAYS - 1))
    daily_days = date_range(min(window_start, history_start, first), last)
    from_raw, reads = CUSTOMER_DAILY.plan(raw_root, features_root, daily_days, days, CUSTOMER_HISTORY.name)
    reads[CUSTOMERS.name] = raw_reads(raw_root, [CUSTOMERS.name], days, built=days,
                                      feature_table=CUSTOMER_HISTORY.name)[CUSTOMERS.name]
    return _Plan(carry_from, history_start, daily_days, from_raw, reads)


def plan(raw_root: Path, features_root: Path, days: list[dt.date]) -> dict[str, list[dt.date]]:
    """Raw partition dates a build of ``days`` (consecutive) reads, by raw table; raises on a gap."""
    return _plan(raw_root, features_root, days).reads


def build_customer_history_range(
    spark: SparkSession, raw_root: Path, features_root: Path, days: list[dt.date]
) -> list[Path]:
    """Write the ``customer_history`` partitions of ``days`` (consecutive dates) in one pass; return the folders."""
    days = sorted(days)
    p = _plan(raw_root, features_root, days)  # every input checked before Spark reads any
    daily = CUSTOMER_DAILY.ensure(spark, raw_root, features_root, p.daily_days, days, CUSTOMER_HISTORY.name)
    customers = read_raw(spark, raw_root, CUSTOMERS, p.reads[CUSTOMERS.name],
                         ["customer_id", "signup_date", "acquisition_channel"])
    if p.carry_from is not None:
        carry = read_partitions(spark, state_dir(features_root, TOTALS_STATE), [p.carry_from], _totals_schema())
        carry = carry.drop(DT)
    else:
        carry = spark.createDataFrame([], _totals_schema())
    carried_to = p.history_start - dt.timedelta(days=1)

    long, zero = T.LongType(), F.lit(0).cast(T.LongType())
    activity = ("orders", "revenue", "coupon_orders", "sessions", "converted", "coupon_offers")
    spine = customers.select("customer_id", DT, "signup_date", "acquisition_channel", F.lit(True).alias("built"))
    rows = (
        daily.select("customer_id", DT, *activity, F.lit(None).cast(T.DateType()).alias("signup_date"),
                     F.lit(None).cast(T.StringType()).alias("acquisition_channel"), F.lit(False).alias("built"))
        .unionByName(spine.select("customer_id", DT, *(F.lit(0).cast(daily.schema[c].dataType).alias(c)
                                                       for c in activity), "signup_date", "acquisition_channel",
                                  "built"))
        .groupBy("customer_id", DT)
        .agg(*(F.sum(c).alias(c) for c in activity), F.max("signup_date").alias("signup_date"),
             F.max("acquisition_channel").alias("acquisition_channel"), F.max("built").alias("built"))
        .withColumn("_day", F.datediff(F.col(DT), F.lit(dt.date(1970, 1, 1))))
    )
    by_day = Window.partitionBy("customer_id").orderBy("_day")
    so_far = by_day.rowsBetween(Window.unboundedPreceding, Window.currentRow)
    short = by_day.rangeBetween(-(SHORT_WINDOW_DAYS - 1), 0)
    long_window = by_day.rangeBetween(-(LONG_WINDOW_DAYS - 1), 0)
    new = F.col(DT) > F.lit(carried_to)  # the days not yet in the carried totals

    def since_carry(column: str) -> SparkColumn:
        return F.sum(F.when(new, F.col(column)).otherwise(F.lit(0).cast(daily.schema[column].dataType))).over(so_far)

    windowed = rows.select(
        "customer_id", DT, "signup_date", "acquisition_channel", "built",
        since_carry("orders").alias("new_orders"),
        since_carry("revenue").alias("new_revenue"),
        since_carry("coupon_orders").alias("new_coupon_orders"),
        F.max(F.when(new & (F.col("orders") > 0), F.col(DT))).over(so_far).alias("new_last_order"),
        F.sum("orders").over(short).cast(long).alias("orders_30d"),
        F.sum("revenue").over(long_window).cast(_MONEY).alias("revenue_90d_exact"),
        F.sum("coupon_orders").over(long_window).cast(long).alias("coupon_orders_90d"),
        F.sum("sessions").over(short).cast(long).alias("sessions_30d"),
        F.sum("converted").over(short).cast(long).alias("converted_30d"),
        F.sum("coupon_offers").over(long_window).cast(long).alias("coupon_offers_90d"),
    ).where(F.col("built"))

    totals = windowed.join(carry, "customer_id", "left").select(
        "customer_id", DT, "signup_date", "acquisition_channel", "orders_30d", "revenue_90d_exact", "coupon_orders_90d",
        "sessions_30d",
        "converted_30d", "coupon_offers_90d",
        (F.coalesce("orders_total", zero) + F.col("new_orders")).cast(long).alias("orders_total"),
        (F.coalesce("revenue_total", F.lit(0).cast(_MONEY)) + F.col("new_revenue")).cast(_MONEY)
        .alias("revenue_total_exact"),
        (F.coalesce("coupon_orders_total", zero) + F.col("new_coupon_orders")).cast(long).alias("coupon_orders_total"),
        F.greatest("last_order_date", "new_last_order").alias("last_order_date"),
    ).cache()
    try:
        history = totals.select(
            "customer_id",
            end_of_day_column().alias(EVENT_TIMESTAMP),
            F.datediff(F.col(DT), F.col("signup_date")).alias("days_since_signup"),
            F.datediff(F.col(DT), F.col("last_order_date")).alias("days_since_last_order"),
            "orders_total",
            "orders_30d",
            F.col("revenue_total_exact").cast("double").alias("revenue_total"),
            F.col("revenue_90d_exact").cast("double").alias("revenue_90d"),
            _ratio("revenue_total_exact", "orders_total").alias("avg_order_value"),
            "sessions_30d",
            _ratio("converted_30d", "sessions_30d").alias("conversion_rate_30d"),
            "coupon_offers_90d",
            "coupon_orders_90d",
            _ratio("coupon_orders_total", "orders_total").alias("coupon_order_share"),
            "acquisition_channel",
            DT,
        )
        written = write_feature_partitions(history, CUSTOMER_HISTORY, features_root, days)
        state = totals.where(F.col("orders_total") > 0).select(
            "customer_id", "orders_total", F.col("revenue_total_exact").alias("revenue_total"),
            "coupon_orders_total", "last_order_date", DT,
        )
        write_partitions(state, state_dir(features_root, TOTALS_STATE), days, sort_by=["customer_id"],
                         empty_schema=to_arrow_schema(_totals_schema()))
        return written
    finally:
        totals.unpersist()


def build_customer_history(spark: SparkSession, raw_root: Path, features_root: Path, day: dt.date) -> Path:
    """Write ``<features_root>/customer_history/dt=<day>/`` (see the module docstring); return that folder."""
    return build_customer_history_range(spark, raw_root, features_root, [day])[0]
