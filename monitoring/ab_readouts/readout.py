"""The daily A/B readout of one experiment: every look from its start to the run date, and the decision.

Input: the ``ab_units`` and ``ab_unit_days`` partitions the Spark join wrote for the run date
(``monitoring.ab_readouts.exposure_outcomes``). Each day of the experiment is a look: the units exposed by the end of
that
day and their outcomes up to it. For every look the readout computes, per variant and metric, the unit-level
means, the relative lift of each treatment over control with its always-valid (normal-mixture) interval and
anytime-valid p-value (Holm-adjusted over treatments), CUPED-adjusted for the metrics with a pre-experiment
covariate, and the sequential SRM test; the decision is taken at every look so the history shows when it
could first have been called. On the planned end date it adds the fixed-horizon tests (two-proportion z,
Welch with a bootstrap interval, Holm), which are reported but never override the sequential decision:
doing both would spend alpha twice.

Unit-level metrics (a unit = a customer, counted from its first exposure up to the look):

* ``conversion_rate``: share of units with at least one converted session (CUPED covariate: pre-period
  conversions);
* ``revenue_per_visitor``: EUR per unit (CUPED covariate: pre-period revenue);
* ``average_order_value``: EUR per order, per ordering unit (the unit's revenue / its orders);
* guardrails, lower is better: ``page_load_ms`` (mean over the unit's sessions), ``js_error_rate`` and
  ``http_5xx_rate`` (per pageview).

Decision (``decide``), in order: ``invalid`` when plan and record disagree or the split fails the SRM test;
``stop`` when a guardrail is breached (the always-valid interval of its relative change lies above 0 and reaches
past its threshold) or every treatment is significantly worse on the primary metric; ``ship`` when a
treatment is significantly better on the primary metric (the best such); ``stop`` on the planned end date
without a significant effect; else ``keep running``. The reason is always written.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from config.experiments import ExperimentConfig, ExperimentRegistry
from monitoring.ab_readouts import stats as ab_stats

GUARDRAIL_METRICS = ("page_load_ms", "js_error_rate", "http_5xx_rate")
UNITS = {
    "conversion_rate": "share of units",
    "revenue_per_visitor": "EUR per unit",
    "average_order_value": "EUR per order",
    "page_load_ms": "ms",
    "js_error_rate": "errors per pageview",
    "http_5xx_rate": "5xx per pageview",
}
CUPED_COVARIATES = {"conversion_rate": "pre_conversions", "revenue_per_visitor": "pre_revenue"}
STATUSES = ("keep running", "ship", "stop", "invalid")


@dataclass
class Panel:
    """One experiment's units and their cumulative outcomes at each look (looks = days from start on)."""

    looks: list[dt.date]
    variants: list[str]
    arm: np.ndarray  # (units,) index into variants
    exposed: np.ndarray  # (units, looks) bool: exposed by the end of the look's day
    cumulative: dict[str, np.ndarray]  # outcome column -> (units, looks) cumulative sums
    covariates: dict[str, np.ndarray]  # pre-period column -> (units,)
    unit_ids: np.ndarray

    def metric(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """(values, valid): the unit-level metric at every look, and where it is defined."""
        c = self.cumulative
        with np.errstate(divide="ignore", invalid="ignore"):
            if name == "conversion_rate":
                return (c["converted_sessions"] > 0).astype(float), self.exposed
            if name == "revenue_per_visitor":
                return c["revenue"], self.exposed
            if name == "average_order_value":
                return c["revenue"] / c["orders"], self.exposed & (c["orders"] > 0)
            if name == "page_load_ms":
                return c["page_load_ms_sum"] / c["sessions"], self.exposed & (c["sessions"] > 0)
            if name == "js_error_rate":
                return c["js_errors"] / c["pageviews"], self.exposed & (c["pageviews"] > 0)
            if name == "http_5xx_rate":
                return c["http_5xx"] / c["pageviews"], self.exposed & (c["pageviews"] > 0)
        raise KeyError(f"unknown metric {name!r}")


OUTCOME_COLUMNS = ("sessions", "converted_sessions", "orders", "revenue", "pageviews", "page_load_ms_sum",
                   "js_errors", "http_5xx")
COVARIATE_COLUMNS = ("pre_sessions", "pre_conversions", "pre_revenue")


def build_panel(units: pd.DataFrame, unit_days: pd.DataFrame, cfg: ExperimentConfig, last_look: dt.date) -> Panel:
    """The panel of one experiment from its rows of ``ab_units`` / ``ab_unit_days`` (looks start..last_look).

    Units in a variant the registry does not know are kept out (and show up as an SRM or mismatch problem).
    """
    looks = [cfg.start_date + dt.timedelta(days=i) for i in range((last_look - cfg.start_date).days + 1)]
    units = units[units.variant.isin(cfg.variant_names)].sort_values("unit_id").reset_index(drop=True)
    index = pd.Index(units.unit_id)
    look_of = {d: i for i, d in enumerate(looks)}
    # integer positions even when a frame is empty (an experiment with no rows in the lake's dates): numpy refuses
    # the float64 an empty mapped Series gives as an index
    exposure = units.exposure_date.map(lambda d: look_of.get(pd.Timestamp(d).date(), len(looks))).to_numpy(np.int64)
    exposed = exposure[:, None] <= np.arange(len(looks))[None, :]
    rows = index.get_indexer(unit_days.unit_id)
    keep = rows >= 0
    days = unit_days.day[keep].map(lambda d: look_of.get(pd.Timestamp(d).date(), -1)).to_numpy(np.int64)
    rows, ok = rows[keep], days >= 0
    cumulative = {}
    for col in OUTCOME_COLUMNS:
        daily = np.zeros((len(units), len(looks)))
        np.add.at(daily, (rows[ok], days[ok]), unit_days[col][keep].to_numpy(float)[ok])
        cumulative[col] = np.cumsum(daily, axis=1)
    return Panel(
        looks=looks,
        variants=cfg.variant_names,
        arm=units.variant.map({v: i for i, v in enumerate(cfg.variant_names)}).to_numpy(np.int64),
        exposed=exposed,
        cumulative=cumulative,
        covariates={c: units[c].to_numpy(float) for c in COVARIATE_COLUMNS},
        unit_ids=units.unit_id.to_numpy(),
    )


def arm_moments(values: np.ndarray, valid: np.ndarray, assignment: np.ndarray) -> tuple[np.ndarray, ...]:
    """Count, mean and unit variance (ddof 1) per arm and look.

    ``values``/``valid``: (units, looks); ``assignment``: (arms, units) 0/1 weights (one row per arm, or one row
    per re-randomised replicate). Returns three (arms, looks) arrays.
    """
    v = np.where(valid, values, 0.0)
    w = valid.astype(float)
    n = assignment @ w
    s = assignment @ v
    ss = assignment @ (v * v)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = s / n
        var = (ss - n * mean**2) / (n - 1)
    return n, mean, np.maximum(var, 0.0)


def cuped_values(values: np.ndarray, valid: np.ndarray, covariate: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """CUPED-adjusted values at every look (theta pooled over the look's units) and the variance reduction."""
    w = valid.astype(float)
    n = w.sum(axis=0)
    x = covariate[:, None] * w
    y = np.where(valid, values, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        mx, my = x.sum(0) / n, y.sum(0) / n
        cov = (x * y).sum(0) / n - mx * my
        var_x = (x * x).sum(0) / n - mx**2
        theta = np.where(var_x > 0, cov / var_x, 0.0)
        adjusted = values - theta[None, :] * (covariate[:, None] - mx[None, :])
        var_y = (y * y).sum(0) / n - my**2
        adj = np.where(valid, adjusted, 0.0)
        var_adj = (adj * adj).sum(0) / n - ((adj.sum(0) / n) ** 2)
        reduction = np.where(var_y > 0, 1.0 - var_adj / var_y, 0.0)
    return adjusted, np.stack([theta, reduction])


def sequential_lift(n, mean, var, tau2: float, alpha: float) -> dict[str, np.ndarray]:
    """Relative lift of every treatment arm (rows 1..) over control (row 0) at every look, always-valid.

    ``n``, ``mean``, ``var``: (arms, looks) as ``arm_moments`` returns; ``tau2``: the mixing variance on the
    log-ratio scale. The normal-mixture test runs on log(mean_t / mean_c); its interval is mapped back to a
    relative lift. Returns (treatments, looks) arrays: ``lift``, ``ci_low``, ``ci_high``, ``p_value``
    (anytime-valid, running over the looks).
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        log_lift, variance = ab_stats.log_ratio(mean[0], var[0], n[0], mean[1:], var[1:], n[1:])
        usable = np.isfinite(log_lift) & np.isfinite(variance) & (variance > 0) & (n[0] > 1) & (n[1:] > 1)
        safe_var = np.where(usable, variance, 1.0)
        half = np.where(usable, ab_stats.mixture_half_width(safe_var, tau2, alpha), np.inf)
        log_lr = np.where(usable, ab_stats.mixture_log_likelihood_ratio(np.where(usable, log_lift, 0.0), safe_var,
                                                                          tau2), 0.0)
        return {
            "lift": np.where(usable, np.expm1(log_lift), np.nan),
            "ci_low": np.where(usable, np.expm1(log_lift - half), -1.0),
            "ci_high": np.where(usable, np.expm1(log_lift + half), np.inf),
            "p_value": ab_stats.running_p_values(log_lr),
        }


@dataclass
class MetricPath:
    """A metric's sequential results at every look."""

    name: str
    role: str  # primary, secondary, guardrail
    n: np.ndarray
    mean: np.ndarray  # raw unit means (arms, looks)
    lift: dict[str, np.ndarray]  # sequential_lift of the (CUPED-adjusted where possible) values
    p_holm: np.ndarray  # (treatments, looks)
    cuped: np.ndarray | None = None  # (2, looks): theta, variance reduction
    threshold: float | None = None  # guardrails: tolerated relative degradation


def metric_paths(panel: Panel, cfg: ExperimentConfig, alpha: float) -> dict[str, MetricPath]:
    """Sequential results of the primary, secondary and guardrail metrics at every look."""
    onehot = (panel.arm[None, :] == np.arange(len(panel.variants))[:, None]).astype(float)
    roles = {cfg.primary_metric: "primary", **{m: "secondary" for m in cfg.secondary_metrics}}
    roles.update({g.metric: "guardrail" for g in cfg.guardrails})
    thresholds = {g.metric: g.max_relative_degradation for g in cfg.guardrails}
    out = {}
    for name, role in roles.items():
        values, valid = panel.metric(name)
        n, mean, var = arm_moments(values, valid, onehot)
        cuped = None
        if name in CUPED_COVARIATES:
            adjusted, cuped = cuped_values(values, valid, panel.covariates[CUPED_COVARIATES[name]])
            n, adj_mean, var = arm_moments(adjusted, valid, onehot)
            # the adjusted means differ from the raw ones by theta * (arm's covariate mean - overall mean)
            lift = sequential_lift(n, adj_mean, var, _tau2(cfg, name, thresholds), alpha)
        else:
            lift = sequential_lift(n, mean, var, _tau2(cfg, name, thresholds), alpha)
        p_holm = ab_stats.holm(lift["p_value"])
        out[name] = MetricPath(name, role, n, mean, lift, p_holm, cuped, thresholds.get(name))
    return out


def mixing_variance(relative_effect: float) -> float:
    """tau2 of the normal mixture on the log-ratio scale for the smallest relative effect the plan cares about.

    A mixing scale of the minimum detectable effect is close to the width-optimal one at the planned horizon
    when the test is sized for that effect (Howard et al. 2021, section 3.5).
    """
    return float(np.log1p(relative_effect) ** 2)


def _tau2(cfg: ExperimentConfig, metric: str, thresholds: dict[str, float]) -> float:
    return mixing_variance(thresholds.get(metric, cfg.min_detectable_effect))


@dataclass
class Decision:
    status: str
    reason: str
    variant: str | None = None
    guardrails: dict[str, dict[str, str]] = field(default_factory=dict)  # metric -> variant -> status


def guardrail_status(low: float, high: float, threshold: float) -> str:
    """breach: significantly worse and not shown within the threshold; else the softer states."""
    if low > 0 and high > threshold:
        return "breach"
    if low > 0:
        return "worse, within threshold"
    return "no degradation detected"


def decide(
    look: int,
    paths: dict[str, MetricPath],
    srm_p: float,
    srm_chi2_p: float,
    variants: list[str],
    registry: ExperimentRegistry,
    final: bool,
    mismatches: list[str],
) -> Decision:
    """The decision at look ``look``; ``final``: the look is the planned end date."""
    alpha = registry.alpha
    if mismatches:
        return Decision("invalid", "registry and experiments table disagree: " + "; ".join(mismatches))
    if srm_p < registry.srm_alpha or (final and srm_chi2_p < registry.srm_alpha):
        return Decision(
            "invalid",
            f"sample-ratio mismatch: sequential p = {srm_p:.2g}, chi-square p = {srm_chi2_p:.2g} "
            f"(threshold {registry.srm_alpha}); the split is broken, no effect estimate can be trusted",
        )
    guardrails: dict[str, dict[str, str]] = {}
    breaches = []
    for path in paths.values():
        if path.role != "guardrail":
            continue
        guardrails[path.name] = {}
        for j, variant in enumerate(variants[1:]):
            status = guardrail_status(path.lift["ci_low"][j, look], path.lift["ci_high"][j, look], path.threshold)
            guardrails[path.name][variant] = status
            if status == "breach":
                breaches.append(
                    f"{path.name} of {variant} {path.lift['lift'][j, look]:+.1%} "
                    f"(always-valid CI {path.lift['ci_low'][j, look]:+.1%}..{path.lift['ci_high'][j, look]:+.1%}, "
                    f"tolerated {path.threshold:+.0%})"
                )
    if breaches:
        return Decision("stop", "guardrail breached: " + "; ".join(breaches), guardrails=guardrails)
    primary = next(p for p in paths.values() if p.role == "primary")
    lift, p = primary.lift["lift"][:, look], primary.p_holm[:, look]
    significant = p < alpha
    better = [j for j in range(len(variants) - 1) if significant[j] and lift[j] > 0]
    described = ", ".join(
        f"{v} {lift[j]:+.2%} (always-valid CI {primary.lift['ci_low'][j, look]:+.2%}.."
        f"{primary.lift['ci_high'][j, look]:+.2%}, p = {p[j]:.3g})"
        for j, v in enumerate(variants[1:])
    )
    if better:
        best = max(better, key=lambda j: lift[j])
        return Decision(
            "ship",
            f"{primary.name} significantly better; no guardrail breached: {described}",
            variants[best + 1],
            guardrails,
        )
    if significant.all() and (lift < 0).all():
        return Decision("stop", f"every treatment significantly worse on {primary.name}: {described}",
                        guardrails=guardrails)
    if final:
        return Decision("stop", f"no significant effect on {primary.name} by the planned end: {described}",
                        guardrails=guardrails)
    return Decision("keep running", f"not yet conclusive on {primary.name}: {described}", guardrails=guardrails)


def fixed_horizon(panel: Panel, cfg: ExperimentConfig, registry: ExperimentRegistry) -> dict[str, list[dict]]:
    """The classical tests at the last look (the planned end date), Holm-adjusted over treatments per metric.

    Conversion: the two-proportion z test on the raw counts and Welch on the CUPED-adjusted values; revenue per
    visitor and AOV: Welch with percentile bootstrap intervals (raw; revenue per visitor also CUPED-adjusted);
    guardrails: Welch.
    """
    look = len(panel.looks) - 1
    out: dict[str, list[dict]] = {}
    metrics = [cfg.primary_metric, *cfg.secondary_metrics, *(g.metric for g in cfg.guardrails)]
    for name in metrics:
        values, valid = panel.metric(name)
        y, ok = values[:, look], valid[:, look]
        x = panel.covariates[CUPED_COVARIATES[name]] if name in CUPED_COVARIATES else None
        rows = []
        control = ok & (panel.arm == 0)
        for j, variant in enumerate(panel.variants[1:], start=1):
            treated = ok & (panel.arm == j)
            if control.sum() < 2 or treated.sum() < 2:
                continue
            if name == "conversion_rate":
                result = ab_stats.two_proportion_test(
                    int(y[control].sum()), int(control.sum()), int(y[treated].sum()), int(treated.sum()),
                    registry.alpha, name, variant,
                )
            else:
                result = ab_stats.welch_test(y[control], y[treated], registry.alpha, name, variant)
            row = result.as_dict()
            if name in ("revenue_per_visitor", "average_order_value"):
                (lo, hi), (rlo, rhi) = ab_stats.bootstrap_intervals(
                    y[control], y[treated], registry.alpha, registry.bootstrap_resamples, registry.seed + j
                )
                row.update(bootstrap_ci_low=lo, bootstrap_ci_high=hi, bootstrap_relative_ci_low=rlo,
                           bootstrap_relative_ci_high=rhi)
            if x is not None:
                both = control | treated
                adjusted, theta, reduction = ab_stats.cuped_adjust(y[both], x[both])
                arm = panel.arm[both]
                cuped = ab_stats.welch_test(adjusted[arm == 0], adjusted[arm == j], registry.alpha, name, variant)
                row["cuped"] = {
                    "theta": theta,
                    "variance_reduction": reduction,
                    "difference": cuped.difference,
                    "ci_low": cuped.ci_low,
                    "ci_high": cuped.ci_high,
                    "p_value": cuped.p_value,
                }
            rows.append(row)
        for row, adjusted_p in zip(rows, ab_stats.holm([r["p_value"] for r in rows]), strict=True):
            row["p_value_holm"] = float(adjusted_p)
        out[name] = rows
    return out


def _f(value: float) -> float | None:
    return None if value is None or not np.isfinite(value) else float(value)


def readout(
    panel: Panel,
    cfg: ExperimentConfig,
    registry: ExperimentRegistry,
    *,
    experiment_id: str,
    run_date: dt.date,
    mismatches: list[str],
    dropped_units: int = 0,
) -> dict:
    """The readout record of one experiment on ``run_date`` (JSON-serialisable), decision included."""
    paths = metric_paths(panel, cfg, registry.alpha)
    onehot = (panel.arm[None, :] == np.arange(len(panel.variants))[:, None]).astype(float)
    count_path = (onehot @ panel.exposed.astype(float)).T  # (looks, arms)
    log_bf = ab_stats.srm_log_bayes_factor(count_path, np.array(cfg.weights), registry.srm_prior_concentration)
    srm_p_path = ab_stats.running_p_values(log_bf)
    history = []
    for look, day in enumerate(panel.looks):
        final = day == cfg.end_date
        chi2_p = ab_stats.srm_chi_square(count_path[look], cfg.weights)[1] if count_path[look].sum() else 1.0
        decision = decide(look, paths, float(srm_p_path[look]), chi2_p, panel.variants, registry, final, mismatches)
        primary = paths[cfg.primary_metric]
        history.append({
            "date": day.isoformat(),
            "units": [int(c) for c in count_path[look]],
            "srm_sequential_p": float(srm_p_path[look]),
            "primary_mean": [_f(m) for m in primary.mean[:, look]],
            "lift": [_f(v) for v in primary.lift["lift"][:, look]],
            "ci_low": [_f(v) for v in primary.lift["ci_low"][:, look]],
            "ci_high": [_f(v) for v in primary.lift["ci_high"][:, look]],
            "p_value_holm": [float(v) for v in primary.p_holm[:, look]],
            "status": decision.status,
        })
    last = len(panel.looks) - 1
    srm = ab_stats.sample_ratio_mismatch(count_path, np.array(cfg.weights), registry.srm_prior_concentration)
    metrics = {}
    for name, path in paths.items():
        metrics[name] = {
            "role": path.role,
            "unit": UNITS[name],
            "threshold": path.threshold,
            "per_variant": {
                v: {"n": int(path.n[i, last]), "mean": _f(path.mean[i, last])} for i, v in enumerate(panel.variants)
            },
            "sequential": {
                v: {
                    "relative_lift": _f(path.lift["lift"][j, last]),
                    "ci_low": _f(path.lift["ci_low"][j, last]),
                    "ci_high": _f(path.lift["ci_high"][j, last]),
                    "p_value": float(path.lift["p_value"][j, last]),
                    "p_value_holm": float(path.p_holm[j, last]),
                }
                for j, v in enumerate(panel.variants[1:])
            },
            "cuped": None if path.cuped is None else {
                "covariate": CUPED_COVARIATES[name],
                "theta": _f(path.cuped[0, last]),
                "variance_reduction": _f(path.cuped[1, last]),
            },
        }
    reached_end = panel.looks[-1] == cfg.end_date
    design = None
    primary = paths[cfg.primary_metric]
    if cfg.primary_metric == "conversion_rate" and primary.n[:, last].min() > 1 and 0 < primary.mean[0, last] < 1:
        # what the sample so far can detect: the design's power at the minimum detectable effect
        args = (float(primary.mean[0, last]), cfg.min_detectable_effect, float(primary.n[0, last]),
                float(primary.n[1:, last].min()), registry.alpha)
        design = {
            "control_rate": args[0],
            "min_detectable_effect": cfg.min_detectable_effect,
            "fixed_horizon_power": ab_stats.fixed_horizon_power(*args),
            "sequential_power_at_this_look": ab_stats.sequential_power_at_end(
                *args, mixing_variance(cfg.min_detectable_effect)),
        }
    decision = decide(last, paths, srm.sequential_p, srm.chi_square_p, panel.variants, registry, reached_end,
                      mismatches)
    return {
        "experiment_id": experiment_id,
        "name": cfg.name,
        "run_date": run_date.isoformat(),
        "analysis_end": panel.looks[-1].isoformat(),
        "start_date": cfg.start_date.isoformat(),
        "end_date": cfg.end_date.isoformat(),
        "planned_end_reached": reached_end,
        "days_run": len(panel.looks),
        "variants": panel.variants,
        "planned_weights": cfg.weights,
        "primary_metric": cfg.primary_metric,
        "min_detectable_effect": cfg.min_detectable_effect,
        "alpha": registry.alpha,
        "decision": {"status": decision.status, "reason": decision.reason, "variant": decision.variant},
        "guardrails": decision.guardrails,
        "registry_mismatches": mismatches,
        "units_in_two_variants_dropped": dropped_units,
        "srm": srm.as_dict() | {"alpha": registry.srm_alpha},
        "metrics": metrics,
        "fixed_horizon": fixed_horizon(panel, cfg, registry) if reached_end else None,
        "design": design,
        "history": history,
        "method": {
            "sequential": "normal-mixture confidence sequence on log(treatment mean / control mean) (delta "
                          "method), mapped back to a relative lift; mixing scale log(1 + minimum detectable "
                          "effect) (guardrails: their threshold); p-values anytime-valid, Holm over treatments",
            "srm": f"Dirichlet-multinomial sequential test (Lindon & Malek), prior concentration "
                   f"{registry.srm_prior_concentration}; Pearson chi-square reported beside it",
            "cuped": f"pre-period of {registry.pre_period_days} days before each unit's first exposure",
        },
    }
