"""The feature build job: every offline feature table's partition of one date, in one Spark session.

Three ways to run the same code:

* ``build_features(day)`` from Python, or ``build_features_for_days(days)`` for several dates in one session
  (the Airflow task: a daily run, a backfill, the initial history load);
* ``storefront build-features --date YYYY-MM-DD [--table NAME ...]`` (``build_features_command``);
* ``spark-submit feature_repo/features/jobs.py --date YYYY-MM-DD [--table NAME ...]`` in production, where the
  cluster's master comes from spark-submit (the package must be installed on the driver, or shipped with
  ``--py-files``).

Before Spark starts, every table's raw inputs are checked (a missing partition fails in a second, not after
the session's start-up). Each table's build overwrites exactly its ``dt=`` folder under the features root, then
its parquet schema is checked against the table's definition. Spark is imported only when a build runs.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import click

from feature_repo.features.partitions import MissingRawPartitionError, check_feature_partition
from feature_repo.features.tables import FEATURE_TABLES

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

log = logging.getLogger(__name__)


class FeatureBuild(NamedTuple):
    """One table's build: the raw partitions it reads (checked first) and the Spark job that writes it."""

    input_days: Callable[[Path, dt.date], dict[str, list[dt.date]]]
    build: Callable[[SparkSession, Path, Path, dt.date], Path]


def _feature_builds() -> dict[str, FeatureBuild]:
    from feature_repo.features import (
        customer_history,
        customer_product_interactions,
        product_demand,
        product_ranking,
        session_kpis,
    )

    return {
        "session_kpis": FeatureBuild(session_kpis.input_days, session_kpis.build_session_kpis),
        "customer_history": FeatureBuild(customer_history.input_days, customer_history.build_customer_history),
        "product_ranking": FeatureBuild(product_ranking.input_days, product_ranking.build_product_ranking),
        "customer_product_interactions": FeatureBuild(
            customer_product_interactions.input_days,
            customer_product_interactions.build_customer_product_interactions,
        ),
        "product_demand": FeatureBuild(product_demand.input_days, product_demand.build_product_demand),
    }


def raw_tables_read(tables: list[str], day: dt.date, *, raw_root: Path | None = None) -> list[str]:
    """The raw tables the builds of ``tables`` read for ``day`` (what the raw gate must check before them).

    Raises MissingRawPartitionError when one of their input partitions is absent.
    """
    from config.settings import get_settings

    builds = _feature_builds()
    unknown = [n for n in tables if n not in builds]
    if unknown:
        raise ValueError(f"unknown feature table(s) {unknown}; defined: {', '.join(builds)}")
    root = Path(raw_root) if raw_root is not None else get_settings().raw_root
    return sorted({raw for name in tables for raw in builds[name].input_days(root, day)})


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


def build_features_for_days(
    days: list[dt.date],
    tables: list[str] | None = None,
    *,
    raw_root: Path | None = None,
    features_root: Path | None = None,
) -> dict[str, list[str]]:
    """``build_features`` for several dates in one Spark session (a backfill, the initial history load).

    Dates are built oldest first; returns table -> the folders written, in that order. Every date's inputs are
    checked before Spark starts, so a gap anywhere fails the whole run before anything is written.
    """
    from config.settings import get_settings
    from feature_repo.features.spark_session import spark_session

    builds = _feature_builds()
    names = list(tables) if tables else list(FEATURE_TABLES)
    unknown = [n for n in names if n not in builds]
    if unknown:
        raise ValueError(f"unknown feature table(s) {unknown}; defined: {', '.join(builds)}")
    if not days:
        raise ValueError("no dates to build")
    days = sorted(set(days))
    settings = get_settings()
    raw_root = Path(raw_root) if raw_root is not None else settings.raw_root
    features_root = Path(features_root) if features_root is not None else settings.features_root

    for day in days:
        for name in names:
            for raw_table, read in builds[name].input_days(raw_root, day).items():
                log.info("%s %s reads %s: %d partition(s) %s..%s", name, day, raw_table, len(read), read[0], read[-1])

    written: dict[str, list[str]] = {name: [] for name in names}
    app_name = f"build-features-{days[0]}" + (f"..{days[-1]}" if len(days) > 1 else "")
    with spark_session(app_name) as spark:
        for day in days:
            for name in names:
                began = time.perf_counter()
                folder = builds[name].build(spark, raw_root, features_root, day)
                rows = check_feature_partition(features_root, name, day)
                seconds = time.perf_counter() - began
                log.info("built %s for %s: %d rows in %.1f s -> %s", name, day, rows, seconds, folder)
                written[name].append(str(folder))
    return written


@click.command("build-features")
@click.option(
    "--date",
    "day",
    required=True,
    type=click.DateTime(formats=["%Y-%m-%d"]),
    help="Run date (UTC) whose partitions are built.",
)
@click.option(
    "--table",
    "tables",
    multiple=True,
    type=click.Choice(sorted(FEATURE_TABLES)),
    help="Feature table to build (repeatable) [default: all].",
)
def build_features_command(day: dt.datetime, tables: tuple[str, ...]) -> None:
    """Build the offline feature tables' partitions of one date with Spark (overwrites those partitions only)."""
    try:
        written = build_features(day.date(), list(tables) or None)
    except MissingRawPartitionError as err:
        raise click.ClickException(str(err)) from err
    for name, folder in written.items():
        click.echo(f"{name}\t{folder}")


def main(argv: list[str] | None = None) -> None:
    """Entry point for ``spark-submit feature_repo/features/jobs.py --date YYYY-MM-DD [--table NAME ...]``."""
    parser = argparse.ArgumentParser(description="Build the offline feature tables' partitions of one date.")
    parser.add_argument("--date", required=True, type=dt.date.fromisoformat, help="run date, YYYY-MM-DD")
    parser.add_argument(
        "--table", action="append", choices=sorted(FEATURE_TABLES), help="feature table (repeatable) [default: all]"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    build_features(args.date, args.table)


if __name__ == "__main__":
    main()
