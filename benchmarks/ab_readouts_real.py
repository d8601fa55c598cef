"""The A/B readout on two real experiments, each figure beside a plain statsmodels / scipy computation.

* Udacity landing-page test (``../shared/data/udacity_ab_data/ab_data.csv.zip``, 294,478 rows, 2017-01-02..24):
  rows whose group and landing page disagree (a control user shown the new page, or the reverse) are dropped,
  then duplicated users (their first exposure kept); the counts are printed. One look per day, so the
  readout's sequential interval and SRM test see the test as it would have run.
* Hillstrom MineThatData e-mail experiment (``../shared/data/hillstrom_email_minethatdata/hillstrom.csv``,
  64,000 customers, three arms: no e-mail (control), men's, women's e-mail): conversion, spend per customer
  (revenue per visitor) and spend per buyer (order value), Holm over the two e-mails, CUPED on last year's spend
  (``history``). All customers were mailed on one day: one look.

Both go through the same code as the daily DAG (``monitoring.ab_readouts.readout.build_panel`` and ``readout``), from
unit tables shaped like the Spark join's output. Run: ``python benchmarks/ab_readouts_real.py``
(``--data`` to point elsewhere). Prints the readout's figures, statsmodels' figures on the same numbers, the
largest difference between them, and the decision with its reason.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from config.experiments import ExperimentConfig, ExperimentRegistry  # noqa: E402
from monitoring.ab_readouts.readout import build_panel, readout  # noqa: E402

DATA = REPO.parent / "shared" / "data"
UDACITY = Path("udacity_ab_data") / "ab_data.csv.zip"
HILLSTROM = Path("hillstrom_email_minethatdata") / "hillstrom.csv"
HILLSTROM_DAY = dt.date(2008, 3, 1)  # the challenge does not date the mailing; one look either way
HILLSTROM_ARMS = {"No E-Mail": "no_email", "Mens E-Mail": "mens_email", "Womens E-Mail": "womens_email"}


@dataclass(frozen=True)
class Cleaning:
    rows: int
    mismatched: int  # group and landing page disagree
    duplicated_users: int  # further rows of a user already seen (after dropping mismatches)
    kept: int


def load_udacity(data: Path = DATA) -> tuple[pd.DataFrame, Cleaning]:
    """The Udacity rows after cleaning (one row per user, first exposure), and what was dropped."""
    with zipfile.ZipFile(data / UDACITY) as archive:
        frame = pd.read_csv(archive.open("ab_data.csv"), parse_dates=["timestamp"])
    matched = frame[(frame.group == "treatment") == (frame.landing_page == "new_page")]
    ordered = matched.sort_values(["user_id", "timestamp"], kind="stable")
    clean = ordered[~ordered.user_id.duplicated(keep="first")].reset_index(drop=True)
    cleaning = Cleaning(len(frame), len(frame) - len(matched), len(matched) - len(clean), len(clean))
    return clean, cleaning


def _unit_tables(frame: pd.DataFrame, *, unit, variant, day, converted, revenue, pre_revenue=None):
    """``ab_units`` / ``ab_unit_days``-shaped frames (one outcome row per unit, on its exposure day)."""
    n = len(frame)
    units = pd.DataFrame({
        "experiment_id": "real",
        "unit_id": frame[unit].astype(str).to_numpy(),
        "variant": variant,
        "exposure_date": day,
        "pre_sessions": np.zeros(n, np.int64),
        "pre_conversions": np.zeros(n, np.int64),
        "pre_revenue": np.zeros(n) if pre_revenue is None else pre_revenue,
    })
    days = pd.DataFrame({
        "experiment_id": "real",
        "unit_id": units.unit_id,
        "day": day,
        "sessions": np.ones(n, np.int64),
        "converted_sessions": converted.astype(np.int64),
        "orders": converted.astype(np.int64),
        "revenue": revenue.astype(float),
        "pageviews": np.ones(n, np.int64),
        "page_load_ms_sum": np.zeros(n),
        "js_errors": np.zeros(n, np.int64),
        "http_5xx": np.zeros(n, np.int64),
    })
    return units, days


def udacity_readout(clean: pd.DataFrame, registry: ExperimentRegistry) -> tuple[dict, object]:
    days = clean.timestamp.dt.date
    cfg = ExperimentConfig(
        name="Udacity landing page (old_page vs new_page)",
        variants=[{"name": "control", "weight": 0.5}, {"name": "treatment", "weight": 0.5}],
        start_date=days.min(), end_date=days.max(), primary_metric="conversion_rate",
        min_detectable_effect=0.05,  # not stated by the source: a 5% relative change, about 0.6 points
    )
    units, unit_days = _unit_tables(clean, unit="user_id", variant=clean.group.to_numpy(), day=days.to_numpy(),
                                    converted=clean.converted.to_numpy(), revenue=np.zeros(len(clean)))
    panel = build_panel(units, unit_days, cfg, cfg.end_date)
    return readout(panel, cfg, registry, experiment_id="udacity_landing_page", run_date=cfg.end_date,
                   mismatches=[]), panel


def hillstrom_readout(frame: pd.DataFrame, registry: ExperimentRegistry) -> tuple[dict, object]:
    cfg = ExperimentConfig(
        name="Hillstrom e-mail (no e-mail vs men's vs women's)",
        variants=[{"name": v, "weight": 1 / 3} for v in HILLSTROM_ARMS.values()],
        start_date=HILLSTROM_DAY, end_date=HILLSTROM_DAY, primary_metric="conversion_rate",
        secondary_metrics=["revenue_per_visitor", "average_order_value"], min_detectable_effect=0.2,
    )
    frame = frame.reset_index(drop=True).assign(unit=lambda f: f.index.map(lambda i: f"c{i:05d}"))
    units, unit_days = _unit_tables(frame, unit="unit", variant=frame.segment.map(HILLSTROM_ARMS).to_numpy(),
                                    day=HILLSTROM_DAY, converted=frame.conversion.to_numpy(),
                                    revenue=frame.spend.to_numpy(), pre_revenue=frame.history.to_numpy())
    panel = build_panel(units, unit_days, cfg, cfg.end_date)
    return readout(panel, cfg, registry, experiment_id="hillstrom_email", run_date=HILLSTROM_DAY,
                   mismatches=[]), panel


def statsmodels_baseline(panel, metric: str) -> list[dict]:
    """The same comparisons computed directly with statsmodels (and scipy for the split)."""
    from statsmodels.stats.multitest import multipletests
    from statsmodels.stats.proportion import confint_proportions_2indep, proportions_ztest
    from statsmodels.stats.weightstats import CompareMeans, DescrStatsW

    values, valid = panel.metric(metric)
    y, ok = values[:, -1], valid[:, -1]
    control = y[ok & (panel.arm == 0)]
    rows = []
    for j, variant in enumerate(panel.variants[1:], start=1):
        treated = y[ok & (panel.arm == j)]
        if metric == "conversion_rate":
            z, p = proportions_ztest([treated.sum(), control.sum()], [len(treated), len(control)])
            low, high = confint_proportions_2indep(treated.sum(), len(treated), control.sum(), len(control),
                                                   method="wald")
        else:
            compare = CompareMeans(DescrStatsW(treated), DescrStatsW(control))
            z, p, _ = compare.ttest_ind(usevar="unequal")
            low, high = compare.tconfint_diff(usevar="unequal")
        rows.append({"variant": variant, "difference": treated.mean() - control.mean(), "ci_low": low,
                     "ci_high": high, "statistic": z, "p_value": p})
    for row, adjusted in zip(rows, multipletests([r["p_value"] for r in rows], method="holm")[1], strict=True):
        row["p_value_holm"] = adjusted
    return rows


def ancova_baseline(panel, metric: str, covariate: str) -> list[dict]:
    """statsmodels OLS of the outcome on the arm and the pre-period covariate: what CUPED approximates."""
    import statsmodels.api as sm

    values, _ = panel.metric(metric)
    rows = []
    for j, variant in enumerate(panel.variants[1:], start=1):
        keep = (panel.arm == 0) | (panel.arm == j)
        design = sm.add_constant(np.column_stack([(panel.arm[keep] == j).astype(float),
                                                  panel.covariates[covariate][keep]]))
        fit = sm.OLS(values[keep, -1], design).fit(cov_type="HC1")
        rows.append({"variant": variant, "difference": fit.params[1], "p_value": fit.pvalues[1]})
    return rows


def _print_comparison(record: dict, panel, metric: str) -> float:
    ours = record["fixed_horizon"][metric]
    theirs = statsmodels_baseline(panel, metric)
    worst = 0.0
    print(f"  {metric}:")
    for a, b in zip(ours, theirs, strict=True):
        print(f"    {a['variant']:<13} control {a['control_mean']:.5g}  treatment {a['treatment_mean']:.5g}  "
              f"lift {a['relative_lift']:+.2%}")
        print(f"      readout     diff {a['difference']:+.6f} CI [{a['ci_low']:+.6f}, {a['ci_high']:+.6f}] "
              f"stat {a['statistic']:+.4f} p {a['p_value']:.4g} p_holm {a['p_value_holm']:.4g} ({a['test']})")
        print(f"      statsmodels diff {b['difference']:+.6f} CI [{b['ci_low']:+.6f}, {b['ci_high']:+.6f}] "
              f"stat {b['statistic']:+.4f} p {b['p_value']:.4g} p_holm {b['p_value_holm']:.4g}")
        if a.get("bootstrap_ci_low") is not None:
            print(f"      bootstrap   CI [{a['bootstrap_ci_low']:+.6f}, {a['bootstrap_ci_high']:+.6f}] "
                  f"relative [{a['bootstrap_relative_ci_low']:+.2%}, {a['bootstrap_relative_ci_high']:+.2%}]")
        if a.get("cuped") and a["cuped"]["theta"] != 0:  # no pre-period data (Udacity): nothing to adjust
            c = a["cuped"]
            print(f"      CUPED       diff {c['difference']:+.6f} CI [{c['ci_low']:+.6f}, {c['ci_high']:+.6f}] "
                  f"p {c['p_value']:.4g}, variance reduction {c['variance_reduction']:.2%}")
        s = record["metrics"][metric]["sequential"][a["variant"]]
        print(f"      always-valid relative lift {s['relative_lift']:+.2%} CI [{s['ci_low']:+.2%}, "
              f"{s['ci_high']:+.2%}] p {s['p_value']:.4g} p_holm {s['p_value_holm']:.4g}")
        for key in ("difference", "ci_low", "ci_high", "statistic", "p_value", "p_value_holm"):
            worst = max(worst, abs(a[key] - b[key]))
    return worst


def _print_srm(record: dict) -> None:
    from scipy import stats

    srm = record["srm"]
    counts = np.array(srm["counts"], float)
    reference = stats.chisquare(counts, counts.sum() * np.array(srm["expected_shares"]))
    print(f"  split: units {srm['counts']}, shares {[round(s, 4) for s in srm['observed_shares']]}; chi-square p "
          f"{srm['chi_square_p']:.4g} (scipy {reference.pvalue:.4g}); sequential p {srm['sequential_p']:.4g}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA, help="the shared data folder")
    args = parser.parse_args(argv)
    registry = ExperimentRegistry(experiments={})

    began = time.perf_counter()
    clean, cleaning = load_udacity(args.data)
    record, panel = udacity_readout(clean, registry)
    seconds = time.perf_counter() - began
    print(f"Udacity landing-page test: {cleaning.rows:,} rows; dropped {cleaning.mismatched:,} with group and "
          f"landing page disagreeing and {cleaning.duplicated_users:,} duplicated user row(s); "
          f"{cleaning.kept:,} users kept, {len(panel.looks)} daily looks ({seconds:.1f} s with loading)")
    _print_srm(record)
    worst = _print_comparison(record, panel, "conversion_rate")
    print(f"  largest |readout - statsmodels| over every figure: {worst:.2e}")
    print(f"  decision: {record['decision']['status']}: {record['decision']['reason']}")
    first_call = next((h["date"] for h in record["history"] if h["status"] != "keep running"), None)
    print(f"  first daily look with a decision other than 'keep running': {first_call}")

    began = time.perf_counter()
    frame = pd.read_csv(args.data / HILLSTROM)
    record, panel = hillstrom_readout(frame, registry)
    seconds = time.perf_counter() - began
    print(f"\nHillstrom e-mail experiment: {len(frame):,} customers, arms {frame.segment.value_counts().to_dict()} "
          f"({seconds:.1f} s with loading)")
    _print_srm(record)
    worst = 0.0
    for metric in ("conversion_rate", "revenue_per_visitor", "average_order_value"):
        worst = max(worst, _print_comparison(record, panel, metric))
    print(f"  largest |readout - statsmodels| over every figure: {worst:.2e}")
    for row in ancova_baseline(panel, "revenue_per_visitor", "pre_revenue"):
        print(f"  statsmodels OLS spend ~ arm + history ({row['variant']}): {row['difference']:+.6f} "
              f"p {row['p_value']:.4g}")
    print(f"  decision: {record['decision']['status']}: {record['decision']['reason']}")


if __name__ == "__main__":
    main()
