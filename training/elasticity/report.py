"""The elasticity model's report: markdown + HTML (images embedded) with PNG plots, logged with every training run.

Sections: the elasticity per group with its interval beside the naive log-log fit (and the planted value when a
caller knows it: the simulator's truth), the demand curve of every group (units relative to the list price
against price / list price, with the interval band), the out-of-time forecast check, and the price
recommendations of the run date (what bound them, the expected daily changes with intervals).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from training.elasticity.pyfunc import DemandModel
from training.shared.report import Section, figure, finite, html_page, markdown, save

PRICE_RATIOS = np.linspace(0.6, 1.4, 81)  # price / list price on the demand curves' x axis


def elasticity_table(model: DemandModel, naive: pd.DataFrame, truth: Mapping[str, float] | None = None) -> pd.DataFrame:
    """One row per group: the DML elasticity and interval, the naive fit, and the planted value when given."""
    table = model.elasticities().merge(
        naive[["group", "elasticity", "ci_low", "ci_high"]].rename(
            columns={"elasticity": "naive", "ci_low": "naive_ci_low", "ci_high": "naive_ci_high"}
        ),
        on="group",
        how="left",
    )
    if truth is not None:
        table["planted"] = table["group"].map(truth)
        table["error"] = table["elasticity"] - table["planted"]
        table["naive_error"] = table["naive"] - table["planted"]
        table["covered"] = (table["ci_low"] <= table["planted"]) & (table["planted"] <= table["ci_high"])
    return table


def _plot_elasticities(table: pd.DataFrame, path: Path) -> Path:
    fig = figure(7.5, 0.45 * len(table) + 1.5)
    ax = fig.add_subplot()
    y = np.arange(len(table))
    ax.errorbar(
        table["elasticity"],
        y,
        xerr=[table["elasticity"] - table["ci_low"], table["ci_high"] - table["elasticity"]],
        fmt="o",
        color="tab:blue",
        label="DML (cross-fitted, product effects, season)",
    )
    ax.errorbar(
        table["naive"],
        y + 0.2,
        xerr=[table["naive"] - table["naive_ci_low"], table["naive_ci_high"] - table["naive"]],
        fmt="s",
        color="tab:gray",
        label="naive log-log OLS",
    )
    if "planted" in table:
        ax.scatter(table["planted"], y - 0.2, marker="x", color="tab:red", label="planted (simulator truth)", zorder=3)
    ax.axvline(0.0, color="black", lw=0.8)
    ax.axvline(-1.0, color="black", lw=0.5, ls=":")
    ax.set_yticks(y, table["group"])
    ax.set_xlabel("price elasticity of units (d log units / d log price)")
    ax.legend(loc="lower left", fontsize=8)
    return save(fig, path)


def _plot_demand_curves(model: DemandModel, path: Path) -> Path:
    n = len(model.groups)
    cols = min(4, n)
    rows = int(np.ceil(n / cols))
    fig = figure(3.0 * cols, 2.4 * rows + 0.4)
    axes = fig.subplots(rows, cols, squeeze=False)
    for i, group in enumerate(model.groups):
        ax = axes[i // cols][i % cols]
        beta, low, high = model.elasticity[i], model.ci_low[i], model.ci_high[i]
        ax.fill_between(PRICE_RATIOS, PRICE_RATIOS**low, PRICE_RATIOS**high, color="tab:blue", alpha=0.25)
        ax.plot(PRICE_RATIOS, PRICE_RATIOS**beta, color="tab:blue")
        ax.axvline(1.0, color="black", lw=0.5, ls=":")
        ax.set_title(f"{group}: {beta:+.2f} [{low:+.2f}, {high:+.2f}]", fontsize=9)
        ax.set_xlabel("price / list price", fontsize=8)
        ax.set_ylabel("units vs at list price", fontsize=8)
        ax.tick_params(labelsize=7)
    for j in range(n, rows * cols):
        axes[j // cols][j % cols].set_visible(False)
    return save(fig, path)


def _plot_recommendations(recommendations: pd.DataFrame, path: Path) -> Path:
    fig = figure(7.5, 3.2)
    ax = fig.add_subplot()
    for binding, part in recommendations.groupby("binding", sort=True):
        ax.scatter(part["change_pct"], part["profit_change"], s=8, label=f"{binding} ({len(part)})")
    ax.axhline(0.0, color="black", lw=0.5)
    ax.set_xlabel("recommended price change, %")
    ax.set_ylabel("expected profit change, EUR/day")
    ax.legend(fontsize=8, title="bound by", title_fontsize=8)
    return save(fig, path)


def write_report(
    out_dir: Path,
    title: str,
    model: DemandModel,
    naive: pd.DataFrame,
    recommendations: pd.DataFrame,
    metrics: Mapping[str, float],
    *,
    truth: Mapping[str, float] | None = None,
    data_note: str = "",
) -> dict[str, Path]:
    """Write ``report.md``, ``report.html``, ``elasticities.csv``, ``report.json`` and the plots into ``out_dir``.

    ``truth``: the planted elasticity per group, where known (simulated data only); ``metrics``: the out-of-time
    forecast figures. Returns name -> path.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    table = elasticity_table(model, naive, truth)
    paths = {
        "elasticity_plot": _plot_elasticities(table, out_dir / "elasticities.png"),
        "demand_curves_plot": _plot_demand_curves(model, out_dir / "demand_curves.png"),
        "recommendations_plot": _plot_recommendations(recommendations, out_dir / "recommendations.png"),
    }
    level = f"{model.confidence:.0%}"
    shown = table.round(3)
    estimate_notes = [
        f"Elasticity of units per impression with respect to price, per {'/'.join(model.group_columns)}, "
        f"with {level} intervals (cluster-robust by product). The naive fit regresses log daily units on log "
        "price within products over days with sales, with no exposure and no season or weekday controls.",
    ]
    if data_note:
        estimate_notes.append(data_note)
    if truth is not None:
        estimate_notes.append(
            f"Against the planted values: mean absolute error {table['error'].abs().mean():.3f} (naive "
            f"{table['naive_error'].abs().mean():.3f}); planted value inside the interval for "
            f"{int(table['covered'].sum())} of {len(table)} groups."
        )
    forecast = ", ".join(f"{k} {v:.4f}" for k, v in metrics.items())
    top = recommendations.sort_values("profit_change", ascending=False).head(10)
    money = ["profit_change", "profit_change_low", "profit_change_high", "revenue_change", "units_change"]
    bindings = recommendations["binding"].value_counts().to_dict()
    sections = [
        Section("Elasticities", tuple(estimate_notes), shown, paths["elasticity_plot"].name),
        Section(
            "Demand curves",
            ("Expected units relative to the list price, per group, with the elasticity's interval as a band.",),
            None,
            paths["demand_curves_plot"].name,
        ),
        Section("Out-of-time forecast (holdout days)", (forecast,)),
        Section(
            "Price recommendations",
            (
                f"{len(recommendations)} products; bound by: "
                + ", ".join(f"{k} {v}" for k, v in sorted(bindings.items()))
                + f". Expected changes are per day, at the baseline days' exposure, with {level} intervals from "
                "the elasticity's uncertainty. Top 10 by expected profit change:",
            ),
            top[
                ["product_id", "group", "price", "unit_cost", "recommended_price", "change_pct", "binding", *money]
            ].round(3),
            paths["recommendations_plot"].name,
        ),
    ]
    paths["markdown"] = out_dir / "report.md"
    paths["markdown"].write_text(markdown(title, sections))
    paths["html"] = out_dir / "report.html"
    paths["html"].write_text(html_page(title, sections, out_dir))
    paths["table"] = out_dir / "elasticities.csv"
    table.to_csv(paths["table"], index=False)
    paths["json"] = out_dir / "report.json"
    paths["json"].write_text(
        json.dumps(finite({"elasticities": table.to_dict(orient="records"), "metrics": dict(metrics)}), indent=2)
        + "\n"
    )
    return paths
