"""The promotion model's evaluation on held-out randomized offers, and its report (markdown + HTML with PNG plots).

Everything is measured on randomized offers of customers the model never saw, in EUR of 10-week profit:

* per coupon: the Qini curve and AUUC of the model's predicted uplift of that coupon, on the offers that got it
  or no coupon (``auuc.<coupon>``, ``auuc_gain.<coupon>`` = AUUC above random targeting);
* the policy: its uplift curve (:func:`training.promotion.uplift_metrics.policy_curve`), ``policy_auuc`` (the gate
metric),
  and the lines of two blanket policies: random targeting (a random coupon) and everyone getting the most
  popular coupon;
* the incremental profit per 1,000 customers of the policy and of every blanket coupon against no coupon, with
  90% bootstrap intervals (offers resampled).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from training.promotion.uplift_metrics import (
    NO_COUPON,
    PolicyCurve,
    arm_means,
    auuc,
    auuc_gain,
    policy_curve,
    policy_value,
    qini_curve,
    uplift_curve,
)
from training.shared.metrics import bootstrap_interval
from training.shared.report import Section, figure, finite, html_page, markdown, save

PER = 1000  # profit is reported per 1,000 customers


@dataclass
class PromotionEvaluation:
    """Curves and figures of one model on one held-out set of randomized offers."""

    coupons: list[str]
    popular: str
    n_rows: int
    arm_counts: dict[str, int]
    arm_means: dict[str, float]  # EUR per offer
    policy: PolicyCurve
    policy_shares: dict[str, float]  # share of customers the policy gives each coupon (none included)
    qini: dict[str, tuple[np.ndarray, np.ndarray]]
    uplift_curves: dict[str, tuple[np.ndarray, np.ndarray]]
    auuc: dict[str, float]
    auuc_gain: dict[str, float]
    per_1000: dict[str, tuple[float, float, float]] = field(default_factory=dict)  # name -> (estimate, low, high)

    @property
    def random_value(self) -> float:
        """Incremental profit per customer of a random coupon for everyone (the random-targeting line's end)."""
        return float(np.mean([self.arm_means[c] - self.arm_means[NO_COUPON] for c in self.coupons]))

    @property
    def popular_value(self) -> float:
        return self.arm_means[self.popular] - self.arm_means[NO_COUPON]

    def metrics(self) -> dict[str, float]:
        out = {
            "policy_auuc": self.policy.auuc,
            "policy_auuc_vs_random": self.policy.auuc - self.random_value / 2.0,
            "policy_auuc_vs_popular": self.policy.auuc - self.popular_value / 2.0,
            "random_auuc": self.random_value / 2.0,
            "popular_auuc": self.popular_value / 2.0,
            "policy_coupon_share": 1.0 - self.policy_shares.get(NO_COUPON, 0.0),
            "holdout_offers": float(self.n_rows),
        }
        out.update({f"auuc.{c}": v for c, v in self.auuc.items()})
        out.update({f"auuc_gain.{c}": v for c, v in self.auuc_gain.items()})
        for name, (estimate, low, high) in self.per_1000.items():
            out[f"profit_per_1000.{name}"] = estimate
            out[f"profit_per_1000.{name}.low"] = low
            out[f"profit_per_1000.{name}.high"] = high
        return out


def evaluate_policy(
    predicted: pd.DataFrame, y: np.ndarray, arm: np.ndarray, coupons: list[str], *, popular: str,
    n_bootstrap: int, seed: int,
) -> PromotionEvaluation:
    """Evaluate the model's output ``predicted`` (``uplift_<coupon>``, ``best_coupon``, ``expected_incremental_profit``)
    against the outcomes ``y`` (EUR) of randomized ``arm``s; ``n_bootstrap`` 0 skips the intervals."""
    y, arm = np.asarray(y, np.float64), np.asarray(arm, dtype=object)
    recommended = predicted["best_coupon"].to_numpy(dtype=object)
    gain = predicted["expected_incremental_profit"].to_numpy(np.float64)
    qini, curves, areas, gains = {}, {}, {}, {}
    for c in coupons:
        rows = (arm == c) | (arm == NO_COUPON)
        score, treated = predicted[f"uplift_{c}"].to_numpy(np.float64)[rows], (arm[rows] == c).astype(int)
        if treated.sum() == 0 or treated.sum() == rows.sum():
            continue
        qini[c] = qini_curve(y[rows], score, treated)
        curves[c] = uplift_curve(y[rows], score, treated)
        areas[c], gains[c] = auuc(y[rows], score, treated), auuc_gain(y[rows], score, treated)
    shares = {c: float(np.mean(recommended == c)) for c in [NO_COUPON, *coupons]}
    evaluation = PromotionEvaluation(
        coupons=list(coupons), popular=popular, n_rows=len(y),
        arm_counts={c: int((arm == c).sum()) for c in [NO_COUPON, *coupons]},
        arm_means=arm_means(y, arm, coupons), policy=policy_curve(y, arm, recommended, gain), policy_shares=shares,
        qini=qini, uplift_curves=curves, auuc=areas, auuc_gain=gains,
    )
    if n_bootstrap:
        estimators = {"policy": lambda i: policy_value(y[i], arm[i], recommended[i])}
        for c in coupons:
            estimators[f"all_{c}"] = lambda i, c=c: _difference(y[i], arm[i], c)
        estimators["random_coupon"] = lambda i: float(np.mean([_difference(y[i], arm[i], c) for c in coupons]))
        all_rows = np.arange(len(y))
        for k, (name, fn) in enumerate(estimators.items()):
            low, high = bootstrap_interval(fn, len(y), n_bootstrap, seed + k)
            evaluation.per_1000[name] = (PER * fn(all_rows), PER * low, PER * high)
    return evaluation


def _difference(y: np.ndarray, arm: np.ndarray, coupon: str) -> float:
    got, control = arm == coupon, arm == NO_COUPON
    return float(y[got].mean() - y[control].mean()) if got.any() and control.any() else float("nan")


# --- report --------------------------------------------------------------------------------------------------------
def write_report(evaluation: PromotionEvaluation, out_dir: Path, title: str, *, coupons: list[str]) -> dict[str, Path]:
    """Write ``report.md``, ``report.html`` (images embedded), ``evaluation.json`` and the plots into ``out_dir``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {
        "policy_plot": _plot_policy(evaluation, out_dir / "policy_curve.png"),
        "qini_plot": _plot_qini(evaluation, out_dir / "qini_per_coupon.png"),
        "profit_plot": _plot_profit(evaluation, out_dir / "profit_per_1000.png"),
    }
    sections = _sections(evaluation)
    paths["markdown"] = out_dir / "report.md"
    paths["markdown"].write_text(markdown(title, sections))
    paths["html"] = out_dir / "report.html"
    paths["html"].write_text(html_page(title, sections, out_dir))
    paths["json"] = out_dir / "evaluation.json"
    paths["json"].write_text(json.dumps(finite(evaluation.metrics()), indent=2, sort_keys=True) + "\n")
    return paths


def _sections(e: PromotionEvaluation) -> list[Section]:
    m = e.metrics()
    summary = (
        f"{e.n_rows:,} held-out randomized offers (customers the model never saw): "
        + ", ".join(f"{c} {n:,}" for c, n in e.arm_counts.items())
        + f". The policy gives a coupon to {m['policy_coupon_share']:.0%} of them ("
        + ", ".join(f"{c} {s:.0%}" for c, s in e.policy_shares.items() if s > 0)
        + f"). Most popular coupon (most redemptions in the training offers): {e.popular}."
    )
    profit = pd.DataFrame(
        [
            {"policy": name, "EUR per 1,000 customers": f"{est:+,.0f}", "90% interval": f"[{lo:+,.0f}, {hi:+,.0f}]"}
            for name, (est, lo, hi) in e.per_1000.items()
        ]
    )
    auuc_table = pd.DataFrame(
        [{"curve": "policy", "AUUC (EUR/customer)": f"{e.policy.auuc:+.3f}",
          "vs random targeting": f"{m['policy_auuc_vs_random']:+.3f}",
          "vs everyone gets " + e.popular: f"{m['policy_auuc_vs_popular']:+.3f}"}]
        + [{"curve": c, "AUUC (EUR/customer)": f"{e.auuc[c]:+.3f}",
            "vs random targeting": f"{e.auuc_gain[c]:+.3f}", "vs everyone gets " + e.popular: ""} for c in e.auuc]
    )
    return [
        Section("Held-out randomized offers", (summary,)),
        Section(
            "Policy vs blanket policies",
            ("Incremental 10-week profit (margin after discount cost) against sending no coupon, estimated on the "
             "randomized offers: for the policy, per coupon it recommends, the offers that got that coupon against "
             "those that got none; intervals from offer resamples. 'all_<coupon>' gives everyone that coupon.",),
            profit if len(profit) else None,
            "profit_per_1000.png",
        ),
        Section(
            "Uplift curves and AUUC",
            ("Customers ranked by the expected gain of the coupon the model picks for them; the curve is the "
             "incremental profit of giving the top k their coupon. AUUC is the area under it with both axes per "
             "customer (EUR per customer); random targeting (a random coupon) and everyone-gets-the-most-popular-"
             "coupon are the straight lines to their overall effect.",),
            auuc_table,
            "policy_curve.png",
        ),
        Section(
            "Qini curves per coupon",
            ("Per coupon, offers of that coupon or none, ranked by the predicted uplift of that coupon "
             "(Radcliffe's Qini: incremental profit counted on the treated).",),
            None,
            "qini_per_coupon.png",
        ),
    ]


def _plot_policy(e: PromotionEvaluation, path: Path) -> Path:
    fig = figure(7, 4.5)
    ax = fig.subplots()
    n = e.policy.k[-1]
    ax.plot(e.policy.k / n, e.policy.gain / n, label=f"model policy (AUUC {e.policy.auuc:+.3f})", color="#4c72b0")
    ax.plot([0, 1], [0, e.random_value], "--", color="#999999", label=f"random coupon ({e.random_value / 2:+.3f})")
    ax.plot([0, 1], [0, e.popular_value], ":", color="#dd8452",
            label=f"everyone gets {e.popular} ({e.popular_value / 2:+.3f})")
    ax.axhline(0, color="black", linewidth=0.5)
    ax.set_xlabel("share of customers targeted (ranked by expected gain)")
    ax.set_ylabel("incremental 10-week profit per customer, EUR")
    ax.legend(fontsize=8)
    return save(fig, path)


def _plot_qini(e: PromotionEvaluation, path: Path) -> Path:
    fig = figure(9, 3.2)
    axes = np.atleast_1d(fig.subplots(1, max(1, len(e.qini)), sharey=True))
    for ax, (coupon, (x, q)) in zip(axes, e.qini.items(), strict=False):
        ax.plot(x / x[-1], q, color="#4c72b0")
        ax.plot([0, 1], [0, q[-1]], "--", color="#999999")
        ax.axhline(0, color="black", linewidth=0.5)
        ax.set_title(f"{coupon}: AUUC {e.auuc[coupon]:+.2f}", fontsize=9)
        ax.set_xlabel("share targeted")
    axes[0].set_ylabel("Qini: incremental profit, EUR")
    return save(fig, path)


def _plot_profit(e: PromotionEvaluation, path: Path) -> Path:
    fig = figure(7, 0.8 + 0.45 * max(1, len(e.per_1000)))
    ax = fig.subplots()
    names = list(e.per_1000)
    est = np.array([e.per_1000[n][0] for n in names])
    err = np.array([[e.per_1000[n][0] - e.per_1000[n][1], e.per_1000[n][2] - e.per_1000[n][0]] for n in names]).T
    ax.barh(names, est, xerr=err if len(names) else None, color=["#4c72b0" if n == "policy" else "#bbbbbb"
                                                                  for n in names])
    ax.axvline(0, color="black", linewidth=0.5)
    ax.set_xlabel("incremental 10-week profit per 1,000 customers, EUR (90% interval)")
    return save(fig, path)
