"""What a night's feature builds and a history load cost, against the length of the shop's history.

For each history length H (days of simulated shop before and including the night), on one simulated shop:

* ``fresh``: the first build on a fresh features root (the day before the night): every window and the
  all-time totals computed from raw once, and kept as state;
* ``night``: the night itself, per feature table: the date's raw partitions plus the carried state.

Then, on the longest shop, history loads of N consecutive dates (one pass per table, fresh features root),
and a start-up-included comparison of ``storefront build-features`` for one night against a 28-date range.
Baseline, in the same run: a plain pyarrow scan of the same raw partitions (the I/O floor), printed as rows per
second beside Spark's. Targets (issue 15): the night at 365 days within 1.2x of the night at 60 days; a
365-date load no more than 15x a 28-date load; a 28-date range no more than 3x one night, start-up included.

    python benchmarks/feature_builds.py                                   # demo: 60, 120, 365 days; loads 28, 90, 365
    python benchmarks/feature_builds.py --scale tiny --histories 60 --loads 28   # a quick look
    python benchmarks/feature_builds.py --dags --histories 60 365 --loads        # the night through Airflow

``--dags`` also runs, for each history length, the main job with one night (its history load, then the night's
features and training DAGs through ``airflow dags test``) on its own var root, and prints the night's seconds per
Airflow task from the task records: the cost of a night as the scheduler pays it.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

NIGHT = dt.date(2026, 4, 30)


def _days(first: dt.date, last: dt.date) -> list[dt.date]:
    return [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]


def _simulate(out: Path, days: int, scale: str, seed: int) -> None:
    from simulator.shop import simulate

    simulate(NIGHT - dt.timedelta(days=days - 1), NIGHT, out, seed=seed, scale=scale, overwrite=True)


def _raw_rows(raw: Path, reads: dict[str, list[dt.date]]) -> tuple[int, float]:
    """Rows in the raw partitions of ``reads``, and the seconds a plain pyarrow scan of them takes."""
    import pyarrow.parquet as pq

    from feature_repo.contract import lake

    began, rows = time.perf_counter(), 0
    for table, days in reads.items():
        for day in days:
            rows += pq.read_table(lake.partition_dir(raw, table, day) / lake.PART_FILE).num_rows
    return rows, time.perf_counter() - began


def _union(reads_by_table: list[dict[str, list[dt.date]]]) -> dict[str, list[dt.date]]:
    out: dict[str, set[dt.date]] = {}
    for reads in reads_by_table:
        for table, days in reads.items():
            out.setdefault(table, set()).update(days)
    return {t: sorted(d) for t, d in out.items()}


def _build_all(spark, raw: Path, features: Path, days: list[dt.date]) -> dict[str, float]:
    """Seconds per feature table for a build of ``days``; ``raw scan`` = the pyarrow floor of what they read."""
    from feature_repo.features.jobs import _feature_builds

    builds = _feature_builds()
    seconds: dict[str, float] = {}
    reads = []
    for name, build in builds.items():
        reads.append(build.plan(raw, features, days))
        began = time.perf_counter()
        build.build(spark, raw, features, days)
        seconds[name] = time.perf_counter() - began
    rows, floor = _raw_rows(raw, _union(reads))
    seconds["_rows"], seconds["_floor"] = rows, floor
    return seconds


def _print_table(title: str, columns: list[str], rows: dict[str, dict[str, float]]) -> None:
    print(f"\n{title}")
    tables = [c for c in columns if not c.startswith("_")]
    print(f"{'':<22}" + "".join(f"{t[:14]:>15}" for t in tables) + f"{'total s':>10}{'raw rows':>11}"
          f"{'Spark rows/s':>14}{'pyarrow rows/s':>16}")
    for label, row in rows.items():
        total = sum(row[t] for t in tables)
        print(f"{label:<22}" + "".join(f"{row[t]:>15.1f}" for t in tables) + f"{total:>10.1f}{int(row['_rows']):>11,}"
              f"{row['_rows'] / total:>14,.0f}{row['_rows'] / max(row['_floor'], 1e-9):>16,.0f}")


def _cli_seconds(args: list[str], env: dict[str, str]) -> float:
    began = time.perf_counter()
    subprocess.run([str(Path(sys.executable).with_name("storefront")), "build-features", *args], env=env, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", default="demo", choices=["tiny", "demo", "large"])
    parser.add_argument("--histories", type=int, nargs="+", default=[60, 120, 365], help="days of history")
    parser.add_argument("--loads", type=int, nargs="*", default=[28, 90, 365], help="dates per load; none: skip")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--work", type=Path, default=None, help="scratch folder [default: a temporary one]")
    parser.add_argument("--dags", action="store_true", help="also run each history's night through Airflow")
    args = parser.parse_args()
    args.loads = args.loads or []

    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    work = args.work or Path(tempfile.mkdtemp(prefix="storefront-feature-bench-"))
    longest = max([*args.histories, *args.loads, 29])
    raw = work / f"raw-{args.scale}-{longest}"
    began = time.perf_counter()
    _simulate(raw, longest, args.scale, args.seed)
    print(f"simulated {longest} days of the {args.scale} shop in {time.perf_counter() - began:.0f} s -> {raw}")

    from feature_repo.features.spark_session import spark_session
    from feature_repo.features.tables import FEATURE_TABLES

    began = time.perf_counter()
    columns = [*FEATURE_TABLES]
    with spark_session("feature-bench") as spark:
        print(f"Spark session start: {time.perf_counter() - began:.1f} s (once, not in the figures below)")
        nights: dict[str, dict[str, float]] = {}
        for history in sorted(args.histories):
            # the shop's first `history` days end on the night: the lake is cut by building from its own copy
            lake = work / f"raw-{history}"
            if not lake.exists():
                _link_days(raw, lake, _days(NIGHT - dt.timedelta(days=history - 1), NIGHT))
            features = work / f"features-{history}"
            nights[f"{history} d: fresh"] = _build_all(spark, lake, features, [NIGHT - dt.timedelta(days=1)])
            nights[f"{history} d: night"] = _build_all(spark, lake, features, [NIGHT])
        _print_table("One date's build, by days of history (seconds per table)", columns, nights)
        per_night = {h: sum(v for k, v in nights[f"{h} d: night"].items() if not k.startswith("_"))
                     for h in args.histories}
        low, high = min(args.histories), max(args.histories)
        print(f"night at {high} d / night at {low} d: {per_night[high] / per_night[low]:.2f}x (target <= 1.2x)")

        loads: dict[str, dict[str, float]] = {}
        for n in sorted(args.loads):
            loads[f"load of {n} dates"] = _build_all(
                spark, raw, work / f"load-{n}", _days(NIGHT - dt.timedelta(days=n - 1), NIGHT)
            )
        if loads:
            _print_table("History loads: N consecutive dates in one pass, fresh features root", columns, loads)
            totals = {n: sum(v for k, v in loads[f"load of {n} dates"].items() if not k.startswith("_"))
                      for n in args.loads}
            small, big = min(args.loads), max(args.loads)
            print(f"load of {big} / load of {small}: {totals[big] / totals[small]:.1f}x for "
                  f"{big / small:.1f}x the dates (target <= 15x)")

    # start-up included: the command a user runs, a 28-date range (fresh) against the next night alone
    env = dict(os.environ, STOREFRONT_LAKE_ROOT=str(work / "cli-lake"))
    (work / "cli-lake").mkdir(exist_ok=True)
    if not (work / "cli-lake" / "raw").exists():
        (work / "cli-lake" / "raw").symlink_to(raw, target_is_directory=True)
    first = NIGHT - dt.timedelta(days=28)
    range_s = _cli_seconds(["--start", first.isoformat(), "--end", (NIGHT - dt.timedelta(days=1)).isoformat()], env)
    night_s = _cli_seconds(["--date", NIGHT.isoformat()], env)
    print(f"\nstorefront build-features, start-up included: 28 dates {range_s:.1f} s, one night {night_s:.1f} s: "
          f"{range_s / night_s:.1f}x (target <= 3x)")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS of the driver process {peak:,.0f} MB (the JVM is a child: see {work})")
    if args.dags:
        _nights_through_airflow(work, sorted(args.histories))


def _nights_through_airflow(work: Path, histories: list[int]) -> None:
    """The main job with one night on each history length; the night's Airflow task seconds from its records."""
    import sqlite3

    nights: dict[int, dict[str, float]] = {}
    for history in histories:
        var = work / f"var-{history}"
        (var / "lake").mkdir(parents=True, exist_ok=True)
        if not (var / "lake" / "raw").exists():
            (var / "lake" / "raw").symlink_to(work / f"raw-{history}", target_is_directory=True)
        env = dict(os.environ, STOREFRONT_VAR_ROOT=str(var))
        env.pop("STOREFRONT_LAKE_ROOT", None)
        first = NIGHT - dt.timedelta(days=history - 1)
        began = time.perf_counter()
        subprocess.run([str(Path(sys.executable).with_name("storefront")), "main-job", "--reuse-lake", "--nights", "1",
                        "--start", first.isoformat(), "--end", NIGHT.isoformat()], env=env, check=True,
                       stdout=(work / f"main-job-{history}.log").open("w"), stderr=subprocess.STDOUT)
        wall = time.perf_counter() - began
        with sqlite3.connect(var / "airflow" / "airflow.db") as db:
            rows = db.execute(
                "select ti.dag_id, ti.task_id, ti.duration from task_instance ti join dag_run dr "
                "on ti.dag_id = dr.dag_id and ti.run_id = dr.run_id "
                "where date(dr.logical_date) = ? and ti.dag_id in ('storefront_features', 'storefront_training') "
                "and ti.duration is not null", (NIGHT.isoformat(),)
            ).fetchall()
        nights[history] = {f"{d.removeprefix('storefront_')}.{t}": float(s) for d, t, s in rows}
        nights[history]["_wall"] = wall
        print(f"main job, {history} days of history, one night: {wall:.0f} s wall (log: {work}/main-job-{history}.log)")
    tasks = sorted({t for n in nights.values() for t in n if not t.startswith("_")})
    print("\nThe night of " + NIGHT.isoformat() + " through Airflow, seconds per task, by days of history")
    print(f"{'task':<52}" + "".join(f"{h:>8} d" for h in histories))
    for task in tasks:
        print(f"{task:<52}" + "".join(f"{nights[h].get(task, float('nan')):>10.1f}" for h in histories))
    for dag in ("features", "training"):
        sums = [sum(v for k, v in nights[h].items() if k.startswith(dag + ".")) for h in histories]
        print(f"{dag + ' DAG, tasks summed':<52}" + "".join(f"{v:>10.1f}" for v in sums))
    features = [sum(v for k, v in nights[h].items() if k.startswith("features.")) for h in histories]
    ratio = features[-1] / features[0]
    print(f"features night at {histories[-1]} d / at {histories[0]} d: {ratio:.2f}x (target <= 1.2x)")


def _link_days(source: Path, dest: Path, days: list[dt.date]) -> None:
    """A lake holding only ``days`` of ``source``: symlinks to its partition folders (nothing copied)."""
    from feature_repo.contract import lake

    keep = set(days)
    (dest / "_truth").mkdir(parents=True, exist_ok=True)
    for truth in (source / "_truth").glob("*"):  # what the main job's --reuse-lake looks for
        (dest / "_truth" / truth.name).symlink_to(truth)
    for table_dir in sorted(p for p in source.iterdir() if p.is_dir() and not p.name.startswith("_")):
        for day in lake.list_partitions(source, table_dir.name):
            if day in keep:
                target = lake.partition_dir(dest, table_dir.name, day)
                target.parent.mkdir(parents=True, exist_ok=True)
                target.symlink_to(lake.partition_dir(source, table_dir.name, day), target_is_directory=True)


if __name__ == "__main__":
    main()
