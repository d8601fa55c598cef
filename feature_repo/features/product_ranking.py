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

Incremental (``feature_repo/features/state.py``): a date's impressions are counted once into the
``product_position_daily`` state (per product, position and whether the list was randomized); each date's
window, propensities included, is the sum of its 28 daily partitions. A night reads one day of impressions; a
range of dates is built in one pass (each date's window joined from the same daily partitions).
"""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path

from pyspark.sql import Column as SparkColumn
from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql import types as T

from feature_repo.contract.schema import CATALOG, IMPRESSIONS
from feature_repo.features.position_bias import RANDOMIZED_RANKER, PositionPropensities, estimate_propensities
from feature_repo.features.spark_io import DT, end_of_day_column, read_raw, write_feature_partitions
from feature_repo.features.state import DailyAggregate, date_range, first_partition, raw_reads
from feature_repo.features.tables import EVENT_TIMESTAMP, PRODUCT_RANKING

log = logging.getLogger(__name__)

WINDOW_DAYS = 28  # impressions counted, and propensities estimated, over the last 28 days
PRIOR_EXAMINATIONS = 20.0  # strength of the shop-wide prior in the debiased rates, in examinations
_EXACT = T.DecimalType(38, 10)
_THETA = T.DecimalType(16, 10)  # theta <= 1; narrow enough that count x theta keeps all ten decimals


def _daily_schema() -> T.StructType:
    long = T.LongType()
    return T.StructType(
        [
            T.StructField("product_id", T.StringType(), False),
            T.StructField("position", long, False),
            T.StructField("randomized", T.BooleanType(), False),
            T.StructField("impressions", long, False),
            T.StructField("clicks", long, False),
            T.StructField("carts", long, False),
            T.StructField("purchases", long, False),
        ]
    )


def _compute_daily(spark: SparkSession, raw_root: Path, reads: dict[str, list[dt.date]]) -> DataFrame:
    """``product_position_daily`` rows: a date's impressions counted per product, position and randomized list."""
    impressions = read_raw(
        spark, raw_root, IMPRESSIONS, reads[IMPRESSIONS.name],
        ["product_id", "ranker", "position", "clicked", "added_to_cart", "purchased"],
    )
    long = T.LongType()
    return impressions.groupBy(
        DT, "product_id", F.col("position").cast(long).alias("position"),
        (F.col("ranker") == RANDOMIZED_RANKER).alias("randomized"),
    ).agg(
        F.count(F.lit(1)).cast(long).alias("impressions"),
        F.sum(F.col("clicked").cast(long)).cast(long).alias("clicks"),
        F.sum(F.col("added_to_cart").cast(long)).cast(long).alias("carts"),
        F.sum(F.col("purchased").cast(long)).cast(long).alias("purchases"),
    )


PRODUCT_POSITION_DAILY = DailyAggregate(
    name="product_position_daily",
    key=("product_id", "position", "randomized"),
    raw_tables=(IMPRESSIONS.name,),
    schema=_daily_schema,
    compute=_compute_daily,
)


def _window_days(raw_root: Path, days: list[dt.date]) -> list[dt.date]:
    start = first_partition(raw_root, IMPRESSIONS.name) or days[0]
    return date_range(min(days[0], max(start, days[0] - dt.timedelta(days=WINDOW_DAYS - 1))), days[-1])


def plan(raw_root: Path, features_root: Path, days: list[dt.date]) -> dict[str, list[dt.date]]:
    """Raw partition dates a build of ``days`` (consecutive) reads, by raw table; raises on a gap.

    Impressions: the dates built, and the window's earlier dates that have no ``product_position_daily`` state.
    """
    _, reads = PRODUCT_POSITION_DAILY.plan(raw_root, features_root, _window_days(raw_root, days), days,
                                           PRODUCT_RANKING.name)
    reads[CATALOG.name] = raw_reads(raw_root, [CATALOG.name], days, built=days,
                                    feature_table=PRODUCT_RANKING.name)[CATALOG.name]
    return reads


def _propensities_by_day(
    daily: DataFrame, days: list[dt.date]
) -> dict[dt.date, tuple[PositionPropensities, int]]:
    """Each built date's propensities from its window's randomized lists, and the deepest position shown.

    The counts per date and position are small (dates x positions): they are collected and summed over each
    window on the driver.
    """
    counts = (
        daily.groupBy(DT, "position")
        .agg(
            F.sum(F.when(F.col("randomized"), F.col("impressions")).otherwise(0)).alias("n"),
            F.sum(F.when(F.col("randomized"), F.col("clicks")).otherwise(0)).alias("c"),
        )
        .collect()
    )
    out = {}
    for day in days:
        first = day - dt.timedelta(days=WINDOW_DAYS - 1)
        rows = [r for r in counts if first <= r[DT] <= day]
        n: dict[int, int] = {}
        c: dict[int, int] = {}
        for r in rows:
            n[r["position"]] = n.get(r["position"], 0) + r["n"]
            c[r["position"]] = c.get(r["position"], 0) + r["c"]
        randomized = sorted(k for k, v in n.items() if v > 0)
        if not randomized:
            raise ValueError(f"no randomized list in the window of {day}: position propensities cannot be estimated")
        propensities = estimate_propensities(randomized, [n[k] for k in randomized], [c[k] for k in randomized])
        log.info("product_ranking %s: position propensities %s", day, [round(float(v), 3) for v in propensities.theta])
        out[day] = (propensities, max(n))
    return out


def _smoothed(events: str, prior_rate: SparkColumn) -> SparkColumn:
    m = F.lit(PRIOR_EXAMINATIONS)
    return (F.col(events).cast("double") + m * prior_rate) / (F.col("examinations_exact").cast("double") + m)


def build_product_ranking_range(
    spark: SparkSession, raw_root: Path, features_root: Path, days: list[dt.date]
) -> list[Path]:
    """Write the ``product_ranking`` partitions of ``days`` (consecutive) in one pass; return the folders.

    Each date's 28-day window is the sum of the window's ``product_position_daily`` partitions (one small row per
    product, position and kind of list a date), so a night reads one day of impressions. The window is a sum over
    one row per product and date (positions as columns), so a range of N dates costs N x products rows, not N x 28
    days of impressions.
    """
    days = sorted(days)
    reads = plan(raw_root, features_root, days)
    daily = PRODUCT_POSITION_DAILY.ensure(
        spark, raw_root, features_root, _window_days(raw_root, days), days, PRODUCT_RANKING.name
    ).cache()
    per_product: DataFrame | None = None
    try:
        by_day = _propensities_by_day(daily, days)
        deepest = max(d for _, d in by_day.values())
        positions = range(1, deepest + 1)
        long = T.LongType()
        # one row per product and date, the impressions at each position as columns: a window of 28 dates is
        # then a sum over 28 rows per product, however many positions and lists the dates had
        per_date = daily.groupBy(DT, "product_id").agg(
            *(F.sum(c).cast(long).alias(c) for c in ("impressions", "clicks", "carts", "purchases")),
            F.sum(F.col("position") * F.col("impressions")).cast(long).alias("position_sum"),
            *(F.sum(F.when(F.col("position") == k, F.col("impressions")).otherwise(0)).cast(long).alias(f"n{k}")
              for k in positions),
        )
        counted = ["impressions", "clicks", "carts", "purchases", "position_sum", *(f"n{k}" for k in positions)]
        built = spark.createDataFrame([(d,) for d in days], T.StructType([T.StructField(DT, T.DateType(), False)]))
        products = per_date.select("product_id").distinct()
        spine = products.crossJoin(F.broadcast(built)).select(
            "product_id", DT, *(F.lit(0).cast(long).alias(c) for c in counted), F.lit(True).alias("built")
        )
        rows = (
            per_date.withColumn("built", F.lit(False))
            .unionByName(spine)
            .groupBy("product_id", DT)
            .agg(*(F.sum(c).alias(c) for c in counted), F.max("built").alias("built"))
            .withColumn("_day", F.unix_date(F.col(DT)))
        )
        window = Window.partitionBy("product_id").orderBy("_day").rangeBetween(-(WINDOW_DAYS - 1), 0)
        windowed = rows.select(
            "product_id", DT, "built", *(F.sum(c).over(window).cast(long).alias(c) for c in counted)
        ).where(F.col("built") & (F.col("impressions") > 0))
        # theta(date, position) as columns, positions past a date's estimated range taking its last value
        theta_rows = [
            (day, *(round(float(p.theta[min(k, p.max_position) - 1]), 6) for k in positions))
            for day, (p, _) in by_day.items()
        ]
        theta = spark.createDataFrame(
            theta_rows,
            T.StructType([T.StructField(DT, T.DateType(), False),
                          *(T.StructField(f"theta{k}", T.DoubleType(), False) for k in positions)]),
        )
        exams = F.lit(0).cast(_EXACT)
        for k in positions:  # exact: count x theta(k), theta with six decimals, summed as decimals
            term = F.col(f"n{k}").cast(T.DecimalType(18, 0)) * F.col(f"theta{k}").cast(_EXACT).cast(_THETA)
            exams = (exams + term.cast(_EXACT)).cast(_EXACT)
        per_product = windowed.join(F.broadcast(theta), DT, "inner").select(
            F.col(DT).alias("day"),
            "product_id",
            F.col("impressions").alias("impressions_28d"),
            F.col("clicks").alias("clicks_28d"),
            F.col("carts").alias("carts_28d"),
            F.col("purchases").alias("purchases_28d"),
            exams.alias("examinations_exact"),
            "position_sum",
        ).cache()
        totals = per_product.groupBy("day").agg(
            F.sum("examinations_exact").cast("double").alias("exams_all"),
            F.sum("clicks_28d").cast("double").alias("clicks_all"),
            F.sum("carts_28d").cast("double").alias("carts_all"),
            F.sum("purchases_28d").cast("double").alias("purchases_all"),
        )
        catalog = read_raw(
            spark, raw_root, CATALOG, reads[CATALOG.name],
            ["product_id", "category", "list_price", "price", "launched_on"],
        ).withColumnRenamed(DT, "day")
        zero = F.lit(0).cast(T.LongType())
        joined = (
            catalog.join(per_product, ["day", "product_id"], "left")
            .join(F.broadcast(totals), "day", "left")
            .withColumn("examinations_exact", F.coalesce("examinations_exact", F.lit(0).cast(_EXACT)))
            .withColumn("clicks_28d", F.coalesce("clicks_28d", zero))
            .withColumn("carts_28d", F.coalesce("carts_28d", zero))
            .withColumn("purchases_28d", F.coalesce("purchases_28d", zero))
            .withColumn("impressions_28d", F.coalesce("impressions_28d", zero))
        )
        features = joined.select(
            "product_id",
            end_of_day_column("day").alias(EVENT_TIMESTAMP),
            "category",
            "list_price",
            "price",
            F.datediff(F.col("day"), F.col("launched_on")).cast(T.LongType()).alias("days_on_sale"),
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
            F.col("day").alias(DT),
        )
        return write_feature_partitions(features, PRODUCT_RANKING, features_root, days)
    finally:
        daily.unpersist()
        if per_product is not None:
            per_product.unpersist()


def build_product_ranking(spark: SparkSession, raw_root: Path, features_root: Path, day: dt.date) -> Path:
    """Write ``<features_root>/product_ranking/dt=<day>/`` (see the module docstring); return that folder."""
    return build_product_ranking_range(spark, raw_root, features_root, [day])[0]
