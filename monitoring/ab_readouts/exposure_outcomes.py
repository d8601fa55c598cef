"""Spark job: join each experiment's exposures to the outcomes of its units, for the readout of one date.

For every experiment in ``windows`` (started on or before the run date), with its analysis end = the earlier of
the run date and the planned end date, it writes two tables under ``<lake>/experiments/``:

* ``ab_units/dt=<date>/``: one row per exposed unit: ``experiment_id``, ``unit_id``, ``variant``,
  ``first_exposed_at`` (UTC), ``exposure_date``, and the unit's pre-experiment behaviour in the
  ``pre_period_days`` before its first exposure (``pre_sessions``, ``pre_conversions``, ``pre_revenue`` EUR), the
  CUPED covariates;
* ``ab_unit_days/dt=<date>/``: one row per exposed unit and day with sessions at or after its first exposure
  and up to the analysis end: ``sessions``, ``converted_sessions``, ``orders`` (distinct order ids),
  ``revenue`` (EUR), ``pageviews``, ``page_load_ms_sum`` (ms, summed over sessions), ``js_errors``, ``http_5xx``.

Only outcomes after a unit's first exposure are attributed to the experiment (a session that starts at the
exposure instant is the exposing session and counts). A unit logged more than once keeps its earliest
exposure; a unit logged in two variants is dropped (its outcomes cannot be attributed) and counted in
``_meta.json``. Each run overwrites exactly its date's partitions and holds everything up to that date, so a
readout of a date reads one partition and re-running a date writes the same rows.

``python -m monitoring.ab_readouts.exposure_outcomes --date D`` (or ``spark-submit`` of this file) runs it by hand for
the experiments of the registry.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
from pathlib import Path

from feature_repo.contract.schema import EXPOSURES, ORDERS, SESSIONS
from feature_repo.features.partitions import raw_days
from monitoring.ab_readouts.experiments import AnalysisWindow

log = logging.getLogger(__name__)

UNITS_TABLE = "ab_units"
UNIT_DAYS_TABLE = "ab_unit_days"
JOB_NAME = "ab_exposure_outcomes"


def partition_dir(root: Path, table: str, day: dt.date) -> Path:
    return Path(root) / table / f"dt={day.isoformat()}"


def input_days(raw_root: Path, day: dt.date, windows: list[AnalysisWindow], pre_period_days: int) -> dict[str, list]:
    """Raw partition dates the job reads, by raw table; raises MissingRawPartitionError on a gap."""
    first = min(w.start for w in windows)
    last = max(w.end for w in windows)
    post_days = (last - first).days + 1
    return {
        EXPOSURES.name: raw_days(raw_root, EXPOSURES.name, last, feature_table=JOB_NAME, window_days=post_days),
        SESSIONS.name: raw_days(
            raw_root, SESSIONS.name, last, feature_table=JOB_NAME, window_days=post_days + pre_period_days
        ),
        ORDERS.name: raw_days(raw_root, ORDERS.name, last, feature_table=JOB_NAME, window_days=post_days),
    }


def join_exposures_to_outcomes(
    day: dt.date,
    windows: list[AnalysisWindow],
    *,
    pre_period_days: int,
    raw_root: Path,
    out_root: Path,
) -> dict[str, str]:
    """Write the ``day`` partitions of ``ab_units`` and ``ab_unit_days``; return table -> folder.

    Raw inputs are checked before Spark starts. Raises ValueError when ``windows`` is empty.
    """
    if not windows:
        raise ValueError(f"no experiment has started by {day}: nothing to join")
    days = input_days(raw_root, day, windows, pre_period_days)
    for table, read in days.items():
        log.info("%s %s reads %s: %d partition(s) %s..%s", JOB_NAME, day, table, len(read), read[0], read[-1])
    from feature_repo.features.spark_session import spark_session

    with spark_session(f"{JOB_NAME}-{day}") as spark:
        return _build(spark, day, windows, days, pre_period_days, Path(raw_root), Path(out_root))


def _build(spark, day, windows, days, pre_period_days, raw_root, out_root) -> dict[str, str]:
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    from feature_repo.features.spark_io import read_raw

    plan = spark.createDataFrame(
        [(w.experiment_id, w.start, w.end) for w in windows], "experiment_id string, start date, analysis_end date"
    )
    exposures = read_raw(
        spark, raw_root, EXPOSURES, days[EXPOSURES.name], ["experiment_id", "unit_id", "variant", "first_exposed_at"]
    ).join(F.broadcast(plan), "experiment_id")
    exposures = exposures.where((F.col("dt") >= F.col("start")) & (F.col("dt") <= F.col("analysis_end")))
    per_unit = Window.partitionBy("experiment_id", "unit_id")
    earliest = Window.partitionBy("experiment_id", "unit_id").orderBy("first_exposed_at", "variant")
    exposures = exposures.withColumn("n_variants", F.size(F.collect_set("variant").over(per_unit)))
    conflicts = exposures.where(F.col("n_variants") > 1).select("experiment_id", "unit_id").distinct()
    conflict_counts = {r["experiment_id"]: r["n"] for r in conflicts.groupBy("experiment_id").agg(
        F.count("*").alias("n")).collect()}
    units = (
        exposures.where(F.col("n_variants") == 1)
        .withColumn("rank", F.row_number().over(earliest))
        .where(F.col("rank") == 1)
        .select(
            "experiment_id",
            "unit_id",
            "variant",
            "first_exposed_at",
            F.col("dt").alias("exposure_date"),
            "analysis_end",
        )
    )

    sessions = read_raw(
        spark,
        raw_root,
        SESSIONS,
        days[SESSIONS.name],
        ["session_id", "customer_id", "started_at", "pageviews", "page_load_ms", "js_error_count", "http_5xx_count",
         "converted", "revenue"],
    ).where(F.col("customer_id").isNotNull())
    orders = (
        read_raw(spark, raw_root, ORDERS, days[ORDERS.name], ["order_id", "session_id"])
        .groupBy("session_id")
        .agg(F.countDistinct("order_id").alias("orders"))
    )
    joined = units.join(sessions.withColumnRenamed("customer_id", "unit_id"), "unit_id")

    pre_start = F.col("first_exposed_at") - F.expr(f"INTERVAL {int(pre_period_days)} DAYS")
    pre = (
        joined.where((F.col("started_at") < F.col("first_exposed_at")) & (F.col("started_at") >= pre_start))
        .groupBy("experiment_id", "unit_id")
        .agg(
            F.count("*").alias("pre_sessions"),
            F.sum(F.col("converted").cast("long")).alias("pre_conversions"),
            F.sum("revenue").alias("pre_revenue"),
        )
    )
    units_out = (
        units.join(pre, ["experiment_id", "unit_id"], "left")
        .select(
            "experiment_id",
            "unit_id",
            "variant",
            "first_exposed_at",
            "exposure_date",
            F.coalesce("pre_sessions", F.lit(0)).cast("long").alias("pre_sessions"),
            F.coalesce("pre_conversions", F.lit(0)).cast("long").alias("pre_conversions"),
            F.coalesce("pre_revenue", F.lit(0.0)).cast("double").alias("pre_revenue"),
        )
    )
    post = joined.where((F.col("started_at") >= F.col("first_exposed_at")) & (F.col("dt") <= F.col("analysis_end")))
    unit_days = (
        post.join(orders, "session_id", "left")
        .groupBy("experiment_id", "unit_id", F.col("dt").alias("day"))
        .agg(
            F.count("*").cast("long").alias("sessions"),
            F.sum(F.col("converted").cast("long")).alias("converted_sessions"),
            F.coalesce(F.sum("orders"), F.lit(0)).cast("long").alias("orders"),
            F.sum("revenue").cast("double").alias("revenue"),
            F.sum("pageviews").cast("long").alias("pageviews"),
            F.sum("page_load_ms").cast("double").alias("page_load_ms_sum"),
            F.sum("js_error_count").cast("long").alias("js_errors"),
            F.sum("http_5xx_count").cast("long").alias("http_5xx"),
        )
    )
    written = {}
    for name, frame, keys in (
        (UNITS_TABLE, units_out, ["experiment_id", "unit_id"]),
        (UNIT_DAYS_TABLE, unit_days, ["experiment_id", "unit_id", "day"]),
    ):
        folder = partition_dir(out_root, name, day)
        # one file per partition, sorted after coalesce(1) so a re-run writes the same rows in the same order
        frame.coalesce(1).sortWithinPartitions(*keys).write.mode("overwrite").parquet(str(folder))
        written[name] = str(folder)
    meta = {
        "date": day.isoformat(),
        "windows": [{"experiment_id": w.experiment_id, "start": str(w.start), "end": str(w.end)} for w in windows],
        "pre_period_days": pre_period_days,
        "units_in_two_variants_dropped": {w.experiment_id: int(conflict_counts.get(w.experiment_id, 0))
                                          for w in windows},
    }
    (partition_dir(out_root, UNITS_TABLE, day) / "_meta.json").write_text(json.dumps(meta, indent=2))
    return written


def main(argv: list[str] | None = None) -> None:
    """``python -m monitoring.ab_readouts.exposure_outcomes --date D``: the join for the registry's experiments."""
    from config.experiments import read_experiments_registry
    from config.settings import get_settings
    from monitoring.ab_readouts.experiments import analysis_windows

    parser = argparse.ArgumentParser(description="Join experiment exposures to outcomes for one date.")
    parser.add_argument("--date", required=True, type=dt.date.fromisoformat, help="run date, YYYY-MM-DD")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings, registry = get_settings(), read_experiments_registry()
    written = join_exposures_to_outcomes(
        args.date,
        analysis_windows(registry, args.date),
        pre_period_days=registry.pre_period_days,
        raw_root=settings.raw_root,
        out_root=settings.lake / "experiments",
    )
    for name, folder in written.items():
        print(f"{name}\t{folder}")


if __name__ == "__main__":
    main()
