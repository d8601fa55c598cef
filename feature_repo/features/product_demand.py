"""Build the ``product_demand`` partition of one date D: what each product on sale sold that day, at what price.

Rows: one per product in the raw ``catalog`` snapshot of D (on sale that day), sorted by ``product_id``; a
product that was shown or sold nowhere still has its row, with zeros. Columns: ``product_id`` (key),
``event_timestamp`` = D 23:59:59.999999 UTC (a day's demand is known once the day is over), then the features
of ``tables.PRODUCT_DEMAND`` in order:

* ``category``, ``list_price``, ``price`` (the selling price shown that day, before coupons), ``unit_cost``:
  from the catalog snapshot of D;
* ``impressions``: raw ``impressions`` rows of the product on D. It is the exposure the elasticity model counts
  demand against: traffic follows the season, so units per day confound price with footfall, units per
  impression do not;
* ``order_lines``, ``units`` (sum of ``quantity``), ``revenue`` (sum of ``unit_price_paid * quantity -
  discount``, EUR, summed as exact decimals so a re-run writes the same bits): the raw ``orders`` lines of D;
* ``avg_price_paid`` = revenue / units (net of coupons), ``discount_share`` = discount / gross amount: null
  without units;
* ``is_marked_down``: 1 when ``price < list_price``; ``has_promotion``: 1 when any line used a promotion;
* ``day_of_week`` (ISO, 1 = Monday) and ``day_of_year``: the calendar controls of the model.

Reads only the raw ``catalog``, ``impressions`` and ``orders`` partitions of D. :func:`daily_demand` computes
the same rows for several dates in one Spark job (with a ``dt`` column), for history loads and tests.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from feature_repo.contract.schema import CATALOG, IMPRESSIONS, ORDERS
from feature_repo.features.spark_io import DT, end_of_day_column, read_raw, write_feature_partitions
from feature_repo.features.state import raw_reads
from feature_repo.features.tables import EVENT_TIMESTAMP, PRODUCT_DEMAND

# Exact decimal sums: a double sum depends on the order Spark adds rows in.
_MONEY = T.DecimalType(38, 10)


def plan(raw_root: Path, features_root: Path, days: list[dt.date]) -> dict[str, list[dt.date]]:
    """Raw partition dates a build of ``days`` reads, by raw table; raises MissingRawPartitionError on a gap."""
    return raw_reads(raw_root, [CATALOG.name, IMPRESSIONS.name, ORDERS.name], days, built=days,
                     feature_table=PRODUCT_DEMAND.name)


def daily_demand(spark: SparkSession, raw_root: Path, days: list[dt.date]) -> DataFrame:
    """``dt``, ``product_id`` and the ``product_demand`` feature columns for every (date, product on sale)."""
    catalog = read_raw(spark, raw_root, CATALOG, days, ["product_id", "category", "list_price", "price", "unit_cost"])
    shown = (
        read_raw(spark, raw_root, IMPRESSIONS, days, ["product_id"])
        .groupBy(DT, "product_id")
        .agg(F.count(F.lit(1)).cast(T.LongType()).alias("impressions"))
    )
    lines = read_raw(
        spark, raw_root, ORDERS, days, ["product_id", "quantity", "unit_price_paid", "discount", "promotion_id"]
    )
    gross = (F.col("unit_price_paid") * F.col("quantity")).cast(_MONEY)
    sold = lines.groupBy(DT, "product_id").agg(
        F.count(F.lit(1)).cast(T.LongType()).alias("order_lines"),
        F.sum("quantity").cast(T.LongType()).alias("units"),
        F.sum(gross).alias("gross_exact"),
        F.sum(F.col("discount").cast(_MONEY)).alias("discount_exact"),
        F.max(F.col("promotion_id").isNotNull()).alias("any_promotion"),
    )
    zero = F.lit(0).cast(T.LongType())
    revenue = F.col("gross_exact") - F.col("discount_exact")
    has_units = F.coalesce(F.col("units"), zero) > 0
    return (
        catalog.join(shown, [DT, "product_id"], "left")
        .join(sold, [DT, "product_id"], "left")
        .select(
            DT,
            "product_id",
            "category",
            "list_price",
            "price",
            "unit_cost",
            F.coalesce("impressions", zero).alias("impressions"),
            F.coalesce("order_lines", zero).alias("order_lines"),
            F.coalesce("units", zero).alias("units"),
            F.coalesce(revenue.cast("double"), F.lit(0.0)).alias("revenue"),
            F.when(has_units, (revenue / F.col("units")).cast("double")).alias("avg_price_paid"),
            # when() keeps ANSI mode's division by zero from being reached
            F.when(has_units & (F.col("gross_exact") > 0), (F.col("discount_exact") / F.col("gross_exact")))
            .cast("double")
            .alias("discount_share"),
            F.when(F.col("price") < F.col("list_price"), 1).otherwise(0).cast(T.LongType()).alias("is_marked_down"),
            F.when(F.coalesce("any_promotion", F.lit(False)), 1).otherwise(0).cast(T.LongType()).alias("has_promotion"),
            F.dayofweek(DT).alias("spark_dow"),
            F.dayofyear(DT).cast(T.LongType()).alias("day_of_year"),
        )
        # Spark's dayofweek is 1 = Sunday; the table uses ISO (1 = Monday)
        .withColumn("day_of_week", (((F.col("spark_dow") + 5) % 7) + 1).cast(T.LongType()))
        .drop("spark_dow")
    )


def build_product_demand_range(
    spark: SparkSession, raw_root: Path, features_root: Path, days: list[dt.date]
) -> list[Path]:
    """Write the ``product_demand`` partitions of ``days`` in one job (see the module docstring)."""
    plan(raw_root, features_root, days)  # every input checked before Spark reads any
    demand = daily_demand(spark, raw_root, sorted(days)).withColumn(EVENT_TIMESTAMP, end_of_day_column())
    return write_feature_partitions(demand, PRODUCT_DEMAND, features_root, days)


def build_product_demand(spark: SparkSession, raw_root: Path, features_root: Path, day: dt.date) -> Path:
    """Write ``<features_root>/product_demand/dt=<day>/`` (see the module docstring); return that folder."""
    return build_product_demand_range(spark, raw_root, features_root, [day])[0]
