"""``storefront simulate``: write a simulated shop into the raw lake."""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path

import click

from config import get_settings
from config.cli_options import ISO_DATE
from simulator.scales import SCALES
from simulator.shop import DriftSwitch, simulate, summary_json
from simulator.world import CAMPAIGN_PLANS, DEFAULT_CAMPAIGN_PLAN


def _drift(_: click.Context, __: click.Parameter, values: tuple[str, ...]) -> tuple[DriftSwitch, ...]:
    try:
        return tuple(DriftSwitch.parse(v) for v in values)
    except ValueError as err:
        raise click.BadParameter(str(err)) from None


@click.command("simulate")
@click.option("--start", required=True, type=ISO_DATE, help="First simulated day (YYYY-MM-DD).")
@click.option("--end", required=True, type=ISO_DATE, help="Last simulated day, inclusive.")
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=None,
    help="Raw root to write into [default: $STOREFRONT_LAKE_ROOT/raw].",
)
@click.option("--seed", type=int, default=None, help="Random seed [default: $STOREFRONT_SEED].")
@click.option("--scale", type=click.Choice(list(SCALES)), default=None, help="Shop size [default: $STOREFRONT_SCALE].")
@click.option(
    "--drift",
    "drift",
    multiple=True,
    callback=_drift,
    metavar="KIND@DATE",
    help="Switch on drift from a date: slow_checkout@YYYY-MM-DD or mobile_shift@YYYY-MM-DD. Repeatable.",
)
@click.option(
    "--campaigns",
    type=click.Choice(list(CAMPAIGN_PLANS)),
    default=DEFAULT_CAMPAIGN_PLAN,
    show_default=True,
    help="Coupon campaign plan: a weekly sample of the customers, or most of the file every week (issue 18).",
)
@click.option("--overwrite", is_flag=True, help="Replace raw tables already in --out.")
def simulate_command(
    start: dt.date,
    end: dt.date,
    out: Path | None,
    seed: int | None,
    scale: str | None,
    drift: tuple[DriftSwitch, ...],
    campaigns: str,
    overwrite: bool,
) -> None:
    """Simulate a shop from START to END and write every raw table plus _truth/truth.json."""
    settings = get_settings()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        summary = simulate(
            start,
            end,
            out or settings.raw_root,
            seed=settings.seed if seed is None else seed,
            scale=scale or settings.scale,
            drift=drift,
            campaigns=campaigns,
            overwrite=overwrite,
        )
    except (FileExistsError, ValueError) as err:
        raise click.ClickException(str(err)) from None
    click.echo(summary_json(summary))
