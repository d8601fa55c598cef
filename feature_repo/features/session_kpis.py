"""Build the ``session_kpis`` partition of one date: one row per raw session started that day.

Columns: ``session_id`` (key), ``event_timestamp`` = ``started_at`` (UTC, microseconds), then the feature
columns of ``tables.SESSION_KPIS`` in order:

* ``customer_id``: the logged-in customer, ``'anonymous'`` (``tables.ANONYMOUS_CUSTOMER``) when null;
* ``device``, ``channel``: as in the raw session;
* ``is_anonymous``: 1 when the raw ``customer_id`` is null, else 0 (int64);
* the 25 KPIs of the contract, each cast to double, in the raw contract's units (ms, KiB, counts, ratio).

Reads only the raw ``sessions`` partition of the date; a range of dates is built in one job.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from feature_repo.contract.schema import KPI_NAMES, SESSIONS
from feature_repo.features.spark_io import DT, read_raw, write_feature_partitions
from feature_repo.features.state import raw_reads
from feature_repo.features.tables import ANONYMOUS_CUSTOMER, EVENT_TIMESTAMP, SESSION_KPIS


def plan(raw_root: Path, features_root: Path, days: list[dt.date]) -> dict[str, list[dt.date]]:
    """Raw partition dates a build of ``days`` reads, by raw table; raises MissingRawPartitionError on a gap."""
    return raw_reads(raw_root, [SESSIONS.name], days, built=days, feature_table=SESSION_KPIS.name)


def build_session_kpis_range(
    spark: SparkSession, raw_root: Path, features_root: Path, days: list[dt.date]
) -> list[Path]:
    """Write ``<features_root>/session_kpis/dt=<day>/`` for each of ``days`` in one job; return the folders."""
    reads = plan(raw_root, features_root, days)
    sessions = read_raw(
        spark, raw_root, SESSIONS, reads[SESSIONS.name],
        ["session_id", "customer_id", "started_at", "device", "channel", *KPI_NAMES],
    )
    anonymous = F.col("customer_id").isNull()
    features = sessions.select(
        "session_id",
        F.col("started_at").alias(EVENT_TIMESTAMP),
        F.coalesce(F.col("customer_id"), F.lit(ANONYMOUS_CUSTOMER)).alias("customer_id"),
        "device",
        "channel",
        F.when(anonymous, 1).otherwise(0).alias("is_anonymous"),
        *(F.col(k).cast("double").alias(k) for k in KPI_NAMES),
        DT,
    )
    return write_feature_partitions(features, SESSION_KPIS, features_root, days)


def build_session_kpis(spark: SparkSession, raw_root: Path, features_root: Path, day: dt.date) -> Path:
    """Write ``<features_root>/session_kpis/dt=<day>/`` from the raw sessions of ``day``; return that folder."""
    return build_session_kpis_range(spark, raw_root, features_root, [day])[0]
