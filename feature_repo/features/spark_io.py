"""The I/O every Spark feature build shares: reading raw partitions, writing one feature partition.

Reads name each raw partition folder explicitly (never a whole table with a filter), so a build of a date
cannot touch a partition after it; ``partitions.raw_days`` decides which folders and fails on a gap. Writes
overwrite exactly one ``dt=`` folder of one feature table, with the table's schema.
"""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path

from pyspark.sql import Column as SparkColumn
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from feature_repo.contract import lake
from feature_repo.contract.schema import Table
from feature_repo.features.partitions import feature_partition_dir
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
    """``columns`` of the raw partitions of ``days`` (typed as the contract says), plus ``dt`` (DateType)."""
    schema = T.StructType([T.StructField(c, SPARK_TYPES[table.column(c).dtype], nullable=True) for c in columns])
    paths = [str(lake.partition_dir(raw_root, table.name, d)) for d in days]
    log.debug("reading %d partition(s) of %s: %s..%s", len(days), table.name, days[0], days[-1])
    # basePath makes Spark derive the dt column from the folder names of the explicit paths
    frame = spark.read.schema(schema).option("basePath", str(Path(raw_root) / table.name)).parquet(*paths)
    return frame.select(*columns, F.col(DT).cast(T.DateType()).alias(DT))


def _typed(name: str, dtype: str, nullable: bool, where: str) -> SparkColumn:
    spark_type = SPARK_TYPES[dtype]
    value = F.col(name).cast(spark_type)
    if nullable:
        return value.alias(name)
    # Spark marks every column read from files nullable; this both rejects a null and declares the column non-null
    error = F.raise_error(F.lit(f"{where}: column {name!r} is declared non-null but has a null value"))
    return F.coalesce(value, error.cast(spark_type), F.lit(_UNREACHABLE[dtype]).cast(spark_type)).alias(name)


def write_feature_partition(frame: DataFrame, table: FeatureTable, features_root: Path, day: dt.date) -> Path:
    """Write ``frame`` as the ``day`` partition of ``table``, replacing that folder only; return the folder.

    Columns are put in the table's order (key, ``event_timestamp``, features) and cast to its types; rows are
    sorted by the key into one file, so a re-run writes the same rows in the same order.
    """
    expected = [table.key, EVENT_TIMESTAMP, *table.column_names]
    if sorted(frame.columns) != sorted(expected):
        raise ValueError(f"{table.name}: built columns {sorted(frame.columns)} != defined {sorted(expected)}")
    where = f"{table.name} {day}"
    columns = [
        _typed(table.key, "string", False, where),
        _typed(EVENT_TIMESTAMP, "timestamp", False, where),
        *(_typed(c.name, c.dtype, c.nullable, where) for c in table.columns),
    ]
    out = feature_partition_dir(features_root, table.name, day)
    # one file per partition; sorting after coalesce(1) keeps the order whatever the upstream partitioning
    frame.select(*columns).coalesce(1).sortWithinPartitions(table.key).write.mode("overwrite").parquet(str(out))
    return out
