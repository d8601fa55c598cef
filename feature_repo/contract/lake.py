"""The raw lake's layout: ``<raw root>/<table>/dt=YYYY-MM-DD/part-00000.parquet``.

One writer for everyone who lands raw data (the simulator, the export loader), so the files are the same
whoever wrote them: Arrow schema of the contract, microsecond UTC timestamps, zstd, fixed row groups and no
pandas metadata, which makes the bytes a pure function of the rows.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from feature_repo.contract.schema import Table

PART_FILE = "part-00000.parquet"
ROW_GROUP_SIZE = 1 << 20
TRUTH_DIR = "_truth"


def partition_dir(raw_root: Path, table: str, day: dt.date) -> Path:
    return Path(raw_root) / table / f"dt={day.isoformat()}"


def partition_dates(table: Table, data: pa.Table) -> pa.Array:
    """The UTC date of each row's partition column."""
    values = data[table.partition_by]
    if pa.types.is_timestamp(values.type):
        values = pc.cast(pc.floor_temporal(values, unit="day"), pa.timestamp("us")).cast(pa.date32())
    return values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values


def split_by_date(table: Table, data: pa.Table) -> Iterator[tuple[dt.date, pa.Table]]:
    """Yield (date, rows of that date) in date order; rows keep their order within a date."""
    dates = partition_dates(table, data)
    for day in sorted(pc.unique(dates).to_pylist()):
        yield day, data.filter(pc.equal(dates, pa.scalar(day, pa.date32())))


def write_parquet(table: Table, data: pa.Table, path: Path) -> None:
    """Write rows of ``table`` to ``path`` deterministically (same rows, same bytes)."""
    data = data.select(table.column_names).cast(table.arrow_schema()).replace_schema_metadata(None)
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(
        data,
        path,
        compression="zstd",
        row_group_size=ROW_GROUP_SIZE,
        coerce_timestamps="us",
        allow_truncated_timestamps=False,
        store_schema=False,
        write_statistics=True,
    )


def list_partitions(raw_root: Path, table: str) -> list[dt.date]:
    folder = Path(raw_root) / table
    if not folder.is_dir():
        return []
    days = [dt.date.fromisoformat(p.name[3:]) for p in folder.iterdir() if p.is_dir() and p.name.startswith("dt=")]
    return sorted(days)


def read_partition(raw_root: Path, table: Table, day: dt.date, columns: list[str] | None = None) -> pa.Table:
    path = partition_dir(raw_root, table.name, day) / PART_FILE
    return pq.read_table(path, schema=table.arrow_schema(), columns=columns)


def read_table(
    raw_root: Path, table: Table, days: list[dt.date] | None = None, columns: list[str] | None = None
) -> pa.Table:
    """Read a raw table (all partitions, or ``days``; all columns, or ``columns``) in the contract's schema,
    partitions in date order."""
    days = list_partitions(raw_root, table.name) if days is None else days
    parts = [read_partition(raw_root, table, d, columns) for d in days]
    if not parts:
        schema = table.arrow_schema()
        return (schema if columns is None else pa.schema([schema.field(c) for c in columns])).empty_table()
    return pa.concat_tables(parts)


@contextmanager
def staged_partitions(raw_root: Path) -> Iterator[Path]:
    """A staging folder inside ``raw_root``; on success its partitions replace the lake's, else it is removed.

    Partition folders are swapped in with ``os.replace`` of whole folders on the same file system, so a reader
    sees either the old or the new partition, and a failure before the commit leaves the lake untouched.
    """
    raw_root = Path(raw_root)
    raw_root.mkdir(parents=True, exist_ok=True)
    stage = raw_root / f".staging-{uuid.uuid4().hex}"
    stage.mkdir()
    try:
        yield stage
        for table_dir in sorted(p for p in stage.iterdir() if p.is_dir()):
            for part in sorted(p for p in table_dir.iterdir() if p.is_dir()):
                target = raw_root / table_dir.name / part.name
                target.parent.mkdir(parents=True, exist_ok=True)
                if target.exists():
                    old = target.with_name(f".replaced-{part.name}-{uuid.uuid4().hex}")
                    os.replace(target, old)
                    os.replace(part, target)
                    shutil.rmtree(old)
                else:
                    os.replace(part, target)
        for extra in sorted(p for p in stage.iterdir() if p.is_file()):
            os.replace(extra, raw_root / extra.name)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
