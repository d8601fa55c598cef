"""The partitions of a feature build: which raw partitions it needs, and the feature partition it writes.

Feature partitions live at ``<features root>/<table>/dt=YYYY-MM-DD/part-*.parquet`` with the Arrow schema of
their FeatureTable; Spark's ``_SUCCESS`` and ``.crc`` files sit beside the parquet files and are skipped.
Pyarrow only (no Spark), so Great Expectations, Feast, training, the tests and the job's pre-flight check
(before a Spark session is started) can use it.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from feature_repo.contract import lake
from feature_repo.features.tables import EVENT_TIMESTAMP, FEATURE_TABLES, FeatureTable

TIMESTAMP_TYPE = pa.timestamp("us", tz="UTC")


class FeatureSchemaError(ValueError):
    """A written feature partition does not have its table's schema."""


class MissingRawPartitionError(FileNotFoundError):
    """A raw partition a feature build needs is not in the lake."""

    def __init__(self, feature_table: str, day: dt.date, raw_table: str, missing: list[dt.date], folder: Path):
        self.feature_table, self.day, self.raw_table, self.missing = feature_table, day, raw_table, missing
        shown = ", ".join(f"dt={d}" for d in missing[:5])
        if len(missing) > 5:
            shown += f" and {len(missing) - 5} more"
        super().__init__(
            f"cannot build {feature_table} for {day}: raw table {raw_table!r} has no partition {shown} in {folder}"
        )


def raw_days(
    raw_root: Path, raw_table: str, day: dt.date, *, feature_table: str, window_days: int | None
) -> list[dt.date]:
    """The partition dates of ``raw_table`` a build of ``day`` reads, oldest first.

    ``window_days`` = n: ``day - (n - 1)`` .. ``day`` (n days including ``day``); None: every date up to ``day``.
    The range starts no earlier than the table's first partition (history begins with the lake); inside it
    every date must have a partition, ``day``'s own included, else MissingRawPartitionError.
    """
    available = {d for d in lake.list_partitions(raw_root, raw_table) if d <= day}
    start = min(available, default=day)
    if window_days is not None:
        start = max(start, day - dt.timedelta(days=window_days - 1))
    wanted = [start + dt.timedelta(days=i) for i in range((day - start).days + 1)]
    missing = [d for d in wanted if d not in available]
    if missing:
        raise MissingRawPartitionError(feature_table, day, raw_table, missing, Path(raw_root) / raw_table)
    return wanted


def get_feature_table(name: str) -> FeatureTable:
    try:
        return FEATURE_TABLES[name]
    except KeyError:
        raise KeyError(f"unknown feature table {name!r}; defined: {', '.join(FEATURE_TABLES)}") from None


def feature_partition_dir(features_root: Path, table: str, day: dt.date) -> Path:
    return Path(features_root) / table / f"dt={day.isoformat()}"


def feature_arrow_schema(table: FeatureTable) -> pa.Schema:
    """Key (string), ``event_timestamp`` (UTC, microseconds), then the feature columns in definition order.

    Key and timestamp are never null; a feature column is nullable exactly where its definition says so.
    """
    return pa.schema(
        [
            pa.field(table.key, pa.string(), nullable=False),
            pa.field(EVENT_TIMESTAMP, TIMESTAMP_TYPE, nullable=False),
            *(c.field() for c in table.columns),
        ]
    )


def partition_files(features_root: Path, table: str, day: dt.date) -> list[Path]:
    """The parquet files of one partition, sorted; raises FileNotFoundError when there are none."""
    folder = feature_partition_dir(features_root, table, day)
    files = sorted(folder.glob("*.parquet")) if folder.is_dir() else []
    if not files:
        raise FileNotFoundError(f"feature table {table!r} has no partition for {day} (no parquet files in {folder})")
    return files


def read_feature_partition(features_root: Path, table: str, day: dt.date) -> pa.Table:
    """Read one date partition of a feature table, rows in the order written (sorted by key)."""
    files = partition_files(features_root, table, day)
    return pa.concat_tables([pq.read_table(f) for f in files]).replace_schema_metadata(None)


def schema_differences(actual: pa.Schema, expected: pa.Schema) -> list[str]:
    """What differs between two schemas, one line per column (names, order, types, nullability)."""
    problems = []
    if actual.names != expected.names:
        problems.append(f"columns {actual.names} != expected {expected.names}")
    for field in expected:
        index = actual.get_field_index(field.name)
        if index < 0:
            continue
        got = actual.field(index)
        if not got.type.equals(field.type):
            problems.append(f"{field.name}: type {got.type} != expected {field.type}")
        if got.nullable != field.nullable:
            problems.append(f"{field.name}: nullable={got.nullable} != expected nullable={field.nullable}")
    return problems


def check_feature_partition(features_root: Path, table: str, day: dt.date) -> int:
    """Check every file's parquet schema (footer only) against the table's definition; return the row count.

    Raises FeatureSchemaError naming each difference.
    """
    expected = feature_arrow_schema(get_feature_table(table))
    rows = 0
    for path in partition_files(features_root, table, day):
        with pq.ParquetFile(path) as parquet:
            problems = schema_differences(parquet.schema_arrow, expected)
            rows += parquet.metadata.num_rows
        if problems:
            raise FeatureSchemaError(f"{table} partition {day} ({path.name}): " + "; ".join(problems))
    return rows
