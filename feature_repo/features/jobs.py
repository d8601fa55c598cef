"""The feature build job: every offline feature table's partitions of a date or a range of dates, in one Spark
session.

Three ways to run the same code:

* ``build_features(day)`` from Python, or ``build_features_for_days(days)`` for several dates in one session
  (the Airflow task: a daily run, a backfill, the initial history load);
* ``storefront build-features --date YYYY-MM-DD`` or ``--start D1 --end D2`` ``[--table NAME ...]``;
* ``spark-submit feature_repo/features/jobs.py --date YYYY-MM-DD [--table NAME ...]`` (or ``--start/--end``) in
  production, where the cluster's master comes from spark-submit (the package must be installed on the driver,
  or shipped with ``--py-files``).

A night costs one day of raw data: each build reads the date's raw partitions plus a bounded state (daily
aggregates of its longest window, running totals of the day before; ``feature_repo/features/state.py``). A range
of consecutive dates is built in one pass per table, reading each raw partition once. Before Spark starts,
every table's inputs are checked (a missing partition fails in a second, not after the session's start-up).
Each build overwrites exactly the ``dt=`` folders of its dates, then their parquet schemas are checked against
the table's definition. Spark is imported only when a build runs.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import click

from feature_repo.features.partitions import MissingRawPartitionError, check_feature_partition
from feature_repo.features.tables import FEATURE_TABLES

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

log = logging.getLogger(__name__)


class FeatureBuild(NamedTuple):
    """One table's build: the raw tables it reads, what a range of dates reads (checked first), and its job."""

    raw_tables: tuple[str, ...]
    plan: Callable[[Path, Path, list[dt.date]], dict[str, list[dt.date]]]  # (raw, features, days) -> reads
    build: Callable[[SparkSession, Path, Path, list[dt.date]], list[Path]]  # consecutive dates, one pass


def _feature_builds() -> dict[str, FeatureBuild]:
    from feature_repo.contract.schema import CATALOG, CUSTOMERS, IMPRESSIONS, ORDERS, PROMOTION_OFFERS, SESSIONS
    from feature_repo.features import (
        customer_history,
        customer_product_interactions,
        product_demand,
        product_ranking,
        session_kpis,
    )

    return {
        "session_kpis": FeatureBuild((SESSIONS.name,), session_kpis.plan, session_kpis.build_session_kpis_range),
        "customer_history": FeatureBuild(
            (CUSTOMERS.name, ORDERS.name, SESSIONS.name, PROMOTION_OFFERS.name),
            customer_history.plan,
            customer_history.build_customer_history_range,
        ),
        "product_ranking": FeatureBuild(
            (CATALOG.name, IMPRESSIONS.name), product_ranking.plan, product_ranking.build_product_ranking_range
        ),
        "customer_product_interactions": FeatureBuild(
            (SESSIONS.name, IMPRESSIONS.name, ORDERS.name),
            customer_product_interactions.plan,
            customer_product_interactions.build_customer_product_interactions_range,
        ),
        "product_demand": FeatureBuild(
            (CATALOG.name, IMPRESSIONS.name, ORDERS.name),
            product_demand.plan,
            product_demand.build_product_demand_range,
        ),
    }


def _checked_names(tables: list[str] | None) -> list[str]:
    builds = _feature_builds()
    names = list(tables) if tables else list(FEATURE_TABLES)
    unknown = [n for n in names if n not in builds]
    if unknown:
        raise ValueError(f"unknown feature table(s) {unknown}; defined: {', '.join(builds)}")
    return names


def raw_tables_read(tables: list[str]) -> list[str]:
    """The raw tables the builds of ``tables`` read (what the raw gate must check before them)."""
    builds = _feature_builds()
    return sorted({raw for name in _checked_names(tables) for raw in builds[name].raw_tables})


def build_features(
    day: dt.date,
    tables: list[str] | None = None,
    *,
    raw_root: Path | None = None,
    features_root: Path | None = None,
) -> dict[str, str]:
    """Build the ``day`` partition of each feature table in ``tables`` (default: all); return table -> folder.

    ``raw_root`` and ``features_root`` default to the settings' lake. Logs each table's rows and seconds.
    Raises MissingRawPartitionError when an input partition is absent (before Spark starts), FeatureSchemaError
    when a written partition does not match its definition.
    """
    written = build_features_for_days([day], tables, raw_root=raw_root, features_root=features_root)
    return {name: folders[0] for name, folders in written.items()}


def table_days(
    days: list[dt.date],
    tables: list[str] | None = None,
    reach_back: Mapping[str, dt.date] | None = None,
) -> dict[str, list[dt.date]]:
    """The dates of each feature table a run builds: ``days`` for every table in ``tables`` (default: all), and
    for a table in ``reach_back`` every date from its own first date up to the last of ``days``.

    The initial history load in one run: the tables of a model with a longer training window than the others
    (promotion's customer history, elasticity's product demand) start further back; the others do not pay for it.
    """
    names = _checked_names(tables)
    if not days:
        raise ValueError("no dates to build")
    reach_back = dict(reach_back or {})
    unknown = sorted(set(reach_back) - set(names))
    if unknown:
        raise ValueError(f"reach-back date(s) for table(s) {unknown} that this run does not build ({', '.join(names)})")
    from feature_repo.features.state import date_range

    last = max(days)
    plan = {}
    for name in names:
        first = reach_back.get(name)
        if first is not None and first > last:
            raise ValueError(f"{name}: reach-back date {first} is after the run's last date {last}")
        plan[name] = sorted(set(days) | set(date_range(first, last) if first is not None else []))
    return plan


def raw_table_days(plan: Mapping[str, list[dt.date]]) -> dict[str, list[dt.date]]:
    """The raw partitions the builds of ``plan`` (feature table -> dates) read: raw table -> dates, sorted.

    What the raw gate checks before the builds run: each raw table over the union of its readers' dates.
    """
    builds = _feature_builds()
    reads: dict[str, set[dt.date]] = {}
    for name, days in plan.items():
        for raw in builds[name].raw_tables:
            reads.setdefault(raw, set()).update(days)
    return {raw: sorted(reads[raw]) for raw in sorted(reads)}


def run_plan(
    days: list[dt.date],
    tables: list[str] | None = None,
    reach_back: Mapping[str, dt.date] | None = None,
) -> tuple[dict[str, list[dt.date]], dict[str, list[dt.date]]]:
    """What one features run does: feature table -> the dates it builds (:func:`table_days`), and raw table -> the
    dates the raw gate checks first.

    The gate checks what the builds read (:func:`raw_table_days`); a run of every table (``tables`` None) gates
    every raw table of the contract, at least over ``days``: the A/B readouts read the ones no build reads.
    """
    from feature_repo.contract.schema import TABLES

    plan = table_days(days, tables, reach_back)
    reads = raw_table_days(plan)
    if not tables:
        reads = {name: reads.get(name, sorted(days)) for name in TABLES}
    return plan, reads


def build_features_for_days(
    days: list[dt.date],
    tables: list[str] | None = None,
    *,
    raw_root: Path | None = None,
    features_root: Path | None = None,
) -> dict[str, list[str]]:
    """``build_features`` for several dates in one Spark session (a backfill, the initial history load).

    Consecutive dates are built in one pass per table: each raw partition is read once for the whole range, and
    windows and running totals come from the state the builds keep (``feature_repo/features/state.py``), not
    from re-reading the history for every date. Returns table -> the folders written, oldest first. Every
    input is checked before Spark starts, so a gap anywhere fails the whole run before anything is written.
    """
    if not days:
        raise ValueError("no dates to build")
    return build_features_for_table_days(table_days(days, tables), raw_root=raw_root, features_root=features_root)


def build_features_for_table_days(
    plan: Mapping[str, list[dt.date]],
    *,
    raw_root: Path | None = None,
    features_root: Path | None = None,
) -> dict[str, list[str]]:
    """:func:`build_features_for_days` with each table's own dates (``table_days``), in one Spark session."""
    from config.settings import get_settings
    from feature_repo.features.spark_session import spark_session
    from feature_repo.features.state import consecutive_runs

    builds = _feature_builds()
    names = _checked_names(list(plan))
    if not any(plan.values()):
        raise ValueError("no dates to build")
    runs = {name: consecutive_runs(plan[name]) for name in names if plan[name]}
    settings = get_settings()
    raw_root = Path(raw_root) if raw_root is not None else settings.raw_root
    features_root = Path(features_root) if features_root is not None else settings.features_root

    for name, table_runs in runs.items():
        for run in table_runs:
            for raw_table, read in builds[name].plan(raw_root, features_root, run).items():
                span = f"{read[0]}..{read[-1]}" if read else "none"
                log.info("%s %s..%s reads %s: %d partition(s) %s", name, run[0], run[-1], raw_table, len(read), span)

    written: dict[str, list[str]] = {name: [] for name in runs}
    first = min(run[0] for table_runs in runs.values() for run in table_runs)
    last = max(run[-1] for table_runs in runs.values() for run in table_runs)
    app_name = f"build-features-{first}" + (f"..{last}" if last != first else "")
    with spark_session(app_name) as spark:
        for name, table_runs in runs.items():
            for run in table_runs:
                began = time.perf_counter()
                folders = builds[name].build(spark, raw_root, features_root, run)
                rows = sum(check_feature_partition(features_root, name, day) for day in run)
                seconds = time.perf_counter() - began
                log.info("built %s for %s..%s (%d date(s)): %d rows in %.1f s", name, run[0], run[-1], len(run),
                         rows, seconds)
                written[name].extend(str(f) for f in folders)
    return written


def _date_range_options(day: dt.date | None, start: dt.date | None, end: dt.date | None) -> list[dt.date]:
    from feature_repo.features.state import date_range

    if day is not None and (start is not None or end is not None):
        raise click.UsageError("give either --date or --start/--end, not both")
    if day is not None:
        return [day]
    if start is None or end is None:
        raise click.UsageError("give --date, or both --start and --end")
    if end < start:
        raise click.BadParameter(f"--end {end} is before --start {start}", param_hint="--end")
    return date_range(start, end)


_DATE = click.DateTime(formats=["%Y-%m-%d"])


@click.command("build-features")
@click.option("--date", "day", type=_DATE, help="Run date (UTC) whose partitions are built.")
@click.option("--start", type=_DATE, help="First date of a range built in one pass (a backfill, a history load).")
@click.option("--end", type=_DATE, help="Last date of the range, inclusive.")
@click.option(
    "--table",
    "tables",
    multiple=True,
    type=click.Choice(sorted(FEATURE_TABLES)),
    help="Feature table to build (repeatable) [default: all].",
)
def build_features_command(
    day: dt.datetime | None, start: dt.datetime | None, end: dt.datetime | None, tables: tuple[str, ...]
) -> None:
    """Build the offline feature tables' partitions of a date, or of a range of dates in one pass, with Spark.

    Overwrites those partitions only (and their state under the features root's _state folder).
    """
    days = _date_range_options(*(v.date() if v else None for v in (day, start, end)))
    try:
        written = build_features_for_days(days, list(tables) or None)
    except MissingRawPartitionError as err:
        raise click.ClickException(str(err)) from err
    for name, folders in written.items():
        for folder in folders:
            click.echo(f"{name}\t{folder}")


def main(argv: list[str] | None = None) -> None:
    """Entry point for ``spark-submit feature_repo/features/jobs.py (--date D | --start D1 --end D2) [--table N]``."""
    parser = argparse.ArgumentParser(description="Build the offline feature tables' partitions of dates.")
    parser.add_argument("--date", type=dt.date.fromisoformat, help="run date, YYYY-MM-DD")
    parser.add_argument("--start", type=dt.date.fromisoformat, help="first date of a range, YYYY-MM-DD")
    parser.add_argument("--end", type=dt.date.fromisoformat, help="last date of the range, YYYY-MM-DD")
    parser.add_argument(
        "--table", action="append", choices=sorted(FEATURE_TABLES), help="feature table (repeatable) [default: all]"
    )
    args = parser.parse_args(argv)
    try:
        days = _date_range_options(args.date, args.start, args.end)
    except click.ClickException as err:
        parser.error(err.format_message())
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    build_features_for_days(days, args.table)


if __name__ == "__main__":
    main()
