"""The state the feature builds carry forward, so that a night reads one day of raw data, not the whole history.

Two kinds of state, both under ``<features root>/_state/<name>/dt=YYYY-MM-DD/`` (one small parquet file per
date; Feast, Great Expectations and Spark's readers skip ``_``-prefixed folders):

* **daily aggregates** (:class:`DailyAggregate`): what one raw date contributes to a windowed feature, computed
  from that date's raw partitions only (e.g. a customer's orders and revenue of the day). A window of n days is
  the sum of n daily partitions, which are small, instead of n days of raw events;
* **running totals** (``customer_history``'s all-time counts): the totals as of a date, so that the next date
  adds its own day to them.

Correctness under re-runs and backfills. A build of dates D1..D2 always recomputes the daily aggregates of
D1..D2 from raw, and reads the other days its windows need from the state where present (computing and
writing the missing ones from raw, so a fresh lake or a lost state folder heals itself). Running totals start
from the latest totals partition before D1 (none: from the lake's first date). Sums are exact (integers and
exact decimals), so the values equal a from-scratch build's bit for bit: rebuilding D, or D and everything
after it, gives what a build over all history gives. A raw partition changed after its state was written is
picked up by rebuilding that date and the dates after it, as for any derived table.

Pure Python and pyarrow here (no Spark at import): the job's pre-flight plans what each build will read
before a Spark session starts.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from feature_repo.contract import lake
from feature_repo.features.partitions import MissingRawPartitionError

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql import types as T

STATE_DIR = "_state"


def state_dir(features_root: Path, name: str) -> Path:
    return Path(features_root) / STATE_DIR / name


def state_days(features_root: Path, name: str) -> set[dt.date]:
    """The dates that have a partition of state ``name`` (a folder with a parquet file)."""
    folder = state_dir(features_root, name)
    if not folder.is_dir():
        return set()
    days = set()
    for child in folder.iterdir():
        if child.name.startswith("dt=") and any(child.glob("*.parquet")):
            days.add(dt.date.fromisoformat(child.name[3:]))
    return days


def date_range(first: dt.date, last: dt.date) -> list[dt.date]:
    return [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]


def consecutive_runs(days: Iterable[dt.date]) -> list[list[dt.date]]:
    """``days`` sorted and cut into runs of consecutive dates."""
    runs: list[list[dt.date]] = []
    for day in sorted(set(days)):
        if runs and day - runs[-1][-1] == dt.timedelta(days=1):
            runs[-1].append(day)
        else:
            runs.append([day])
    return runs


def first_partition(raw_root: Path, raw_table: str) -> dt.date | None:
    return min(lake.list_partitions(raw_root, raw_table), default=None)


def raw_reads(
    raw_root: Path, raw_tables: Iterable[str], days: Iterable[dt.date], *, built: list[dt.date], feature_table: str
) -> dict[str, list[dt.date]]:
    """The raw partitions to read for ``days``, by raw table; a gap raises MissingRawPartitionError.

    A date that is built (in ``built``) needs its own partition of every raw table. An earlier date (a window or
    the history before the first date built) needs one only from the table's first partition on: history starts
    where the lake starts, as in ``partitions.raw_days``.
    """
    days = sorted(set(days))
    built_set = set(built)
    reads: dict[str, list[dt.date]] = {}
    for raw_table in raw_tables:
        available = set(lake.list_partitions(raw_root, raw_table))
        first = min(available, default=None)
        wanted = [d for d in days if d in built_set or (first is not None and d >= first)]
        missing = [d for d in wanted if d not in available]
        if missing:
            reported = min((d for d in built if d >= missing[0]), default=built[-1])
            raise MissingRawPartitionError(feature_table, reported, raw_table, missing, Path(raw_root) / raw_table)
        reads[raw_table] = wanted
    return reads


@dataclass(frozen=True)
class DailyAggregate:
    """A per-date state table: what one raw date contributes to a feature table's windows.

    ``compute(spark, raw_root, reads)`` returns the aggregate rows (``schema``'s columns plus ``dt``) of every
    date in the union of ``reads`` (raw table -> dates to read), reading exactly those partitions.
    """

    name: str
    key: tuple[str, ...]
    raw_tables: tuple[str, ...]
    schema: Callable[[], T.StructType]  # without dt; a callable so that Spark is imported only when building
    compute: Callable[[SparkSession, Path, dict[str, list[dt.date]]], DataFrame]

    def plan(
        self,
        raw_root: Path,
        features_root: Path,
        needed: Iterable[dt.date],
        built: list[dt.date],
        feature_table: str,
    ) -> tuple[list[dt.date], dict[str, list[dt.date]]]:
        """The dates to compute from raw (the dates built, and needed dates without state) and their raw reads."""
        have = state_days(features_root, self.name)
        built_set = set(built)
        from_raw = sorted(d for d in set(needed) if d in built_set or d not in have)
        reads = raw_reads(raw_root, self.raw_tables, from_raw, built=built, feature_table=feature_table)
        return from_raw, reads

    def ensure(
        self,
        spark: SparkSession,
        raw_root: Path,
        features_root: Path,
        needed: list[dt.date],
        built: list[dt.date],
        feature_table: str,
    ) -> DataFrame:
        """The aggregate rows of every date in ``needed`` (plus ``dt``), computing and writing what is missing."""
        from pyspark.sql.pandas.types import to_arrow_schema

        from feature_repo.features.spark_io import read_partitions, write_partitions

        from_raw, reads = self.plan(raw_root, features_root, needed, built, feature_table)
        folder = state_dir(features_root, self.name)
        if from_raw:
            frame = self.compute(spark, raw_root, reads)
            empty = to_arrow_schema(self.schema())
            write_partitions(frame, folder, from_raw, sort_by=list(self.key), empty_schema=empty)
        return read_partitions(spark, folder, sorted(set(needed)), self.schema())
