"""Simulator throughput and peak memory at demo and large scale.

Each scale runs in its own process (so its peak RSS is its own). Printed per scale: wall time, rows and
rows/s per table (over the whole run, generation included), the parquet-writing share, and peak RSS. The
baseline, measured in the same run, is the I/O floor: re-writing the impressions the simulator just wrote
with plain ``pyarrow.parquet.write_table``; the ratio says how much slower generating is than only writing.

    python benchmarks/simulator_throughput.py                  # demo (120 days) and large (21 days)
    python benchmarks/simulator_throughput.py --scales demo    # one scale
Targets (issue 2): demo written in under 60 s on 2 cores; large (>= 10M impressions) under 8 GB peak.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RANGES = {
    "tiny": ("2026-01-01", "2026-01-21"),
    "demo": ("2026-01-01", "2026-04-30"),
    "large": ("2026-01-01", "2026-01-21"),  # about 11.6M impressions
}
TARGET_SECONDS = {"demo": 60.0}
TARGET_PEAK_GB = {"large": 8.0}


def run_one(scale: str, out: Path) -> dict:
    """Child process: simulate one scale and report the summary and this process's peak RSS."""
    from simulator.shop import simulate

    start, end = (dt.date.fromisoformat(d) for d in RANGES[scale])
    summary = simulate(start, end, out, scale=scale, overwrite=True)
    return {
        "scale": scale,
        "days": (end - start).days + 1,
        "seconds": summary.seconds,
        "rows": summary.rows,
        "write_seconds": summary.write_seconds,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def io_floor(out: Path) -> tuple[int, float]:
    """Rows and seconds to re-write the simulated impressions with plain pyarrow (read time excluded)."""
    import pyarrow.parquet as pq

    parts = sorted((out / "impressions").glob("dt=*/part-00000.parquet"))
    tables = [pq.read_table(p) for p in parts]
    with tempfile.TemporaryDirectory() as scratch:
        began = time.perf_counter()
        for n, table in enumerate(tables):
            pq.write_table(table, Path(scratch) / f"{n}.parquet")
        return sum(t.num_rows for t in tables), time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scales", nargs="+", default=["demo", "large"], choices=list(RANGES))
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_one(args.child, Path(args.out))))
        return

    for scale in args.scales:
        out = Path(tempfile.mkdtemp(prefix=f"storefront-bench-{scale}-"))
        try:
            print(f"simulating {scale} {RANGES[scale][0]}..{RANGES[scale][1]} ...", flush=True)
            child = subprocess.run(
                [sys.executable, __file__, "--child", scale, "--out", str(out)],
                check=True, capture_output=True, text=True,
            )
            result = json.loads(child.stdout.strip().splitlines()[-1])
            floor_rows, floor_s = io_floor(out)
        finally:
            shutil.rmtree(out, ignore_errors=True)
        total_rows = sum(result["rows"].values())
        writing = sum(result["write_seconds"].values())
        print(f"\n== {scale}: {result['days']} days, {total_rows:,} rows in {result['seconds']:.1f} s "
              f"({total_rows / result['seconds']:,.0f} rows/s), writing {writing:.1f} s, "
              f"peak RSS {result['peak_rss_mb']:,.0f} MB")
        print(f"{'table':<18}{'rows':>14}{'rows/s (run)':>16}{'write s':>10}")
        for table, rows in result["rows"].items():
            print(f"{table:<18}{rows:>14,}{rows / result['seconds']:>16,.0f}{result['write_seconds'][table]:>10.2f}")
        imp_rate = result["rows"]["impressions"] / result["seconds"]
        floor_rate = floor_rows / floor_s
        print(f"baseline (same run): plain pyarrow re-write of the impressions {floor_rate:,.0f} rows/s; "
              f"simulator impressions throughput / I/O floor = {imp_rate / floor_rate:.2f}")
        if scale in TARGET_SECONDS:
            ok = result["seconds"] < TARGET_SECONDS[scale]
            print(f"target: under {TARGET_SECONDS[scale]:.0f} s -> {'met' if ok else 'MISSED'} "
                  f"({result['seconds'] / TARGET_SECONDS[scale]:.2f} of the budget)")
        if scale in TARGET_PEAK_GB:
            peak_gb = result["peak_rss_mb"] / 1024
            ok = peak_gb < TARGET_PEAK_GB[scale] and result["rows"]["impressions"] >= 10_000_000
            print(f"target: impressions >= 10M ({result['rows']['impressions']:,}) and peak under "
                  f"{TARGET_PEAK_GB[scale]:.0f} GB -> {'met' if ok else 'MISSED'} ({peak_gb:.2f} GB)")


if __name__ == "__main__":
    main()
