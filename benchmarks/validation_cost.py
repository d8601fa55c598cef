"""Cost of the raw data quality gate (Great Expectations) for one date and for a history load of 28 dates.

Each measurement runs ``validate_days("raw", dates)`` in its own process (a fresh Great Expectations import, as
in an Airflow task) on a private copy of the partitions (so nothing the gate quarantines can touch the source)
and a fresh reports folder. Printed per run: wall seconds of ``validate_days``, seconds per date, and the share
of each phase (exclusive time, nested phases not counted twice):

  read parquet        pyarrow reads of the partitions
  frame conversion    Arrow -> the pandas frame the suites expect
  GE context          the ephemeral context and its data source
  suites              building the suites and saving them in the expectations store
  GE validation       Great Expectations validating the partitions (metrics, per-expectation work) and keeping
                      the results in its validation results store
  data docs           rendering the data docs site
  result conversion   GE results -> the gate's plain dataclasses (and, history loads, merging a union's results)
  other               the rest (quarantine, logging, bookkeeping)

Four runs: one nightly date on a fresh store, the history load of the dates before it, then that nightly date
again on the store the history load left (its data docs index then lists up to ``data_docs_history`` results);
last, the same history load split over ``--workers`` spawned processes (the gate's ``workers`` setting, 2 by
default), against the one-process load of the same run as its baseline.
``cpu s`` is the process's CPU time (on a shared machine it moves less than the wall time) and ``peak MB`` its
peak RSS. The Great Expectations import (seconds, once per process) is printed apart: any validating task pays it.

    python benchmarks/validation_cost.py                                   # the demo lake under var/lake/raw
    python benchmarks/validation_cost.py --source /path/to/demo/lake/raw   # another raw root (read-only is fine)
    python benchmarks/validation_cost.py --simulate                        # simulate the demo shop's dates first
    python benchmarks/validation_cost.py --days 119                        # a 120-day history load
    git show <rev>:feature_repo/expectations/validate.py > /tmp/gate.py
    python benchmarks/validation_cost.py --gate /tmp/gate.py               # measure another version of the gate

Target (issue 15, item 5): a history load costs much less per date than one nightly (1-date) run.
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_END = dt.date(2026, 4, 30)
PHASES = (
    "read parquet",
    "frame conversion",
    "GE context",
    "suites",
    "GE validation",
    "data docs",
    "result conversion",
    "other",
)


# --- child: one measured run ---------------------------------------------------------------------------------------


class _Timer:
    """Exclusive time per phase: a phase called inside another is subtracted from the outer one."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self._stack: list[list[float]] = []  # [started, time spent in nested phases]

    def wrap(self, phase: str, fn):
        @functools.wraps(fn)
        def timed(*args, **kwargs):
            frame = [time.perf_counter(), 0.0]
            self._stack.append(frame)
            try:
                return fn(*args, **kwargs)
            finally:
                self._stack.pop()
                spent = time.perf_counter() - frame[0]
                self.seconds[phase] += spent - frame[1]
                if self._stack:
                    self._stack[-1][1] += spent

        return timed


def _instrument(timer: _Timer) -> None:
    """Wrap the gate's functions by name (those the module has: the script measures older versions too)."""
    from feature_repo.expectations import validate as v

    targets = {
        "read parquet": [(v, "_read_partition")],
        "frame conversion": [(v, "to_validation_frame")],
        "GE context": [(v, "_context")],
        "suites": [(v, "build_suite"), (v._Gate, "_store_suite")],
        "GE validation": [(v._Gate, "_run_suite"), (v._Gate, "_store_result")],
        "data docs": [(v._Gate, "with_data_docs")],
        "result conversion": [(v, "_failure"), (v, "_in_suite_order"), (v, "_settled_result")],
    }
    for phase, places in targets.items():
        for owner, name in places:
            if hasattr(owner, name):
                setattr(owner, name, timer.wrap(phase, getattr(owner, name)))


def _load_gate(path: Path) -> None:
    """Import ``path`` as feature_repo.expectations.validate (another version of the gate)."""
    import importlib.util

    import feature_repo.expectations as package

    name = "feature_repo.expectations.validate"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    package.validate = module


def run_child(raw_root: Path, work: Path, days: list[dt.date], gate: Path | None, workers: int = 1) -> dict:
    lake = work / "lake"
    for table in sorted(p.name for p in raw_root.iterdir() if p.is_dir() and not p.name.startswith("_")):
        for day in days:
            src = raw_root / table / f"dt={day.isoformat()}"
            if src.is_dir() and not (lake / "raw" / table / src.name).exists():
                shutil.copytree(src, lake / "raw" / table / src.name)
    os.environ.update(
        STOREFRONT_VAR_ROOT=str(work / "var"),
        STOREFRONT_LAKE_ROOT=str(lake),
        STOREFRONT_REPORTS_ROOT=str(work / "reports"),
        GX_ANALYTICS_ENABLED="false",
    )
    sys.path.insert(0, str(REPO))
    began = time.perf_counter()
    from feature_repo.expectations.suites import great_expectations_module

    great_expectations_module()
    import_s = time.perf_counter() - began

    if gate is not None:
        _load_gate(gate)
    from feature_repo.expectations.config import get_validation_config
    from feature_repo.expectations.validate import ValidationFailed, validate_days

    # workers=1: one process (the baseline); more: the run split over that many spawned processes, whatever its size
    config = get_validation_config().model_copy(update={"workers": workers, "parallel_min_mb": 0})
    timer = _Timer()
    _instrument(timer)
    began, cpu = time.perf_counter(), time.process_time()
    try:
        outcomes = validate_days("raw", days, config=config)
    except ValidationFailed as err:
        outcomes = err.outcomes
    total, cpu = time.perf_counter() - began, time.process_time() - cpu
    phases = dict(timer.seconds)
    phases["other"] = max(0.0, total - sum(phases.values()))
    return {
        "dates": len(days),
        "seconds": total,
        "cpu_s": cpu,
        "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "import_s": import_s,
        "phases": phases,
        "partitions": len(outcomes),
        "failed": [f"{o.table} dt={o.day.isoformat()}" for o in outcomes if not o.success],
        "expectations": sum(o.evaluated for o in outcomes),
    }


# --- parent --------------------------------------------------------------------------------------------------------


def _measure(raw_root: Path, days: list[dt.date], work: Path, gate: str | None, workers: int = 1) -> dict:
    command = [sys.executable, __file__, "--child", str(raw_root), "--work", str(work), "--workers", str(workers)]
    child = subprocess.run(
        [*command, *(["--gate", gate] if gate else []), *(d.isoformat() for d in days)],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    if child.returncode:
        raise SystemExit(f"measured run failed:\n{child.stderr[-4000:]}")
    return json.loads(child.stdout.strip().splitlines()[-1])


def _source(args: argparse.Namespace, days: list[dt.date], scratch: Path) -> Path:
    if args.simulate:
        from simulator.shop import simulate

        out = scratch / "raw"
        print(f"simulating the demo shop {days[0]}..{days[-1]} ...", flush=True)
        simulate(days[0], days[-1], out, scale="demo", overwrite=True)
        return out
    if args.source:
        return Path(args.source)
    sys.path.insert(0, str(REPO))
    from config.settings import get_settings

    return get_settings().raw_root


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", help="raw root holding the dates (default: the settings' raw root)")
    parser.add_argument("--simulate", action="store_true", help="simulate the demo shop's dates into a temp dir")
    parser.add_argument("--end", type=dt.date.fromisoformat, default=DEFAULT_END, help="last date [2026-04-30]")
    parser.add_argument("--days", type=int, default=28, help="dates of the history load [28]")
    parser.add_argument("--gate", help="a validate.py to measure instead of feature_repo/expectations/validate.py")
    parser.add_argument("--workers", type=int, default=2, help="processes of the split history load [2]")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--work", help=argparse.SUPPRESS)
    parser.add_argument("dates", nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        dates = [dt.date.fromisoformat(d) for d in args.dates]
        gate = Path(args.gate).resolve() if args.gate else None
        print(json.dumps(run_child(Path(args.child), Path(args.work), dates, gate, args.workers)))
        return

    nightly = args.end
    history = [nightly - dt.timedelta(days=i) for i in range(1, args.days + 1)][::-1]
    gate = str(Path(args.gate).resolve()) if args.gate else None
    with tempfile.TemporaryDirectory(prefix="storefront-bench-gx-") as scratch:
        raw_root = _source(args, [*history, nightly], Path(scratch))
        missing = [d for d in [*history, nightly] if not (raw_root / "sessions" / f"dt={d.isoformat()}").is_dir()]
        if missing:
            raise SystemExit(f"{raw_root} lacks {len(missing)} of the dates (first {missing[0]}): see --simulate")
        fresh, loaded = Path(scratch) / "fresh", Path(scratch) / "loaded"
        runs = [
            ("nightly, fresh store", _measure(raw_root, [nightly], fresh, gate)),
            ("history load", _measure(raw_root, history, loaded, gate)),
            ("nightly after it", _measure(raw_root, [nightly], loaded, gate)),
        ]
        if args.workers > 1:  # the same history load split over processes, on a store of its own
            split = _measure(raw_root, history, Path(scratch) / "split", gate, args.workers)
            runs.append((f"history, {args.workers} procs", split))

    print(f"\nraw validation of {raw_root}, gate {gate or 'feature_repo/expectations/validate.py'}")
    print(f"validate_days('raw', dates): history {history[0]}..{history[-1]}, nightly {nightly}; one process each")
    head = f"{'run':<22}{'dates':>6}{'seconds':>9}{'cpu s':>8}{'s/date':>8}{'peak MB':>9}{'partitions':>12}"
    print(head + "".join(f"{p:>{max(len(p) + 2, 8)}}" for p in PHASES))
    for label, run in runs:
        line = (
            f"{label:<22}{run['dates']:>6}{run['seconds']:>9.2f}{run['cpu_s']:>8.2f}"
            f"{run['seconds'] / run['dates']:>8.2f}{run['peak_mb']:>9.0f}{run['partitions']:>12}"
        )
        shares = "".join(
            f"{100 * run['phases'].get(p, 0.0) / run['seconds']:>{max(len(p) + 2, 8) - 1}.1f}%" for p in PHASES
        )
        print(line + shares)
    one, many = runs[0][1], runs[1][1]
    if len(runs) > 3:
        print(f"history load split over {args.workers} processes: {runs[3][1]['seconds']:.1f} s against "
              f"{many['seconds']:.1f} s in one process ({many['seconds'] / runs[3][1]['seconds']:.2f}x; the phase "
              "shares of a split run count only the parent: its processes' work is 'other')")
    per_date = many["seconds"] / many["dates"]
    print(
        f"Great Expectations import: {one['import_s']:.1f} s per process (not included above)\n"
        f"history load: {per_date:.2f} s per date = {per_date / one['seconds']:.2f} x one nightly run "
        f"(cpu {many['cpu_s'] / many['dates']:.2f} s per date = {many['cpu_s'] / many['dates'] / one['cpu_s']:.2f} x)"
    )
    for label, run in runs:
        if run["failed"]:
            print(f"note: {label} failed {len(run['failed'])} partition(s): {run['failed'][:5]}")


if __name__ == "__main__":
    main()
