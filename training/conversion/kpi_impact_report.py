"""The KPI impact report: Markdown, HTML (plots embedded), JSON and the plots of a :class:`KpiImpactResult`.

Rendering only; the figures come from :func:`training.conversion.kpi_impact.analyze_kpi_impact`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from training.conversion.kpi_impact import PER_100K, KpiImpactResult
from training.shared.metrics import expected_calibration_error
from training.shared.report import Section, figure, finite, html_page, markdown, save


# --- the report ----------------------------------------------------------------------------------------------------
def write_report(
    result: KpiImpactResult,
    out_dir: Path,
    title: str,
    *,
    calibration: Mapping[str, tuple[np.ndarray, np.ndarray]] | None = None,
) -> dict[str, Path]:
    """Write ``report.md``, ``report.html`` (images embedded), ``impact.json`` and the plots into ``out_dir``.

    Args:
        result: what :func:`analyze_kpi_impact` returned.
        out_dir: created if needed; files of an earlier report are overwritten.
        title: the report's heading.
        calibration: curves for the reliability diagram, name -> (labels, probabilities)
            [default: the analysed model on the holdout, ``{"model": (result.y_true, result.p)}``].

    Returns:
        name -> path: ``markdown``, ``html``, ``json`` and one entry per plot.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    curves = dict(calibration or {"model": (result.y_true, result.p)})
    paths = {
        "importance_plot": _plot_importance(result, out_dir / "importance.png"),
        "what_if_plot": _plot_what_if(result, out_dir / "what_if.png"),
        "flips_plot": _plot_flips(result, out_dir / "flips.png"),
        "reliability_plot": _plot_reliability(curves, out_dir / "reliability.png"),
    }
    if len(result.stages) > 1:
        paths["stages_plot"] = _plot_stages(result, out_dir / "stages.png")
    sections = _sections(result, curves)
    paths["markdown"] = out_dir / "report.md"
    paths["markdown"].write_text(markdown(title, sections))
    paths["html"] = out_dir / "report.html"
    paths["html"].write_text(html_page(title, sections, out_dir))
    paths["json"] = out_dir / "impact.json"
    paths["json"].write_text(json.dumps(finite(result.to_dict()), indent=2) + "\n")
    return paths


def _fmt(value: float, digits: int = 1) -> str:
    return "n/a" if value is None or not np.isfinite(value) else f"{value:+.{digits}f}"


def _ci(low: float | None, high: float | None) -> str:
    if low is None or high is None:
        return ""
    return f"[{PER_100K * low:+.1f}, {PER_100K * high:+.1f}]"


def _sections(result: KpiImpactResult, curves: Mapping[str, tuple[np.ndarray, np.ndarray]]) -> list[Section]:
    pct = f"{result.rank_at:.0%}"
    has_model_ci = result.n_refits >= 2
    top = result.ranking[0]
    top_flips = {f.threshold_name: f.flips for f in result.flips if f.kpi == top}
    named = [v for k, v in top_flips.items() if k.startswith("top ")]
    expected_top = result.what_if_for(top).delta_conversion_rate * result.sessions
    summary = (
        f"{result.sessions:,} holdout sessions, {result.converted:,} converted (base rate {result.base_rate:.2%}, "
        f"mean predicted {result.mean_prediction:.2%}). Expected-value what-if with {result.n_bootstrap} session "
        f"resamples"
        + (f" and {result.n_refits} refitted models" if has_model_ci else "")
        + f"; permutation importance over {result.importance_repeats} repeats on "
        f"{result.importance_rows:,} sessions; {result.seconds:.1f} s."
    )
    ranking = pd.DataFrame(
        {
            "rank": range(1, len(result.ranking) + 1),
            "KPI": result.ranking,
            "improve": [result.directions[k] for k in result.ranking],
            f"Δ conversions /100k at {pct}": [_fmt(result.what_if_for(k).delta_per_100k) for k in result.ranking],
            "95% CI, sessions": [
                _ci(result.what_if_for(k).ci_low, result.what_if_for(k).ci_high) for k in result.ranking
            ],
            **(
                {
                    "95% CI, model + sessions": [
                        _ci(result.what_if_for(k).model_ci_low, result.what_if_for(k).model_ci_high)
                        for k in result.ranking
                    ]
                }
                if has_model_ci
                else {}
            ),
            "non-converted Δ /100k": [
                _fmt(result.what_if_for(k, population="non_converted").delta_per_100k) for k in result.ranking
            ],
            "ROC-AUC drop": [_fmt(result.importance_for(k).roc_auc_drop, 4) for k in result.ranking],
            "flips": [result.flips_for(k).flips for k in result.ranking],
            "R² with other KPIs": [f"{result.collinearity_r2[k]:.2f}" for k in result.ranking],
        }
    )
    collinear = [k for k in result.ranking if result.collinearity_r2[k] >= 0.9]
    reading = [
        f"Ranked by the change in expected conversions when the KPI alone improves by {pct} on every holdout "
        "session (the model's prediction after minus before, averaged). The session interval holds the model "
        "fixed: it says how well the holdout pins down this model's figure, not whether the model is right.",
    ]
    if has_model_ci:
        reading.append(
            "The model + sessions interval also refits the model on bootstrap resamples of its training rows: it "
            "is the interval for the effect itself. A KPI whose interval contains 0 is not shown to matter."
        )
    else:
        reading.append("No refitted models were given: model uncertainty is not in these intervals.")
    if collinear:
        reading.append(
            f"R² ≥ 0.9 with the other KPIs ({', '.join(collinear)}): these move together in the data, so the model "
            "cannot tell which of them conversion responds to; their individual figures and importances can trade "
            "credit between them and are not attributable to one KPI."
        )
    by_pct = pd.DataFrame(
        {
            "KPI": list(result.ranking),
            **{
                f"{x:.0%}": [
                    f"{_fmt(result.what_if_for(k, x).delta_per_100k)} {_ci(*result.what_if_for(k, x).interval)}"
                    for k in result.ranking
                ]
                for x in result.improvements
            },
        }
    )
    by_pct_nc = pd.DataFrame(
        {
            "KPI": list(result.ranking),
            **{
                f"{x:.0%}": [
                    f"{_fmt(result.what_if_for(k, x, 'non_converted').delta_per_100k)} "
                    f"{_ci(*result.what_if_for(k, x, 'non_converted').interval)}"
                    for k in result.ranking
                ]
                for x in result.improvements
            },
        }
    )
    stage_sections = _stage_sections(result) if len(result.stages) > 1 else []
    importance = pd.DataFrame(
        [
            {
                "KPI": r.kpi,
                "ROC-AUC drop": f"{r.roc_auc_drop:+.4f} ± {r.roc_auc_drop_std:.4f}",
                "log-loss increase": f"{r.log_loss_increase:+.5f} ± {r.log_loss_increase_std:.5f}",
            }
            for r in sorted(result.importance, key=lambda r: -np.nan_to_num(r.roc_auc_drop, nan=-np.inf))
        ]
    )
    names = list(dict.fromkeys(f.threshold_name for f in result.flips))
    flips = pd.DataFrame(
        {
            "KPI": list(result.ranking),
            f"expected Δ conversions (this holdout, {pct})": [
                f"{result.what_if_for(k).delta_conversion_rate * result.sessions:+.1f}" for k in result.ranking
            ],
            **{n: [result.flips_for(k, n).flips for k in result.ranking] for n in names},
        }
    )
    thresholds = ", ".join(
        f"{n} = {next(f.threshold for f in result.flips if f.threshold_name == n):.4f}" for n in names
    )
    spread = f"{min(named)}..{max(named)}" if named else "n/a"
    ece = {name: expected_calibration_error(y, p) for name, (y, p) in curves.items()}
    return [
        Section("Summary", (summary,)),
        Section(f"Ranking: {pct} improvement, all holdout sessions", tuple(reading), ranking, "what_if.png"),
        Section(
            "What-if by improvement, all holdout sessions (Δ conversions per 100k sessions, 95% CI)",
            (),
            by_pct,
        ),
        Section(
            "What-if by improvement, non-converted holdout sessions",
            (
                "The same improvements applied to the sessions that did not convert: what the improvement would have "
                "recovered among lost sessions, per 100k of them.",
            ),
            by_pct_nc,
        ),
        *stage_sections,
        Section(
            "Permutation importance",
            (
                "Drop in ROC-AUC and increase in log loss when the KPI's values are shuffled across sessions (mean ± "
                "standard deviation over repeats). Importance says what the model uses, not what an improvement "
                "would change: a KPI the model needs to separate sessions can still have a small what-if.",
            ),
            importance,
            "importance.png",
        ),
        Section(
            "The flip count (common practice) beside the expected value",
            (
                f"Sessions whose prediction crosses a threshold from below when the KPI improves by {pct}. "
                f"Thresholds: {thresholds}. The headline threshold ({result.threshold:.4f}) is the "
                f"{result.threshold_rule}.",
                f"For {top}, the count runs {spread} between the top-10% and top-1% thresholds while the expected "
                f"change is {expected_top:+.1f} converted sessions on this holdout at any threshold: the flip count is "
                "a property of the threshold as much as of the KPI, and at 0.5 (the threshold accuracy uses) it is "
                "usually 0. The expected-value figure does not depend on a threshold.",
            ),
            flips,
            "flips.png",
        ),
        Section(
            "Calibration",
            (
                "The what-if is an expected value, so it is only as good as the probabilities: "
                + "; ".join(f"{name}: ECE {v:.4f}" for name, v in ece.items())
                + " (10 equal-width bins, as logged). The diagram bins sessions by deciles of the predicted "
                "probability, because at a few percent conversion nearly every session falls in the first "
                "equal-width bin.",
            ),
            None,
            "reliability.png",
        ),
    ]


def _stage_sections(result: KpiImpactResult) -> list[Section]:
    """The what-if split by funnel stage, at every improvement, on all and on non-converted sessions."""
    sections = []
    for population, heading in (("all", "all holdout sessions"), ("non_converted", "non-converted holdout sessions")):
        rows = []
        for kpi in result.ranking:
            for x in result.improvements:
                w = result.what_if_for(kpi, x, population)
                row = {"KPI": kpi, "improvement": f"{x:.0%}", "Δ /100k": f"{_fmt(w.delta_per_100k)} {_ci(*w.interval)}"}
                for part in w.stages:
                    low, high = (part.model_ci_low, part.model_ci_high) if part.model_ci_low is not None else (
                        part.ci_low, part.ci_high)
                    delta = _fmt(PER_100K * part.delta_conversion_rate)
                    row[f"{part.stage} stage Δ /100k"] = f"{delta} {_ci(low, high)}"
                row["main stage"] = w.main_stage
                rows.append(row)
        sections.append(Section(
            f"By funnel stage, {heading}",
            (
                f"P(convert) = P({result.stages[0]}) x P(convert | {result.stages[0]}). Each change is split between "
                "the stages by the Shapley rule for a product (the two parts add up to the change exactly); the main "
                "stage is the one credited with most of it. A KPI that slows checkout costs sales in the "
                f"{result.stages[1]} stage, one that puts shoppers off filling a basket in the {result.stages[0]} "
                "stage.",
            ) if population == "all" else (),
            pd.DataFrame(rows),
            "stages.png" if population == "all" else None,
        ))
    return sections


# --- plots (on the shared renderer's Agg figures) -------------------------------------------------------------------
def _plot_importance(result: KpiImpactResult, path: Path) -> Path:
    order = [r for r in sorted(result.importance, key=lambda r: np.nan_to_num(r.roc_auc_drop, nan=-np.inf))]
    fig = figure(9, 1.5 + 0.22 * len(order))
    ax_auc, ax_ll = fig.subplots(1, 2, sharey=True)
    names = [r.kpi for r in order]
    ax_auc.barh(names, [r.roc_auc_drop for r in order], xerr=[r.roc_auc_drop_std for r in order], color="#4c72b0")
    ax_ll.barh(
        names, [r.log_loss_increase for r in order], xerr=[r.log_loss_increase_std for r in order], color="#dd8452"
    )
    ax_auc.set_xlabel("ROC-AUC drop when shuffled")
    ax_ll.set_xlabel("log-loss increase when shuffled")
    for ax in (ax_auc, ax_ll):
        ax.axvline(0, color="#555", lw=0.8)
        ax.tick_params(labelsize=8)
    fig.suptitle(f"Permutation importance ({result.importance_repeats} repeats)", fontsize=10)
    return save(fig, path)


def _plot_what_if(result: KpiImpactResult, path: Path) -> Path:
    fig = figure(11, 1.5 + 0.22 * len(result.kpis))
    ax_bar, ax_line = fig.subplots(1, 2, width_ratios=[3, 2])
    order = list(reversed(result.ranking))
    rows = [result.what_if_for(k) for k in order]
    est = np.array([r.delta_per_100k for r in rows])
    low = np.array([PER_100K * r.interval[0] for r in rows])
    high = np.array([PER_100K * r.interval[1] for r in rows])
    ax_bar.barh(order, est, xerr=[est - low, high - est], color="#55a868", ecolor="#333", capsize=2)
    ax_bar.axvline(0, color="#555", lw=0.8)
    kind = "model + sessions" if result.n_refits >= 2 else "sessions"
    ax_bar.set_xlabel(f"Δ converted sessions per 100k at {result.rank_at:.0%} (95% CI, {kind})")
    ax_bar.tick_params(labelsize=8)
    xs = [100 * x for x in result.improvements]
    for kpi in result.ranking[:6]:
        series = [result.what_if_for(kpi, x) for x in result.improvements]
        ys = [r.delta_per_100k for r in series]
        ax_line.plot(xs, ys, marker="o", ms=3, label=kpi)
        ax_line.fill_between(
            xs, [PER_100K * r.interval[0] for r in series], [PER_100K * r.interval[1] for r in series], alpha=0.12
        )
    ax_line.set_xlabel("improvement of the KPI (%)")
    ax_line.set_ylabel("Δ converted sessions per 100k")
    ax_line.set_xticks(xs)
    ax_line.legend(fontsize=7)
    fig.suptitle("What-if: expected conversions gained when one KPI improves", fontsize=10)
    return save(fig, path)


def _plot_stages(result: KpiImpactResult, path: Path) -> Path:
    fig = figure(9, 1.5 + 0.22 * len(result.kpis))
    ax = fig.subplots()
    order = list(reversed(result.ranking))
    y = np.arange(len(order))
    height = 0.8 / len(result.stages)
    colors = ("#4c72b0", "#c44e52", "#55a868")
    for c, stage in enumerate(result.stages):
        parts = [result.what_if_for(k).stage(stage) for k in order]
        est = np.array([PER_100K * p.delta_conversion_rate for p in parts])
        low = np.array([PER_100K * (p.model_ci_low if p.model_ci_low is not None else p.ci_low) for p in parts])
        high = np.array([PER_100K * (p.model_ci_high if p.model_ci_high is not None else p.ci_high) for p in parts])
        ax.barh(y + (c - (len(result.stages) - 1) / 2) * height, est, height, xerr=[est - low, high - est],
                color=colors[c % len(colors)], ecolor="#333", capsize=2, label=f"{stage} stage")
    ax.set_yticks(y, order)
    ax.axvline(0, color="#555", lw=0.8)
    ax.set_xlabel(f"Δ converted sessions per 100k at {result.rank_at:.0%}, by funnel stage (95% CI)")
    ax.tick_params(labelsize=8)
    ax.legend(fontsize=8)
    fig.suptitle("Where each KPI costs conversions: the funnel stage it acts on", fontsize=10)
    return save(fig, path)


def _plot_flips(result: KpiImpactResult, path: Path) -> Path:
    fig = figure(7.5, 4)
    ax = fig.subplots()
    named = [n for n in dict.fromkeys(f.threshold_name for f in result.flips) if n.startswith("top ")]
    for kpi in result.ranking[:5]:
        rows = [result.flips_for(kpi, n) for n in named]
        share = [100 * r.predicted_positive / result.sessions for r in rows]
        (line,) = ax.plot(share, [r.flips for r in rows], marker="o", ms=3, label=f"{kpi}: flips")
        expected = result.what_if_for(kpi).delta_conversion_rate * result.sessions
        ax.axhline(expected, color=line.get_color(), ls="--", lw=0.9)
    ax.set_xscale("log")
    ax.set_xlabel("sessions predicted to convert at the threshold (% of holdout, log scale)")
    ax.set_ylabel("sessions")
    ax.set_title(f"0→1 flips at {result.rank_at:.0%} vs threshold; dashed: expected Δ conversions", fontsize=10)
    ax.legend(fontsize=7)
    return save(fig, path)


def _plot_reliability(curves: Mapping[str, tuple[np.ndarray, np.ndarray]], path: Path) -> Path:
    from sklearn.calibration import calibration_curve

    fig = figure(5.5, 5)
    ax, ax_hist = fig.subplots(2, 1, height_ratios=[3, 1], sharex=True)
    top = 0.0
    eces = []
    for name, (y, p) in curves.items():
        y, p = np.asarray(y, dtype=np.float64), np.asarray(p, dtype=np.float64)
        observed, predicted = calibration_curve(y, p, n_bins=10, strategy="quantile")
        ax.plot(predicted, observed, marker="o", ms=3, label=name)
        ax_hist.hist(p, bins=50, histtype="step", label=name)
        top = max(top, float(predicted.max()), float(observed.max()))
        eces.append(f"{name} {expected_calibration_error(y, p):.4f}")
    ax.plot([0, top * 1.05], [0, top * 1.05], color="#888", ls=":", lw=1)
    ax.set_ylabel("observed conversion rate")
    ax.legend(fontsize=7)
    ax.set_title("Reliability (decile bins) — ECE " + ", ".join(eces), fontsize=9)
    ax_hist.set_xlabel("predicted P(convert)")
    ax_hist.set_ylabel("sessions")
    ax_hist.set_xlim(0, top * 1.05)
    ax_hist.tick_params(labelsize=7)
    return save(fig, path)
