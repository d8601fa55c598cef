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

Counts and sums are 0 (not null) for a customer without such events. Raw partitions read: ``customers`` of D;
``orders`` of every date up to D; ``sessions`` of the last 30 days; ``promotion_offers`` of the last 90 days.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from pyspark.sql import Column as SparkColumn
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from feature_repo.contract.schema import CUSTOMERS, ORDERS, PROMOTION_OFFERS, SESSIONS
from feature_repo.features.partitions import raw_days
from feature_repo.features.spark_io import DT, read_raw, write_feature_partition
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


def _within(day: dt.date, n_days: int) -> SparkColumn:
    return F.col(DT) >= F.lit(day - dt.timedelta(days=n_days - 1))


def _count_if(condition: SparkColumn) -> SparkColumn:
    return F.sum(F.when(condition, 1).otherwise(0)).cast(T.LongType())


def _order_features(orders: DataFrame, day: dt.date) -> DataFrame:
    per_order = (
        orders.where(F.col("customer_id").isNotNull())
        .groupBy("customer_id", "order_id")
        .agg(
            F.max(DT).alias(DT),
            F.sum((F.col("unit_price_paid") * F.col("quantity") - F.col("discount")).cast(_MONEY)).alias("amount"),
            F.max(F.col("promotion_id").isNotNull()).alias("used_promotion"),
        )
    )
    long_window = _within(day, LONG_WINDOW_DAYS)
    return per_order.groupBy("customer_id").agg(
        F.max(DT).alias("last_order_date"),
        F.count(F.lit(1)).cast(T.LongType()).alias("orders_total"),
        _count_if(_within(day, SHORT_WINDOW_DAYS)).alias("orders_30d"),
        F.sum("amount").alias("revenue_total_exact"),
        F.sum(F.when(long_window, F.col("amount")).otherwise(F.lit(0).cast(_MONEY))).alias("revenue_90d_exact"),
        _count_if(F.col("used_promotion")).alias("coupon_orders_total"),
        _count_if(F.col("used_promotion") & long_window).alias("coupon_orders_90d"),
    )


def _session_features(sessions: DataFrame) -> DataFrame:
    return (
        sessions.where(F.col("customer_id").isNotNull())
        .groupBy("customer_id")
        .agg(
            F.count(F.lit(1)).cast(T.LongType()).alias("sessions_30d"),
            _count_if(F.col("converted")).alias("converted_30d"),
        )
    )


def _offer_features(offers: DataFrame) -> DataFrame:
    return (
        offers.where(F.col("promotion_id") != HOLDOUT_PROMOTION)
        .groupBy("customer_id")
        .agg(F.count(F.lit(1)).cast(T.LongType()).alias("coupon_offers_90d"))
    )


def _ratio(numerator: str, denominator: str) -> SparkColumn:
    # null when the denominator is 0; when() keeps ANSI mode's division-by-zero error from being reached
    return F.when(F.col(denominator) > 0, F.col(numerator).cast("double") / F.col(denominator).cast("double"))


def input_days(raw_root: Path, day: dt.date) -> dict[str, list[dt.date]]:
    """Raw partition dates the build of ``day`` reads, by raw table; raises MissingRawPartitionError on a gap."""
    windows = {
        CUSTOMERS.name: 1,
        ORDERS.name: None,
        SESSIONS.name: SHORT_WINDOW_DAYS,
        PROMOTION_OFFERS.name: LONG_WINDOW_DAYS,
    }
    return {
        table: raw_days(raw_root, table, day, feature_table=CUSTOMER_HISTORY.name, window_days=window)
        for table, window in windows.items()
    }


def build_customer_history(spark: SparkSession, raw_root: Path, features_root: Path, day: dt.date) -> Path:
    """Write ``<features_root>/customer_history/dt=<day>/`` (see the module docstring); return that folder."""
    days = input_days(raw_root, day)  # every input checked before Spark reads any
    customers = read_raw(spark, raw_root, CUSTOMERS, days[CUSTOMERS.name], ["customer_id", "signup_date"])
    orders = read_raw(
        spark,
        raw_root,
        ORDERS,
        days[ORDERS.name],
        ["order_id", "customer_id", "quantity", "unit_price_paid", "discount", "promotion_id"],
    )
    sessions = read_raw(spark, raw_root, SESSIONS, days[SESSIONS.name], ["customer_id", "converted"])
    offers = read_raw(spark, raw_root, PROMOTION_OFFERS, days[PROMOTION_OFFERS.name], ["customer_id", "promotion_id"])

    zero = F.lit(0).cast(T.LongType())
    history = (
        customers.select("customer_id", "signup_date")
        .join(_order_features(orders, day), "customer_id", "left")
        .join(_session_features(sessions), "customer_id", "left")
        .join(_offer_features(offers), "customer_id", "left")
        .select(
            "customer_id",
            F.lit(end_of_day(day)).alias(EVENT_TIMESTAMP),
            F.datediff(F.lit(day), F.col("signup_date")).alias("days_since_signup"),
            F.datediff(F.lit(day), F.col("last_order_date")).alias("days_since_last_order"),
            F.coalesce("orders_total", zero).alias("orders_total"),
            F.coalesce("orders_30d", zero).alias("orders_30d"),
            F.coalesce(F.col("revenue_total_exact").cast("double"), F.lit(0.0)).alias("revenue_total"),
            F.coalesce(F.col("revenue_90d_exact").cast("double"), F.lit(0.0)).alias("revenue_90d"),
            _ratio("revenue_total_exact", "orders_total").alias("avg_order_value"),
            F.coalesce("sessions_30d", zero).alias("sessions_30d"),
            _ratio("converted_30d", "sessions_30d").alias("conversion_rate_30d"),
            F.coalesce("coupon_offers_90d", zero).alias("coupon_offers_90d"),
            F.coalesce("coupon_orders_90d", zero).alias("coupon_orders_90d"),
            _ratio("coupon_orders_total", "orders_total").alias("coupon_order_share"),
        )
    )
    return write_feature_partition(history, CUSTOMER_HISTORY, features_root, day)
