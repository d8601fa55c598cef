"""The experiment registry that matches a simulated date range.

The simulator places its planted experiments at fixed fractions of the simulated range, so the windows in
``config/experiments.yaml`` (written for the demo range 2026-01-01..2026-04-30) only agree with a lake simulated
over that range. ``registry_for_range`` returns the repo's registry with each experiment's window replaced by
the one a shop simulated over ``start..end`` runs (everything else, metrics and thresholds, unchanged): what
tests and other simulated ranges read out with.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import yaml

EPOCH = dt.date(1970, 1, 1)


def experiment_windows(start: dt.date, end: dt.date) -> dict[str, tuple[dt.date, dt.date]]:
    """Experiment id -> (first, last) exposure date of a shop simulated over ``start..end``."""
    from simulator.scales import get_scale
    from simulator.shop import Shop

    shop = Shop(start, end, seed=0, scale=get_scale("tiny"))  # windows depend on the range only
    return {e: (EPOCH + dt.timedelta(days=f), EPOCH + dt.timedelta(days=last)) for e, f, last in shop.experiments}


def registry_for_range(start: dt.date, end: dt.date, base: Path | None = None) -> dict:
    """The registry (as a dict, ready for YAML) of ``base`` with the windows of a shop simulated over the range."""
    from config.settings import REPO_ROOT

    registry = yaml.safe_load(Path(base or REPO_ROOT / "config" / "experiments.yaml").read_text())
    for exp_id, (first, last) in experiment_windows(start, end).items():
        registry["experiments"][exp_id].update(start_date=first, end_date=last)
    return registry


def write_registry_for_range(start: dt.date, end: dt.date, out: Path, base: Path | None = None) -> Path:
    out = Path(out)
    out.write_text(yaml.safe_dump(registry_for_range(start, end, base), sort_keys=False))
    return out
