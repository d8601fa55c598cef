"""Build the ``product_ranking`` partition of one date D: each product on sale, as known at the end of D.

Rows: one per product in the raw ``catalog`` snapshot of D, sorted by ``product_id``. Columns: ``product_id``
(key), ``event_timestamp`` = D 23:59:59.999999 UTC, then the features of ``tables.PRODUCT_RANKING`` in order.
A list shown on date d therefore sees the row of d-1: the day's own clicks never leak into its features.

Position debiasing. Lists put popular products on top, and top positions are examined more, so a raw click
rate credits a product for where the shop showed it. The build first estimates the examination probability of
each position, ``theta_k`` (``position_bias.estimate_propensities``: click rate by position of the window's
randomized lists, isotonic, normalised at 1), then counts *examinations* instead of impressions:
``examinations = sum over the product's impressions of theta(position)``. The debiased rates are Bayesian
averages that pull products with few examinations towards the shop-wide rate (a prior worth
``PRIOR_EXAMINATIONS`` examinations):

* ``ctr_debiased = (clicks + m * clicks_all / exams_all) / (examinations + m)``, and likewise
  ``cart_rate_debiased`` (carts) and ``purchase_rate_debiased`` (purchases), with m = ``PRIOR_EXAMINATIONS``.

Window: the impressions of the last ``WINDOW_DAYS`` days, D included (fewer where the lake starts later); a
missing partition inside that range fails the build. Popularity is the window's counts (impressions, clicks,
carts, purchases); ``ctr_raw`` and ``mean_position`` (null without impressions) keep the logged ranker's view
for comparison. Price, list price and category come from the catalog of D; ``days_on_sale`` is D - launch.
Examination sums are exact decimals so that a re-run writes the same bits.
"""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path

from pyspark.sql import Column as SparkColumn
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from feature_repo.contract.schema import CATALOG, IMPRESSIONS
from feature_repo.features.customer_history import end_of_day
from feature_repo.features.partitions import raw_days
from feature_repo.features.position_bias import RANDOMIZED_RANKER, PositionPropensities, estimate_propensities
from feature_repo.features.spark_io import read_raw, write_feature_partition
from feature_repo.features.tables import EVENT_TIMESTAMP, PRODUCT_RANKING

log = logging.getLogger(__name__)

WINDOW_DAYS = 28  # impressions counted, and propensities estimated, over the last 28 days
PRIOR_EXAMINATIONS = 20.0  # strength of the shop-wide prior in the debiased rates, in examinations
_EXACT = T.DecimalType(38, 10)


def input_days(raw_root: Path, day: dt.date) -> dict[str, list[dt.date]]:
    """Raw partition dates the build of ``day`` reads, by raw table; raises MissingRawPartitionError on a gap."""
    return {
        CATALOG.name: raw_days(raw_root, CATALOG.name, day, feature_table=PRODUCT_RANKING.name, window_days=1),
        IMPRESSIONS.name: raw_days(
            raw_root, IMPRESSIONS.name, day, feature_table=PRODUCT_RANKING.name, window_days=WINDOW_DAYS
        ),
    }


def window_propensities(impressions: DataFrame) -> PositionPropensities:
    """Position propensities from the randomized lists among ``impressions`` (counts collected to the driver)."""
    counts = (
        impressions.where(F.col("ranker") == RANDOMIZED_RANKER)
        .groupBy("position")
        .agg(F.count(F.lit(1)).alias("n"), F.sum(F.col("clicked").cast("long")).alias("c"))
        .orderBy("position")
        .collect()
    )
    if not counts:
        raise ValueError("no randomized list in the window: position propensities cannot be estimated")
    return estimate_propensities(
        [r["position"] for r in counts], [r["n"] for r in counts], [r["c"] for r in counts]
    )


def _theta(propensities: PositionPropensities) -> SparkColumn:
    """theta(position) as a Spark column; positions past the estimated range take the last value."""
    curve = F.array(*(F.lit(round(float(v), 6)).cast(_EXACT) for v in propensities.theta))
    return F.element_at(curve, F.least(F.col("position"), F.lit(propensities.max_position)).cast("int"))


def _smoothed(events: str, prior_rate: SparkColumn) -> SparkColumn:
    m = F.lit(PRIOR_EXAMINATIONS)
    return (F.col(events).cast("double") + m * prior_rate) / (F.col("examinations_exact").cast("double") + m)


def build_product_ranking(spark: SparkSession, raw_root: Path, features_root: Path, day: dt.date) -> Path:
    """Write ``<features_root>/product_ranking/dt=<day>/`` (see the module docstring); return that folder."""
    days = input_days(raw_root, day)
    catalog = read_raw(
        spark, raw_root, CATALOG, days[CATALOG.name], ["product_id", "category", "list_price", "price", "launched_on"]
    )
    impressions = read_raw(
        spark,
        raw_root,
        IMPRESSIONS,
        days[IMPRESSIONS.name],
        ["product_id", "ranker", "position", "clicked", "added_to_cart", "purchased"],
    ).cache()
    try:
        propensities = window_propensities(impressions)
        log.info("product_ranking %s: position propensities %s", day, [round(float(v), 3) for v in propensities.theta])
        per_product = (
            impressions.withColumn("theta", _theta(propensities))
            .groupBy("product_id")
            .agg(
                F.count(F.lit(1)).cast(T.LongType()).alias("impressions_28d"),
                F.sum(F.col("clicked").cast("long")).alias("clicks_28d"),
                F.sum(F.col("added_to_cart").cast("long")).alias("carts_28d"),
                F.sum(F.col("purchased").cast("long")).alias("purchases_28d"),
                F.sum("theta").alias("examinations_exact"),
                F.sum(F.col("position").cast("long")).alias("position_sum"),
            )
        )
        totals = per_product.agg(
            F.sum("examinations_exact").cast("double").alias("exams_all"),
            F.sum("clicks_28d").cast("double").alias("clicks_all"),
            F.sum("carts_28d").cast("double").alias("carts_all"),
            F.sum("purchases_28d").cast("double").alias("purchases_all"),
        )
        zero = F.lit(0).cast(T.LongType())
        joined = (
            catalog.select("product_id", "category", "list_price", "price", "launched_on")
            .join(per_product, "product_id", "left")
            .crossJoin(totals)
            .withColumn("examinations_exact", F.coalesce("examinations_exact", F.lit(0).cast(_EXACT)))
            .withColumn("clicks_28d", F.coalesce("clicks_28d", zero))
            .withColumn("carts_28d", F.coalesce("carts_28d", zero))
            .withColumn("purchases_28d", F.coalesce("purchases_28d", zero))
            .withColumn("impressions_28d", F.coalesce("impressions_28d", zero))
        )
        features = joined.select(
            "product_id",
            F.lit(end_of_day(day)).alias(EVENT_TIMESTAMP),
            "category",
            "list_price",
            "price",
            F.datediff(F.lit(day), F.col("launched_on")).cast(T.LongType()).alias("days_on_sale"),
            "impressions_28d",
            "clicks_28d",
            "carts_28d",
            "purchases_28d",
            F.col("examinations_exact").cast("double").alias("examinations_28d"),
            _smoothed("clicks_28d", F.col("clicks_all") / F.col("exams_all")).alias("ctr_debiased"),
            _smoothed("carts_28d", F.col("carts_all") / F.col("exams_all")).alias("cart_rate_debiased"),
            _smoothed("purchases_28d", F.col("purchases_all") / F.col("exams_all")).alias("purchase_rate_debiased"),
            F.when(F.col("impressions_28d") > 0, F.col("clicks_28d") / F.col("impressions_28d")).alias("ctr_raw"),
            F.when(F.col("impressions_28d") > 0, F.col("position_sum") / F.col("impressions_28d")).alias(
                "mean_position"
            ),
        )
        return write_feature_partition(features, PRODUCT_RANKING, features_root, day)
    finally:
        impressions.unpersist()
