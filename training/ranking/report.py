"""The ranking evaluation as a report: markdown and HTML pages with PNG plots (the shared renderer's figures).

Files written into the report folder: ``report.md``, ``report.html``, ``ecdf_at_20.png`` (the ECDF of NDCG@20,
NDCP@20 and AvgPrice@20 across the holdout lists, per ordering), ``alpha_tradeoff.png`` (NDCG@k and NDCP@k
against AvgPrice@k, k = 5 and 20, for every alpha of the hybrid), ``propensities.png`` (estimated examination
probability by position, when given) and ``metrics.csv`` (every ordering, every metric).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from training.ranking.metrics import LOGGED, RELEVANCE, UNCORRECTED, ecdf, hybrid_name
from training.shared.report import Section, figure, html_page, markdown

if TYPE_CHECKING:
    from training.ranking.metrics import Evaluation

AT20 = ("ndcg@20", "ndcp@20", "avg_price@20")
LABELS = {"ndcg": "NDCG", "ndcp": "NDCP", "avg_price": "AvgPrice"}


def _label(metric: str, unit: bool = True) -> str:
    name, _, k = metric.partition("@")
    return f"{LABELS[name]}@{k}" + (" (EUR)" if unit and name == "avg_price" else "")


def auc_table(evaluation: Evaluation, k: int = 20) -> pd.DataFrame:
    """model | NDCG@k AUC (change) | NDCP@k AUC (change) | AvgPrice@k AUC (change), as display strings."""
    rows = {}
    for name, row in evaluation.areas.iterrows():
        rows[name] = {
            f"{_label(m, unit=False)} AUC (change)": f"{row[f'{m} auc']:.4f} ({row[f'{m} auc change']:+.1%})"
            for m in (f"ndcg@{k}", f"ndcp@{k}", f"avg_price@{k}")
        }
    return pd.DataFrame.from_dict(rows, orient="index")


def _plot_ecdf(evaluation: Evaluation, path: Path, shown: list[str]) -> None:
    fig = figure(16, 4.8, dpi=100, layout=None)
    axes = fig.subplots(1, 3)
    for ax, metric in zip(axes, AT20, strict=True):
        for name in shown:
            x, y = ecdf(evaluation.per_list[name][metric], evaluation.weights[metric])
            ax.step(x, y, where="post", label=name, linewidth=1.2)
        ax.set_xlabel(_label(metric))
        ax.set_ylabel("share of lists at or below (weighted)")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8, loc="upper left")
    fig.suptitle("ECDF across holdout lists (lower curve = better for NDCG/NDCP; right = dearer for AvgPrice)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def _plot_tradeoff(evaluation: Evaluation, alphas: list[float], path: Path, served: str) -> None:
    table = evaluation.table
    fig = figure(12, 9, dpi=100, layout=None)
    axes = fig.subplots(2, 2)
    panels = [(k, m) for k in (5, 20) for m in (f"ndcg@{k}", f"ndcp@{k}")]
    for ax, (k, metric) in zip(axes.ravel(), panels, strict=True):
        price = f"avg_price@{k}"
        x = [table.loc[hybrid_name(a), price] for a in alphas]
        y = [table.loc[hybrid_name(a), metric] for a in alphas]
        ax.plot(x, y, marker="o")
        for a, xi, yi in zip(alphas, x, y, strict=True):
            ax.annotate(f"{a:.1f}", (xi, yi), textcoords="offset points", xytext=(4, 4), fontsize=8)
        ax.scatter([table.loc[LOGGED, price]], [table.loc[LOGGED, metric]], marker="x", color="k",
                   label="logged order")
        ax.scatter([table.loc[served, price]], [table.loc[served, metric]], s=120, facecolors="none",
                   edgecolors="r", label=f"served ({served})")
        ax.set_xlabel(_label(price))
        ax.set_ylabel(_label(metric))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("Rank-product hybrid across alpha (labels): relevance against price")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def _plot_propensities(propensities: dict[str, Any], path: Path) -> None:
    theta = np.asarray(propensities["theta"], dtype=float)
    raw = np.asarray([np.nan if v is None else v for v in propensities["raw"]], dtype=float)
    k = np.arange(1, len(theta) + 1)
    fig = figure(6, 4, dpi=100, layout=None)
    ax = fig.subplots()
    ax.plot(k, raw, "o", alpha=0.6, label="click rate ratio (randomized lists)")
    ax.plot(k, theta, "-", label="isotonic estimate")
    ax.set_xlabel("position")
    ax.set_ylabel("examination probability (position 1 = 1)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def write_ranking_report(
    evaluation: Evaluation,
    folder: Path,
    *,
    title: str,
    alphas: list[float],
    served: str,
    propensities: dict[str, Any] | None = None,
    notes: dict[str, Any] | None = None,
) -> dict[str, Path]:
    """Write the report files into ``folder`` (created); returns name -> path."""
    folder.mkdir(parents=True, exist_ok=True)
    files = {
        "ecdf": folder / "ecdf_at_20.png",
        "tradeoff": folder / "alpha_tradeoff.png",
        "metrics": folder / "metrics.csv",
        "markdown": folder / "report.md",
        "html": folder / "report.html",
    }
    shown = [n for n in (LOGGED, RELEVANCE, UNCORRECTED, hybrid_name(0.5), served, "expected revenue p*price",
                         "expected revenue p*ln(price)") if n in evaluation.per_list]
    _plot_ecdf(evaluation, files["ecdf"], list(dict.fromkeys(shown)))
    _plot_tradeoff(evaluation, alphas, files["tradeoff"], served)
    if propensities:
        files["propensities"] = folder / "propensities.png"
        _plot_propensities(propensities, files["propensities"])
    evaluation.table.join(evaluation.areas).to_csv(files["metrics"], float_format="%.6f")

    metrics = evaluation.table.rename(columns=lambda c: c.replace("avg_price", "AvgPrice").replace("ndcg", "NDCG")
                                      .replace("ndcp", "NDCP"))
    facts = {
        "holdout lists": evaluation.lists,
        "lists without a positive label (NDCG undefined, left out of NDCG)": evaluation.lists_without_positive,
        "lists without a purchase (NDCP undefined, left out of NDCP)": evaluation.lists_without_purchase,
        "served re-ranker": served,
        **(notes or {}),
    }

    def by_ordering(table: pd.DataFrame) -> pd.DataFrame:
        return table.rename_axis("ordering").reset_index()

    sections = [
        Section("The holdout", items=tuple(f"{k}: {v}" for k, v in facts.items())),
        Section(
            "Area under the ECDF across lists (change against the logged order)",
            (
                "A smaller area means the lists' values sit further right: better for NDCG and NDCP, dearer for "
                "AvgPrice. NDCG and NDCP use counterfactual gains (observed gain / propensity of the logged "
                "position); lists are weighted by their ideal DCG in means and ECDFs (self-normalised, see "
                "training/ranking/metrics.py). Where no list is longer than 20 items, AvgPrice@20 is the list's "
                "mean price whatever the order (change 0).",
            ),
            by_ordering(auc_table(evaluation, 20)),
        ),
        Section("The same at k = 10", table=by_ordering(auc_table(evaluation, 10)), level=3),
        Section("Mean metrics (over the lists where each is defined)",
                table=by_ordering(metrics.map(lambda v: f"{v:.4f}"))),
        Section("ECDF across the holdout lists at k = 20", image=files["ecdf"].name),
        Section("Rank-product hybrid across alpha", image=files["tradeoff"].name),
    ]
    if propensities:
        sections.append(Section("Position propensities", image=files["propensities"].name))
    files["markdown"].write_text(markdown(title, sections))
    files["html"].write_text(html_page(title, sections, folder))
    return files
