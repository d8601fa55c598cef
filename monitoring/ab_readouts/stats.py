"""The statistics of an A/B readout, as plain functions of counts, means and variances.

Vectorised with numpy so the daily readout can evaluate every look of an experiment at once and the calibration
tests can evaluate thousands of re-randomised experiments at once; the fixed-horizon tests are cross-checked
against statsmodels and scipy in ``tests/unit/test_ab_stats.py``.

* Sample-ratio mismatch: Pearson's chi-square against the planned weights (scipy), and the sequential
  Dirichlet-multinomial test of Lindon & Malek (2022, "Anytime-valid inference for multinomial count data"),
  whose Bayes factor is a test martingale under the plan, so looking every day does not inflate false alarms.
* Lifts: the two-proportion z test (pooled variance for the test, unpooled for the interval), Welch's t test,
  a percentile bootstrap of the difference and the relative lift, the delta-method variance of a relative lift.
* Always-valid intervals: the normal-mixture sequential probability ratio test (Robbins 1970; Johari et al.
  2017) and its confidence sequence (Howard et al. 2021): for an asymptotically normal estimate with variance
  V at a look, ``estimate +- sqrt(V (V + tau2) / tau2 * (log((V + tau2) / V) + 2 log(1 / alpha)))`` covers the
  truth at every look simultaneously with probability at least 1 - alpha.
* CUPED (Deng et al. 2013): ``y - theta (x - mean(x))`` with theta = cov(x, y) / var(x) pooled over arms.
* Holm's step-down correction for several treatment variants (statsmodels).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy import special, stats


# --- sample-ratio mismatch ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SrmResult:
    counts: list[int]
    expected_shares: list[float]
    observed_shares: list[float]
    chi_square: float
    chi_square_p: float
    sequential_p: float  # anytime-valid: min over looks so far of 1 / Bayes factor
    log_bayes_factor: float  # at this look

    def as_dict(self) -> dict:
        return asdict(self)


def srm_chi_square(counts: np.ndarray, weights: np.ndarray) -> tuple[float, float]:
    """Pearson's chi-square statistic and p-value of ``counts`` against the planned ``weights``."""
    counts = np.asarray(counts, float)
    expected = counts.sum() * np.asarray(weights, float)
    result = stats.chisquare(counts, f_exp=expected)
    return float(result.statistic), float(result.pvalue)


def srm_log_bayes_factor(counts: np.ndarray, weights: np.ndarray, concentration: float) -> np.ndarray:
    """Log Bayes factor of a Dirichlet(concentration * weights) alternative against the planned weights.

    ``counts`` has the variants on its last axis (any leading axes: looks, replicates). Under the plan the
    Bayes factor is a nonnegative martingale with mean 1, so P(it ever exceeds 1/alpha) <= alpha (Ville).
    """
    counts = np.asarray(counts, float)
    prior = concentration * np.asarray(weights, float)
    n = counts.sum(axis=-1)
    return (
        special.gammaln(prior.sum())
        - special.gammaln(prior.sum() + n)
        + (special.gammaln(prior + counts) - special.gammaln(prior)).sum(axis=-1)
        - (counts * np.log(weights)).sum(axis=-1)
    )


def running_p_values(log_evidence: np.ndarray) -> np.ndarray:
    """Anytime-valid p-values from log e-values (Bayes factors, likelihood ratios) along the last axis (looks)."""
    best = np.maximum.accumulate(np.asarray(log_evidence, float), axis=-1)
    return np.minimum(1.0, np.exp(-best))


def sample_ratio_mismatch(count_path: np.ndarray, weights: np.ndarray, concentration: float) -> SrmResult:
    """SRM verdict at the last look of ``count_path`` (looks x variants: cumulative units per variant per look)."""
    count_path = np.atleast_2d(np.asarray(count_path, float))
    counts = count_path[-1]
    chi2, chi2_p = srm_chi_square(counts, weights)
    log_bf = srm_log_bayes_factor(count_path, weights, concentration)
    total = counts.sum()
    return SrmResult(
        counts=[int(c) for c in counts],
        expected_shares=[float(w) for w in weights],
        observed_shares=[float(c / total) if total else float("nan") for c in counts],
        chi_square=chi2,
        chi_square_p=chi2_p,
        sequential_p=float(running_p_values(log_bf)[-1]),
        log_bayes_factor=float(log_bf[-1]),
    )


# --- always-valid intervals -------------------------------------------------------------------------------------
def mixture_log_likelihood_ratio(estimate: np.ndarray, variance: np.ndarray, tau2: float) -> np.ndarray:
    """Log of the normal-mixture likelihood ratio for H0: effect = 0, mixing N(0, tau2) over the effect."""
    estimate, variance = np.asarray(estimate, float), np.asarray(variance, float)
    return 0.5 * np.log(variance / (variance + tau2)) + tau2 * estimate**2 / (2 * variance * (variance + tau2))


def mixture_half_width(variance: np.ndarray, tau2: float, alpha: float) -> np.ndarray:
    """Half-width of the normal-mixture confidence sequence at a look whose estimate has ``variance``."""
    variance = np.asarray(variance, float)
    return np.sqrt(variance * (variance + tau2) / tau2 * (np.log((variance + tau2) / variance) + 2 * np.log(1 / alpha)))


# --- fixed-horizon tests -----------------------------------------------------------------------------------------
def relative_lift(mean_c, var_c, n_c, mean_t, var_t, n_t) -> tuple[np.ndarray, np.ndarray]:
    """Relative lift mean_t / mean_c - 1 and its delta-method variance (``var_*`` are unit variances)."""
    mean_c, mean_t = np.asarray(mean_c, float), np.asarray(mean_t, float)
    lift = mean_t / mean_c - 1.0
    variance = np.asarray(var_t, float) / (np.asarray(n_t, float) * mean_c**2) + mean_t**2 * np.asarray(
        var_c, float
    ) / (np.asarray(n_c, float) * mean_c**4)
    return lift, variance


def log_ratio(mean_c, var_c, n_c, mean_t, var_t, n_t) -> tuple[np.ndarray, np.ndarray]:
    """log(mean_t / mean_c) and its delta-method variance: the scale of the sequential tests.

    A better pivot than the relative lift itself: the relative lift's estimated variance grows with the
    treatment mean, so large estimates come with wide intervals and a normal approximation on that scale
    overstates power (and understates coverage) at moderate sample sizes.
    """
    mean_c, mean_t = np.asarray(mean_c, float), np.asarray(mean_t, float)
    estimate = np.log(mean_t / mean_c)
    variance = np.asarray(var_t, float) / (np.asarray(n_t, float) * mean_t**2) + np.asarray(var_c, float) / (
        np.asarray(n_c, float) * mean_c**2
    )
    return estimate, variance


@dataclass(frozen=True)
class Comparison:
    """One treatment against control on one metric at a fixed horizon."""

    metric: str
    variant: str
    control_mean: float
    treatment_mean: float
    difference: float
    ci_low: float
    ci_high: float
    relative_lift: float
    relative_ci_low: float
    relative_ci_high: float
    statistic: float
    p_value: float
    test: str
    p_value_holm: float | None = None
    bootstrap_ci_low: float | None = None
    bootstrap_ci_high: float | None = None
    bootstrap_relative_ci_low: float | None = None
    bootstrap_relative_ci_high: float | None = None
    n_control: int = 0
    n_treatment: int = 0

    def as_dict(self) -> dict:
        return asdict(self)


def two_proportion_test(x_c: int, n_c: int, x_t: int, n_t: int, alpha: float, metric: str, variant: str) -> Comparison:
    """Two-sided z test of p_t = p_c (pooled variance) with the Wald interval of the difference (unpooled).

    The relative lift's interval uses the delta method on p_t / p_c.
    """
    p_c, p_t = x_c / n_c, x_t / n_t
    pooled = (x_c + x_t) / (n_c + n_t)
    se_pooled = np.sqrt(pooled * (1 - pooled) * (1 / n_c + 1 / n_t))
    z = (p_t - p_c) / se_pooled if se_pooled > 0 else 0.0
    se = np.sqrt(p_c * (1 - p_c) / n_c + p_t * (1 - p_t) / n_t)
    q = stats.norm.ppf(1 - alpha / 2)
    lift, lift_var = relative_lift(p_c, p_c * (1 - p_c), n_c, p_t, p_t * (1 - p_t), n_t)
    return Comparison(
        metric=metric,
        variant=variant,
        control_mean=p_c,
        treatment_mean=p_t,
        difference=p_t - p_c,
        ci_low=p_t - p_c - q * se,
        ci_high=p_t - p_c + q * se,
        relative_lift=float(lift),
        relative_ci_low=float(lift - q * np.sqrt(lift_var)),
        relative_ci_high=float(lift + q * np.sqrt(lift_var)),
        statistic=float(z),
        p_value=float(2 * stats.norm.sf(abs(z))),
        test="two-proportion z",
        n_control=int(n_c),
        n_treatment=int(n_t),
    )


def welch_test(control: np.ndarray, treatment: np.ndarray, alpha: float, metric: str, variant: str) -> Comparison:
    """Welch's two-sided t test of equal means with its interval (Welch-Satterthwaite degrees of freedom)."""
    a, b = np.asarray(control, float), np.asarray(treatment, float)
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    se = np.sqrt(va + vb)
    df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    diff = b.mean() - a.mean()
    t = diff / se
    q = stats.t.ppf(1 - alpha / 2, df)
    lift, lift_var = relative_lift(a.mean(), a.var(ddof=1), len(a), b.mean(), b.var(ddof=1), len(b))
    return Comparison(
        metric=metric,
        variant=variant,
        control_mean=float(a.mean()),
        treatment_mean=float(b.mean()),
        difference=float(diff),
        ci_low=float(diff - q * se),
        ci_high=float(diff + q * se),
        relative_lift=float(lift),
        relative_ci_low=float(lift - q * np.sqrt(lift_var)),
        relative_ci_high=float(lift + q * np.sqrt(lift_var)),
        statistic=float(t),
        p_value=float(2 * stats.t.sf(abs(t), df)),
        test="Welch t",
        n_control=len(a),
        n_treatment=len(b),
    )


def bootstrap_intervals(
    control: np.ndarray, treatment: np.ndarray, alpha: float, resamples: int, seed: int
) -> tuple[tuple[float, float], tuple[float, float]]:
    """Percentile bootstrap intervals (scipy) of the difference of means and of the relative lift.

    Each arm is resampled on its own (units are independent); the same resamples serve both statistics.
    """
    rng = np.random.default_rng(seed)
    a, b = np.asarray(control, float), np.asarray(treatment, float)

    def difference(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
        return np.mean(y, axis=axis) - np.mean(x, axis=axis)

    def ratio(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
        return np.mean(y, axis=axis) / np.mean(x, axis=axis) - 1.0

    out = []
    for statistic in (difference, ratio):
        result = stats.bootstrap(
            (a, b),
            statistic,
            n_resamples=resamples,
            confidence_level=1 - alpha,
            method="percentile",
            vectorized=True,
            random_state=np.random.default_rng(rng.integers(2**32)),
        )
        out.append((float(result.confidence_interval.low), float(result.confidence_interval.high)))
    return out[0], out[1]


def holm(p_values) -> np.ndarray:
    """Holm's step-down adjusted p-values over the first axis (the comparisons; any further axes: looks).

    Equal to statsmodels' ``multipletests(method="holm")`` per column (checked in the tests), vectorised because
    the readout adjusts every look of every metric.
    """
    p = np.asarray(p_values, float)
    if p.shape[0] == 0:
        return p
    m = p.shape[0]
    order = np.argsort(p, axis=0, kind="stable")
    ranked = np.take_along_axis(p, order, axis=0)
    factors = (m - np.arange(m)).reshape((m,) + (1,) * (p.ndim - 1))
    adjusted = np.minimum(1.0, np.maximum.accumulate(ranked * factors, axis=0))
    out = np.empty_like(adjusted)
    np.put_along_axis(out, order, adjusted, axis=0)
    return out


# --- CUPED ----------------------------------------------------------------------------------------------------------
def cuped_theta(y: np.ndarray, x: np.ndarray) -> float:
    """theta = cov(x, y) / var(x) over all units of all arms (0 when the covariate does not vary)."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    var_x = x.var()
    return float(((x - x.mean()) * (y - y.mean())).mean() / var_x) if var_x > 0 else 0.0


def cuped_adjust(y: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, float, float]:
    """CUPED-adjusted outcomes, theta, and the variance reduction achieved: 1 - var(adjusted) / var(y)."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    theta = cuped_theta(y, x)
    adjusted = y - theta * (x - x.mean())
    var_y = y.var()
    reduction = 1.0 - adjusted.var() / var_y if var_y > 0 else 0.0
    return adjusted, theta, float(reduction)


# --- design --------------------------------------------------------------------------------------------------------
def fixed_horizon_power(p_control: float, relative_effect: float, n_c: int, n_t: int, alpha: float) -> float:
    """Power of the two-sided two-proportion test for p_control vs p_control * (1 + relative_effect) (statsmodels)."""
    from statsmodels.stats.power import NormalIndPower
    from statsmodels.stats.proportion import proportion_effectsize

    effect = proportion_effectsize(p_control * (1 + relative_effect), p_control)
    return float(NormalIndPower().power(effect, nobs1=n_c, alpha=alpha, ratio=n_t / n_c, alternative="two-sided"))


def sequential_power_at_end(
    p_control: float, relative_effect: float, n_c: int, n_t: int, alpha: float, tau2: float
) -> float:
    """Probability that the last look's always-valid interval (log ratio scale, as the readout) excludes 0.

    A lower bound on the power of the daily sequential test (earlier looks can only add crossings).
    """
    p_t = p_control * (1 + relative_effect)
    _, variance = log_ratio(p_control, p_control * (1 - p_control), n_c, p_t, p_t * (1 - p_t), n_t)
    se = float(np.sqrt(variance))
    c = float(mixture_half_width(variance, tau2, alpha)) / se
    shift = float(np.log1p(relative_effect)) / se
    return float(stats.norm.sf(c - shift) + stats.norm.cdf(-c - shift))
