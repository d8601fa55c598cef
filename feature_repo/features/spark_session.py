"""The Spark session a feature build runs in: one per task, UTC, microsecond parquet timestamps.

Locally (the embedded profile) the session runs ``local[*]`` inside the task with the driver memory from the
settings. Under ``spark-submit`` (production) the master and memory come from the submit command and only the
SQL settings below are applied, so the same job code runs in both places.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager

from pyspark.errors import PySparkRuntimeError
from pyspark.sql import SparkSession

from config.settings import get_settings

log = logging.getLogger(__name__)

# Runtime SQL settings every build relies on; applied to reused sessions too, as they decide what is written.
SQL_CONF: dict[str, str] = {
    "spark.sql.session.timeZone": "UTC",
    # Spark's default (INT96) is a legacy type that Feast's Dask store and pyarrow read without the UTC semantics
    "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
}
# Only for a local[...] master: a cluster keeps its own defaults (UI, shuffle width, JIT).
LOCAL_CONF: dict[str, str] = {
    "spark.sql.shuffle.partitions": "4",  # the default 200 makes tiny local shuffles cost seconds
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.log.level": "WARN",
    # local builds are short jobs: C1-only JIT roughly halves the JVM's warm-up (first query 10-19 s -> 6-9 s here);
    # a history load or a test run compiles more than the default 48 MB code cache holds, and a full cache
    # switches the JIT off for the rest of the session
    "spark.driver.extraJavaOptions": "-XX:+TieredCompilation -XX:TieredStopAtLevel=1 -XX:ReservedCodeCacheSize=256m",
}


def _launched_by_spark_submit() -> bool:
    # spark-submit starts the JVM first and hands its gateway to Python through this variable; a builder
    # .master() would then override the cluster master given on the command line
    return "PYSPARK_GATEWAY_PORT" in os.environ


def _running_session() -> SparkSession | None:
    """The session active in this thread, else the process's default one (started by another thread)."""
    try:
        return SparkSession.active()
    except PySparkRuntimeError:
        return None


def apply_sql_conf(spark: SparkSession) -> None:
    """Set the runtime SQL settings the builds need (UTC session time zone, microsecond timestamps)."""
    for key, value in SQL_CONF.items():
        spark.conf.set(key, value)


@contextmanager
def spark_session(app_name: str) -> Iterator[SparkSession]:
    """Yield a Spark session for one task and stop it on exit.

    A session already active in this process (a test suite's shared one, a notebook's) is reused with the
    build's SQL settings applied, and left running on exit: its owner stops it.
    """
    existing = _running_session()
    if existing is not None:
        apply_sql_conf(existing)
        yield existing
        return

    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    builder = SparkSession.builder.appName(app_name)
    conf = dict(SQL_CONF)
    if not _launched_by_spark_submit():
        settings = get_settings()
        builder = builder.master(settings.spark_master).config("spark.driver.memory", settings.spark_driver_memory)
        if settings.spark_master.startswith("local"):
            conf.update(LOCAL_CONF)
    for key, value in conf.items():
        builder = builder.config(key, value)
    began = time.perf_counter()
    spark = builder.getOrCreate()
    log.info(
        "Spark %s session %r started in %.1f s (master %s)",
        spark.version,
        app_name,
        time.perf_counter() - began,
        spark.sparkContext.master,
    )
    try:
        yield spark
    finally:
        spark.stop()
