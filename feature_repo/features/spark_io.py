"""The I/O every Spark feature build shares: reading raw partitions, writing one feature partition.

Reads name each raw partition folder explicitly (never a whole table with a filter), so a build of a date
cannot touch a partition after it; ``partitions.raw_days`` decides which folders and fails on a gap. Writes
replace exactly the ``dt=`` folders of the dates built, with the table's schema: a range of dates is written by
one Spark job into a staging folder, then each date's folder is swapped in (a failed job leaves the old
partitions as they were).
"""

from __future__ import annotations

import datetime as dt
import logging
import shutil
import uuid
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from pyspark.sql import Column as SparkColumn
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from feature_repo.contract import lake
from feature_repo.contract.schema import Table
from feature_repo.features.partitions import feature_arrow_schema
from feature_repo.features.tables import EVENT_TIMESTAMP, FeatureTable

log = logging.getLogger(__name__)

DT = "dt"  # the partition date column added to every raw read (DateType)

SPARK_TYPES: dict[str, T.DataType] = {
    "string": T.StringType(),
    "int64": T.LongType(),
    "float64": T.DoubleType(),
    "bool": T.BooleanType(),
    "date": T.DateType(),
    "timestamp": T.TimestampType(),
    "list<string>": T.ArrayType(T.StringType()),
    "list<float64>": T.ArrayType(T.DoubleType()),
}

# Third argument of the non-null guard's coalesce, never returned (the guard raises first); being a non-null
# literal it is what makes Spark mark the column non-nullable, i.e. a REQUIRED parquet field.
_UNREACHABLE: dict[str, object] = {
    "string": "",
    "int64": 0,
    "float64": 0.0,
    "bool": False,
    "date": dt.date(1970, 1, 1),
    "timestamp": dt.datetime(1970, 1, 1, tzinfo=dt.UTC),
}


def read_raw(spark: SparkSession, raw_root: Path, table: Table, days: list[dt.date], columns: list[str]) -> DataFrame:
    """``columns`` of the raw partitions of ``days`` (typed as the contract says), plus ``dt`` (DateType).

    No ``days``: an empty frame with those columns (a window that starts before the table's first partition).
    """
    schema = T.StructType([T.StructField(c, SPARK_TYPES[table.column(c).dtype], nullable=True) for c in columns])
    if not days:
        return spark.createDataFrame([], schema.add(DT, T.DateType()))
    paths = [str(lake.partition_dir(raw_root, table.name, d)) for d in days]
    log.debug("reading %d partition(s) of %s: %s..%s", len(days), table.name, days[0], days[-1])
    # basePath makes Spark derive the dt column from the folder names of the explicit paths
    frame = spark.read.schema(schema).option("basePath", str(Path(raw_root) / table.name)).parquet(*paths)
    return frame.select(*columns, F.col(DT).cast(T.DateType()).alias(DT))


def end_of_day_column(day: str = DT) -> SparkColumn:
    """The last microsecond (UTC) of each row's date ``day``: a feature row's ``event_timestamp``."""
    micros_a_day = 86_400_000_000
    return F.timestamp_micros(F.unix_date(F.col(day)).cast("long") * micros_a_day + (micros_a_day - 1))


def _typed(name: str, dtype: str, nullable: bool, where: str) -> SparkColumn:
    spark_type = SPARK_TYPES[dtype]
    value = F.col(name).cast(spark_type)
    if nullable:
        return value.alias(name)
    # Spark marks every column read from files nullable; this both rejects a null and declares the column non-null
    error = F.raise_error(F.lit(f"{where}: column {name!r} is declared non-null but has a null value"))
    return F.coalesce(value, error.cast(spark_type), F.lit(_UNREACHABLE[dtype]).cast(spark_type)).alias(name)


def typed_feature_columns(table: FeatureTable, where: str) -> list[SparkColumn]:
    """The table's columns in its order (key, ``event_timestamp``, features), cast and null-guarded."""
    return [
        _typed(table.key, "string", False, where),
        _typed(EVENT_TIMESTAMP, "timestamp", False, where),
        *(_typed(c.name, c.dtype, c.nullable, where) for c in table.columns),
    ]


def _check_columns(frame: DataFrame, table: FeatureTable, extra: tuple[str, ...] = ()) -> None:
    expected = [table.key, EVENT_TIMESTAMP, *table.column_names, *extra]
    if sorted(frame.columns) != sorted(expected):
        raise ValueError(f"{table.name}: built columns {sorted(frame.columns)} != defined {sorted(expected)}")


def write_feature_partition(frame: DataFrame, table: FeatureTable, features_root: Path, day: dt.date) -> Path:
    """Write ``frame`` as the ``day`` partition of ``table``, replacing that folder only; return the folder.

    Columns are put in the table's order (key, ``event_timestamp``, features) and cast to its types; rows are
    sorted by the key into one file, so a re-run writes the same rows in the same order.
    """
    _check_columns(frame, table)
    return write_feature_partitions(frame.withColumn(DT, F.lit(day)), table, features_root, [day])[0]


def write_feature_partitions(
    frame: DataFrame, table: FeatureTable, features_root: Path, days: list[dt.date]
) -> list[Path]:
    """Write ``frame`` (the table's columns plus ``dt``) as the partitions of ``days``; return their folders.

    One Spark job for every date; each date's partition is one file sorted by the key, and a date without rows
    gets an empty file with the table's schema (a date built is always written, never left stale).
    """
    _check_columns(frame, table, extra=(DT,))
    columns = typed_feature_columns(table, f"{table.name} {days[0]}..{days[-1]}")
    return write_partitions(
        frame.select(*columns, F.col(DT).cast(T.DateType()).alias(DT)),
        Path(features_root) / table.name,
        days,
        sort_by=[table.key],
        empty_schema=feature_arrow_schema(table),
    )


def write_partitions(
    frame: DataFrame, folder: Path, days: list[dt.date], *, sort_by: list[str], empty_schema: pa.Schema
) -> list[Path]:
    """Write ``frame`` partitioned by ``dt`` under ``folder``: exactly the ``dt=`` folders of ``days``.

    Rows whose ``dt`` is not in ``days`` are an error of the caller (checked). Each date is one file, its rows
    sorted by ``sort_by``. The job writes into ``folder/_staging-<id>/``; only when it has succeeded is each
    date's folder swapped in, so a failure leaves every old partition in place.
    """
    days = sorted(set(days))
    staging = Path(folder) / f"_staging-{uuid.uuid4().hex}"
    wanted = F.col(DT).isin([F.lit(d) for d in days])
    guard = F.raise_error(F.lit(f"{folder.name}: a row dated outside the dates written ({days[0]}..{days[-1]})"))
    checked = frame.withColumn(DT, F.when(wanted, F.col(DT)).otherwise(guard.cast(T.DateType())))
    try:
        # one task per date value (hash of dt), sorted by date then key: the partitioned writer then writes one
        # file per date, in key order
        (
            checked.repartition(DT)
            .sortWithinPartitions(DT, *sort_by)
            .write.partitionBy(DT)
            .mode("overwrite")
            .parquet(str(staging))
        )
        out = []
        for day in days:
            out.append(_swap_in(staging, Path(folder), day, empty_schema))
        return out
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _swap_in(staging: Path, folder: Path, day: dt.date, empty_schema: pa.Schema) -> Path:
    name = f"{DT}={day.isoformat()}"
    source, target = staging / name, folder / name
    if not source.is_dir():  # no row for that date: an empty partition, so that the date is written
        source.mkdir(parents=True)
        pq.write_table(empty_schema.empty_table(), source / "part-00000.parquet")
    old = folder / f"_replaced-{uuid.uuid4().hex}-{name}"
    if target.exists():
        target.rename(old)
    source.rename(target)
    shutil.rmtree(old, ignore_errors=True)
    return target


def read_partitions(spark: SparkSession, folder: Path, days: list[dt.date], schema: T.StructType) -> DataFrame:
    """The ``dt=`` partitions of ``days`` under ``folder`` (written by :func:`write_partitions`), plus ``dt``."""
    paths = [str(Path(folder) / f"{DT}={d.isoformat()}") for d in days]
    frame = spark.read.schema(schema).option("basePath", str(folder)).parquet(*paths)
    return frame.select(*schema.fieldNames(), F.col(DT).cast(T.DateType()).alias(DT))
