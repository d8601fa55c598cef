"""The elasticity estimator on real sales: the UCI Online Retail sample, beside a plain log-log OLS in the same run.

Data: ``../shared/data/uci_online_retail_sample40k/online_retail_sample40k.csv`` (a random 40,000-line sample of
UCI Online Retail, a UK gift wholesaler/retailer, 2010-12-01..2011-12-09; see SOURCE.txt there). It has no
categories, no list prices, no costs and no impressions, so:

* cleaning (each step's row count is printed): drop cancellations (``InvoiceNo`` starting with C), lines with
  zero or negative ``Quantity`` or ``UnitPrice``, non-product codes (postage, fees, manual adjustments, samples:
  ``StockCode`` without a leading digit), and outliers: quantities above 1,000 per line (one-off bulk orders)
  and unit prices outside 1/3..3x the product's median price (entry errors, price-on-request lines);
* demand grain: product x ISO week with at least one sale (the file shows a price only when something sold:
  the elasticity is the intensive margin, units per week in which the product sold); units = sum of
  quantities, price = the quantity-weighted mean unit price paid, the reference ("list") price = the product's
  median unit price, exposure = 1 per row;
* groups: a product family from keywords of the description (bags, candles and lights, cards and wrap,
  kitchen, decorations, Christmas, other), first match wins;
* controls: the product (fixed effect) and the season (annual Fourier terms of the week's date); weeks are the
  cross-fitting folds.

Printed: per family, the DML elasticity with its 95% interval (cluster-robust by product) beside plain log-log OLS
(statsmodels, log units on log price with a constant, rows of the family, no controls) and the within-product OLS
(``naive_loglog``), plus the pooled figures over all families. Why they differ: wholesale customers buy larger
quantities at lower tier prices, so across lines price and quantity are negatively related by the price list,
not by demand; the product effects and the season take part of that out.

    python benchmarks/elasticity_retail.py
    python benchmarks/elasticity_retail.py --data path/to/online_retail.csv   # e.g. the full file
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from config.settings import REPO_ROOT
from training.elasticity.estimator import EstimatorConfig, estimate_elasticities, naive_loglog

DATA_FILE = REPO_ROOT.parent / "shared" / "data" / "uci_online_retail_sample40k" / "online_retail_sample40k.csv"
MAX_QUANTITY = 1000
PRICE_BAND = 3.0  # a line's unit price must be within [median / 3, median * 3] of its product
FAMILIES = (  # (family, description keywords); the first family with a keyword in the description wins
    ("christmas", ("CHRISTMAS", "XMAS", "ADVENT")),
    ("bags", ("BAG", "PURSE")),
    ("candles_lights", ("CANDLE", "LIGHT", "LANTERN", "T-LIGHT", "HOLDER")),
    ("cards_wrap", ("CARD", "WRAP", "PAPER", "NOTEBOOK", "STICKER")),
    ("kitchen", ("MUG", "CUP", "PLATE", "BOWL", "TEA", "CAKE", "JAR", "LUNCH", "BOTTLE", "KITCHEN", "SPOON")),
    ("decorations", ("SIGN", "FRAME", "HEART", "DECORATION", "HANGING", "CLOCK", "ORNAMENT", "WALL")),
)


def clean(raw: pd.DataFrame) -> tuple[pd.DataFrame, list[tuple[str, int]]]:
    """The order lines kept, and (step, rows left) after each cleaning step."""
    steps = [("read", len(raw))]
    lines = raw.loc[~raw["InvoiceNo"].astype(str).str.startswith("C")]
    steps.append(("cancellations dropped (InvoiceNo C...)", len(lines)))
    lines = lines.loc[(lines["Quantity"] > 0) & (lines["UnitPrice"] > 0)]
    steps.append(("zero/negative quantity or price dropped", len(lines)))
    lines = lines.loc[lines["StockCode"].astype(str).str.match(r"^\d")]
    steps.append(("non-product codes dropped (postage, fees, adjustments)", len(lines)))
    lines = lines.loc[lines["Quantity"] <= MAX_QUANTITY]
    steps.append((f"quantity > {MAX_QUANTITY} dropped", len(lines)))
    median = lines.groupby("StockCode")["UnitPrice"].transform("median")
    lines = lines.loc[(lines["UnitPrice"] >= median / PRICE_BAND) & (lines["UnitPrice"] <= median * PRICE_BAND)]
    steps.append((f"unit price outside 1/{PRICE_BAND:g}..{PRICE_BAND:g}x the product median dropped", len(lines)))
    return lines, steps


def family(description: str) -> str:
    text = str(description).upper()
    for name, words in FAMILIES:
        if any(w in text for w in words):
            return name
    return "other"


def weekly_demand(lines: pd.DataFrame) -> pd.DataFrame:
    """Product x ISO week rows with the estimator's columns (see the module docstring)."""
    lines = lines.assign(
        date=pd.to_datetime(lines["InvoiceDate"]).dt.to_period("W-SUN").dt.start_time,
        revenue=lines["Quantity"] * lines["UnitPrice"],
        product_id=lines["StockCode"].astype(str),
    )
    weeks = lines.groupby(["product_id", "date"], as_index=False).agg(
        units=("Quantity", "sum"), revenue=("revenue", "sum"), lines=("Quantity", "size")
    )
    weeks["price"] = weeks["revenue"] / weeks["units"]
    names = lines.groupby("product_id")["Description"].agg(lambda s: s.dropna().iloc[0] if s.notna().any() else "")
    weeks["category"] = weeks["product_id"].map(names).map(family)
    weeks["list_price"] = weeks["product_id"].map(lines.groupby("product_id")["UnitPrice"].median())
    weeks["impressions"] = 1
    weeks["day_of_week"] = 1  # weekly rows start on Mondays: the weekday dummies stay zero
    weeks["day_of_year"] = weeks["date"].dt.dayofyear
    weeks["date"] = weeks["date"].dt.date
    return weeks


def plain_ols(frame: pd.DataFrame) -> dict[str, float]:
    """log(units) = a + b log(price) by OLS (statsmodels), classical standard errors: the plain fit."""
    import statsmodels.api as sm

    fit = sm.OLS(np.log(frame["units"]), sm.add_constant(np.log(frame["price"]))).fit()
    low, high = fit.conf_int(alpha=0.05).iloc[1]
    return {"elasticity": float(fit.params.iloc[1]), "ci_low": float(low), "ci_high": float(high)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DATA_FILE)
    parser.add_argument("--min-units", type=float, default=30.0, help="smallest family total to estimate")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if not args.data.is_file():
        print(f"data not found: {args.data} (../shared/data beside the checkout)", file=sys.stderr)
        return 2
    raw = pd.read_csv(args.data, dtype={"InvoiceNo": str, "StockCode": str})
    lines, steps = clean(raw)
    print("cleaning (rows left):")
    for step, rows in steps:
        print(f"  {rows:>7,}  {step}")
    weeks = weekly_demand(lines)
    repeat = weeks.groupby("product_id")["date"].transform("size") > 1
    print(
        f"demand: {len(weeks):,} product-weeks with sales, {weeks['product_id'].nunique():,} products, "
        f"{int(repeat.sum()):,} rows of products sold in 2+ weeks (only they carry within-product price variation); "
        f"{weeks['date'].min()}..{weeks['date'].max()}"
    )

    started = time.perf_counter()
    config = EstimatorConfig(min_units=args.min_units)
    result = estimate_elasticities(weeks, config)
    seconds = time.perf_counter() - started
    dml = result.model.elasticities().set_index("group")
    within = naive_loglog(weeks, ("category",)).set_index("group")
    rows = []
    for group in [*dml.index, "all"]:
        part = weeks if group == "all" else weeks.loc[weeks["category"] == group]
        ols = plain_ols(part)
        row = {"family": group, "product_weeks": len(part), "units": int(part["units"].sum())}
        if group in dml.index:
            est = result.estimates[group]
            row.update(
                dml=dml.loc[group, "elasticity"],
                dml_ci=f"[{dml.loc[group, 'ci_low']:+.2f}, {dml.loc[group, 'ci_high']:+.2f}]",
                informative_products=est.products,
            )
        if group in within.index:
            row["within_ols"] = within.loc[group, "elasticity"]
        row.update(plain_ols=ols["elasticity"], plain_ols_ci=f"[{ols['ci_low']:+.2f}, {ols['ci_high']:+.2f}]")
        rows.append(row)
    table = pd.DataFrame(rows)
    pooled = estimate_elasticities(weeks.assign(category="all"), config).model.elasticities().iloc[0]
    table.loc[table["family"] == "all", "dml"] = pooled["elasticity"]
    table.loc[table["family"] == "all", "dml_ci"] = f"[{pooled['ci_low']:+.2f}, {pooled['ci_high']:+.2f}]"
    print()
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(table.round(3).to_string(index=False))
    print(
        f"\nDML: cross-fitted by week ({config.n_folds} folds), product effects, annual Fourier season, "
        f"Poisson log link, {config.confidence:.0%} cluster-robust intervals; {seconds:.1f} s for "
        f"{result.rows:,} rows. plain_ols: statsmodels OLS of log units on log price, per family, no controls. "
        "within_ols: the same within products (naive_loglog)."
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
