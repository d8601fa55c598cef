"""The promotion power table: can the simulated shop's randomized offers resolve the coupon effects it plants?

Read from the truth file alone, before any training (``python -m simulator.power --raw var/lake/raw``): for
every segment and coupon, the randomized offers with a closed 10-week window, the planted mean incremental profit
(the exact oracle), the standard deviation of the realized 10-week profit in the segment's ``none`` arm, the
effect a two-sided 5% test detects with 80% power on the training share of those offers
((z_0.975 + z_0.8) x sd x sqrt(2 / n), the normal approximation for two equal arms), and the difference in
realized mean profit against ``none`` that the offers actually show, with its standard error (the planted effect
should lie within about two of them).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import click
import numpy as np
import pandas as pd
from scipy.stats import norm

# The promotion model trains on (1 - holdout_share) x (1 - validation share) of the randomized offers: 0.7 x 0.8.
DEFAULT_TRAINING_SHARE = 0.56


@dataclass(frozen=True)
class PowerRow:
    segment: str
    coupon: str
    offers: int  # randomized offers of this coupon with a closed window
    control_offers: int  # randomized "none" offers of the segment with a closed window
    planted: float  # mean oracle incremental profit, EUR per offer
    noise_sd: float  # sd of realized 10-week profit, none arm, EUR
    detectable: float  # effect detectable at 80% power (two-sided 5%) on the training share, EUR
    observed: float  # realized mean profit minus the none arm's, EUR
    observed_se: float

    @property
    def resolvable(self) -> bool:
        return abs(self.planted) >= self.detectable


def power_table(raw_root: Path, training_share: float = DEFAULT_TRAINING_SHARE) -> list[PowerRow]:
    """One row per segment and coupon from ``raw_root/_truth``."""
    truth = json.loads((raw_root / "_truth" / "truth.json").read_text())["promotion"]
    uplift = pd.read_parquet(raw_root / "_truth" / truth["uplift_file"])
    rows = uplift[(uplift["assignment"] == "random") & uplift["outcome_complete"]]
    coupons = [c for c in truth["coupons"] if c != "none"]
    z = norm.ppf(0.975) + norm.ppf(0.8)
    out = []
    for segment, seg_rows in rows.groupby("segment", sort=False):
        control = seg_rows[seg_rows["promotion_id"] == "none"]
        sd = float(control["realized_profit_10w"].std(ddof=1))
        for coupon in coupons:
            treated = seg_rows[seg_rows["promotion_id"] == coupon]
            n_train = training_share * min(len(treated), len(control))
            effect_size = z * np.sqrt(2.0 / n_train) if n_train > 1 else np.inf  # in units of the noise sd
            se = float(np.sqrt(treated["realized_profit_10w"].var(ddof=1) / len(treated) + sd**2 / len(control)))
            out.append(PowerRow(
                segment=str(segment),
                coupon=coupon,
                offers=len(treated),
                control_offers=len(control),
                planted=float(seg_rows[f"delta_profit_{coupon}"].mean()),
                noise_sd=sd,
                detectable=float(effect_size * sd),
                observed=float(treated["realized_profit_10w"].mean() - control["realized_profit_10w"].mean()),
                observed_se=se,
            ))
    return out


def to_markdown(rows: list[PowerRow]) -> str:
    lines = [
        "| segment | coupon | randomized offers (none) | planted effect | noise sd, none arm | detectable at 80% "
        "power | planted / detectable | observed difference (se) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r.segment} | {r.coupon} | {r.offers:,} ({r.control_offers:,}) | {r.planted:+.2f} EUR | "
            f"{r.noise_sd:.1f} EUR | {r.detectable:.2f} EUR | {abs(r.planted) / r.detectable:.2f} | "
            f"{r.observed:+.2f} ({r.observed_se:.2f}) EUR |"
        )
    return "\n".join(lines)


@click.command()
@click.option("--raw", "raw_root", type=click.Path(path_type=Path, exists=True), required=True,
              help="Raw root of a simulated lake (holds _truth/).")
@click.option("--training-share", type=float, default=DEFAULT_TRAINING_SHARE, show_default=True,
              help="Share of the randomized offers the model trains on.")
def main(raw_root: Path, training_share: float) -> None:
    """Print the promotion power table of a simulated lake as markdown."""
    rows = power_table(raw_root, training_share)
    click.echo(to_markdown(rows))
    resolved = sum(r.resolvable for r in rows)
    click.echo(f"\n{resolved} of {len(rows)} segment x coupon effects are at or above the detectable effect.")


if __name__ == "__main__":
    main()
