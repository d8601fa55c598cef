"""The daily A/B readout stages, each a typed function the DAG's task calls, and ``storefront ab-readout``.

1. ``reconcile_registry(day)``: the registry against the ``experiments`` table of the date;
2. ``join_outcomes(day)``: the Spark join of exposures to outcomes (``monitoring.ab_readouts.exposure_outcomes``);
3. ``write_readouts(day, reconciliation)``: every experiment's readout record, page and the date's index, under
   ``<reports>/ab_readouts/`` (``<experiment>/dt=<date>/readout.{json,html}``, ``dt=<date>/index.{json,html}``).

Every stage works on the run date's partitions only; re-running a date rewrites the same files.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from pathlib import Path

import click

from config.cli_options import ISO_DATE

log = logging.getLogger(__name__)

READOUTS_DIR = "ab_readouts"


def _outcomes_root() -> Path:
    from config.settings import get_settings

    return get_settings().lake / "experiments"


def reconcile_registry(day: dt.date, registry_path: Path | None = None) -> dict:
    """Reconcile the registry with the ``experiments`` snapshot of ``day``; return the reconciliation as a dict."""
    from config.experiments import read_experiments_registry
    from config.settings import get_settings
    from monitoring.ab_readouts.experiments import reconcile

    registry = read_experiments_registry(registry_path)
    result = reconcile(registry, get_settings().raw_root, day)
    for exp_id, problems in result.mismatches.items():
        log.warning("experiment %s: registry and experiments table disagree: %s", exp_id, "; ".join(problems))
    for exp_id in result.unregistered:
        log.warning("experiment %s ran (experiments table of %s) but is not in the registry", exp_id, day)
    log.info("%s: %d experiment(s) to read out: %s", day, len(result.analysed), ", ".join(result.analysed) or "-")
    return result.as_dict()


def join_outcomes(day: dt.date, registry_path: Path | None = None) -> dict[str, str]:
    """Run the Spark join for the experiments started by ``day``; return table -> folder ({} when none)."""
    from config.experiments import read_experiments_registry
    from config.settings import get_settings
    from monitoring.ab_readouts.experiments import analysis_windows
    from monitoring.ab_readouts.exposure_outcomes import join_exposures_to_outcomes

    registry = read_experiments_registry(registry_path)
    windows = analysis_windows(registry, day)
    if not windows:
        log.info("no experiment has started by %s: nothing to join", day)
        return {}
    return join_exposures_to_outcomes(
        day, windows, pre_period_days=registry.pre_period_days, raw_root=get_settings().raw_root,
        out_root=_outcomes_root(),
    )


def write_readouts(day: dt.date, reconciliation: dict, registry_path: Path | None = None) -> dict[str, str]:
    """Compute every experiment's readout of ``day``, write the pages and the index; return name -> path."""
    import pandas as pd

    from config.experiments import read_experiments_registry
    from config.settings import get_settings
    from monitoring.ab_readouts.exposure_outcomes import UNIT_DAYS_TABLE, UNITS_TABLE, partition_dir
    from monitoring.ab_readouts.readout import build_panel, readout
    from monitoring.ab_readouts.report import write_pages

    registry = read_experiments_registry(registry_path)
    records = []
    if reconciliation["analysed"]:
        root = _outcomes_root()
        units = pd.read_parquet(partition_dir(root, UNITS_TABLE, day))
        unit_days = pd.read_parquet(partition_dir(root, UNIT_DAYS_TABLE, day))
        meta = json.loads((partition_dir(root, UNITS_TABLE, day) / "_meta.json").read_text())
        for exp_id in reconciliation["analysed"]:
            cfg = registry.experiment(exp_id)
            mine = units[units.experiment_id == exp_id]
            mismatches = list(reconciliation["mismatches"].get(exp_id, []))
            unknown = mine.variant[~mine.variant.isin(cfg.variant_names)].value_counts()
            if len(unknown):
                mismatches.append("exposures log variant(s) outside the plan: "
                                  + ", ".join(f"{v} ({n} units)" for v, n in unknown.items()))
            panel = build_panel(
                mine,
                unit_days[unit_days.experiment_id == exp_id],
                cfg,
                min(day, cfg.end_date),
            )
            record = readout(
                panel, cfg, registry, experiment_id=exp_id, run_date=day,
                mismatches=mismatches,
                dropped_units=meta["units_in_two_variants_dropped"].get(exp_id, 0),
            )
            log.info("%s %s: %s - %s", exp_id, day, record["decision"]["status"], record["decision"]["reason"])
            records.append(record)
    extra = [
        {"experiment_id": e, "name": reconciliation["names"].get(e, e), "status": "unregistered",
         "reason": "ran (experiments table) but is not in the registry: add it to config/experiments.yaml to read "
                   "it out", "variant": None}
        for e in reconciliation["unregistered"]
    ]
    return write_pages(get_settings().reports / READOUTS_DIR, day, records, extra)


def run_readouts(day: dt.date, registry_path: Path | None = None) -> dict[str, str]:
    """All three stages in one process (the CLI; the DAG runs them as separate tasks)."""
    reconciliation = reconcile_registry(day, registry_path)
    join_outcomes(day, registry_path)
    return write_readouts(day, reconciliation, registry_path)


@click.command("ab-readout")
@click.option("--date", "day", required=True, type=ISO_DATE, help="The readout date (YYYY-MM-DD).")
@click.option(
    "--registry",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Experiment registry [default: the STOREFRONT_EXPERIMENTS_CONFIG setting, config/experiments.yaml].",
)
def ab_readout_command(day: dt.date, registry: Path | None) -> None:
    """Read out every experiment running on a date: reconcile, join with Spark, decide, write the pages.

    Prints one line per experiment (status, reason) and the path of the index page.
    """
    from feature_repo.features.partitions import MissingRawPartitionError

    try:
        written = run_readouts(day, registry)
    except (MissingRawPartitionError, FileNotFoundError, ValueError) as err:
        raise click.ClickException(str(err)) from err
    index = Path(written["index"])
    for entry in json.loads((index.parent / "index.json").read_text())["experiments"]:
        click.echo(f"{entry['experiment_id']}\t{entry['status']}\t{entry['reason']}")
    click.echo(f"index\t{index}")
