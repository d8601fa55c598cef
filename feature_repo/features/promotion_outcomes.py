"""Spark job: the 10-week outcome of every promotion offer whose outcome window has closed by a run date R.

One row per ``promotion_offers`` row (coupons and the randomized ``none`` holdout alike) offered at ``t`` with
``t + outcome_window_days <= R + 1 day`` (midnight after R): its whole window ``[t, t + window)`` lies in raw
partitions up to R, so nothing after the run date is ever read, and an offer younger than the window is left
out rather than labelled with a partial outcome. Columns:

* the offer: ``offer_id``, ``customer_id``, ``promotion_id`` (``none`` for the holdout), ``promotion_kind``,
  ``discount_pct``, ``min_spend``, ``offered_at``, ``expires_at``, ``assignment`` (``random`` | ``policy``),
  ``redeemed``;
* ``revenue_10w``: what the customer paid in the window, ``sum(unit_price_paid * quantity - discount)``, EUR;
* ``discount_10w``: what the coupons (any offer's) took off those orders, ``sum(discount)``, EUR;
* ``margin_10w``: the shop's margin after the discount cost, ``sum((unit_price_paid - unit_cost) * quantity
  - discount)``, EUR, with the unit cost of the order date's ``catalog`` snapshot (a free-shipping coupon's
  discount is the shipping fee the shop pays, so it is a cost here too);
* ``orders_10w``: orders in the window; ``coupon_orders_10w``: those with a promotion on any line;
* ``bought_again_without_coupon``: the customer placed an order without any promotion after the offer expired
  (``expires_at <= ordered_at < t + window``): still buying at full margin once the coupon is gone.

Orders count from any session of the customer (every order of the window, whichever coupon it used: a later
offer inside the window is part of what this offer's arm led to). Amounts are summed as exact decimals.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from feature_repo.contract import lake
from feature_repo.contract.schema import CATALOG, ORDERS, PROMOTION_OFFERS
from feature_repo.features.partitions import MissingRawPartitionError
from feature_repo.features.spark_io import DT, read_raw

OUTCOME_COLUMNS = (
    "revenue_10w",
    "discount_10w",
    "margin_10w",
    "orders_10w",
    "coupon_orders_10w",
    "bought_again_without_coupon",
)
OFFER_COLUMNS = (
    "offer_id",
    "customer_id",
    "promotion_id",
    "promotion_kind",
    "discount_pct",
    "min_spend",
    "offered_at",
    "expires_at",
    "assignment",
    "redeemed",
)
_MONEY = T.DecimalType(38, 10)
_JOB = "promotion_outcomes"


def outcome_days(
    raw_root: Path, day: dt.date, window_days: int, offers_from: dt.date | None
) -> dict[str, list[dt.date]]:
    """Raw partition dates the outcomes of run date ``day`` read, by raw table.

    Offers: ``offers_from`` (default: the first partition) .. ``day - window_days``; orders and catalog: the
    first offer date .. ``day``. Raises MissingRawPartitionError on a gap, ValueError when no offer can be complete.
    """
    last_offer_day = day - dt.timedelta(days=window_days)
    offer_dates = [d for d in lake.list_partitions(raw_root, PROMOTION_OFFERS.name) if d <= last_offer_day]
    if offers_from is not None:
        offer_dates = [d for d in offer_dates if d >= offers_from]
    if not offer_dates:
        raise ValueError(
            f"no promotion_offers partition between {offers_from or 'the lake start'} and {last_offer_day}: "
            f"no offer made by then has a closed {window_days}-day outcome window on {day}"
        )
    first = offer_dates[0]
    wanted = {
        PROMOTION_OFFERS.name: [first + dt.timedelta(days=i) for i in range((last_offer_day - first).days + 1)],
        ORDERS.name: [first + dt.timedelta(days=i) for i in range((day - first).days + 1)],
        CATALOG.name: [first + dt.timedelta(days=i) for i in range((day - first).days + 1)],
    }
    for table, dates in wanted.items():
        available = set(lake.list_partitions(raw_root, table))
        missing = [d for d in dates if d not in available]
        if missing:
            raise MissingRawPartitionError(_JOB, day, table, missing, Path(raw_root) / table)
    return wanted


def offer_outcomes(
    spark: SparkSession, raw_root: Path, day: dt.date, window_days: int, offers_from: dt.date | None = None
) -> DataFrame:
    """The offers complete on ``day`` with their ``window_days``-day outcomes (see the module docstring)."""
    days = outcome_days(raw_root, day, window_days, offers_from)
    window_end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC)
    offers = read_raw(spark, raw_root, PROMOTION_OFFERS, days[PROMOTION_OFFERS.name], list(OFFER_COLUMNS)).where(
        (F.col("offered_at") + F.make_interval(days=F.lit(window_days))) <= F.lit(window_end)
    )
    orders = read_raw(
        spark,
        raw_root,
        ORDERS,
        days[ORDERS.name],
        ["order_id", "ordered_at", "customer_id", "product_id", "quantity", "unit_price_paid", "discount",
         "promotion_id"],
    ).where(F.col("customer_id").isNotNull())
    catalog = read_raw(spark, raw_root, CATALOG, days[CATALOG.name], ["product_id", "unit_cost"])
    lines = orders.join(catalog, [DT, "product_id"], "left")
    per_order = lines.groupBy("customer_id", "order_id").agg(
        F.min("ordered_at").alias("ordered_at"),
        F.sum((F.col("unit_price_paid") * F.col("quantity") - F.col("discount")).cast(_MONEY)).alias("revenue"),
        F.sum(F.col("discount").cast(_MONEY)).alias("discount"),
        F.sum(
            ((F.col("unit_price_paid") - F.col("unit_cost")) * F.col("quantity") - F.col("discount")).cast(_MONEY)
        ).alias("margin"),
        F.max(F.col("promotion_id").isNotNull()).alias("used_promotion"),
        F.max(F.col("unit_cost").isNull()).alias("cost_unknown"),
    )
    o = per_order.alias("o")
    in_window = (F.col("o.ordered_at") >= F.col("f.offered_at")) & (
        F.col("o.ordered_at") < F.col("f.offered_at") + F.make_interval(days=F.lit(window_days))
    )
    joined = offers.alias("f").join(o, (F.col("f.customer_id") == F.col("o.customer_id")) & in_window, "left")
    zero = F.lit(0).cast(_MONEY)
    after_expiry = F.col("o.ordered_at") >= F.col("f.expires_at")
    outcomes = joined.groupBy(*(F.col(f"f.{c}").alias(c) for c in OFFER_COLUMNS)).agg(
        F.coalesce(F.sum("o.revenue"), zero).cast("double").alias("revenue_10w"),
        F.coalesce(F.sum("o.discount"), zero).cast("double").alias("discount_10w"),
        F.coalesce(F.sum("o.margin"), zero).cast("double").alias("margin_10w"),
        F.count("o.order_id").cast(T.LongType()).alias("orders_10w"),
        F.sum(F.when(F.col("o.used_promotion"), 1).otherwise(0)).cast(T.LongType()).alias("coupon_orders_10w"),
        F.coalesce(F.max(after_expiry & ~F.col("o.used_promotion")), F.lit(False)).alias(
            "bought_again_without_coupon"
        ),
        F.coalesce(F.max("o.cost_unknown"), F.lit(False)).alias("_cost_unknown"),
    )
    # a product missing from its date's catalog snapshot would silently count as cost-free
    error = F.raise_error(F.lit(f"{_JOB} {day}: an order line has no unit cost in its date's catalog"))
    guard = F.when(F.col("_cost_unknown"), error.cast("boolean")).otherwise(F.lit(True))
    return outcomes.where(guard).select(*OFFER_COLUMNS, *OUTCOME_COLUMNS)


def write_offer_outcomes(frame: DataFrame, out: Path) -> Path:
    """Write the outcomes as one parquet file (sorted by offer) under folder ``out``, replacing it."""
    frame.coalesce(1).sortWithinPartitions("offer_id").write.mode("overwrite").parquet(str(out))
    return out
