"""The readout's statistics against statsmodels and scipy on the same numbers, and the sequential tests' guarantees."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.proportion import confint_proportions_2indep, proportions_ztest
from statsmodels.stats.weightstats import CompareMeans, DescrStatsW

from monitoring.ab_readouts import stats as ab_stats


def test_two_proportion_test_matches_statsmodels() -> None:
    x_c, n_c, x_t, n_t = 1_210, 10_050, 1_318, 9_970
    result = ab_stats.two_proportion_test(x_c, n_c, x_t, n_t, 0.05, "conversion_rate", "treatment")
    z, p = proportions_ztest([x_t, x_c], [n_t, n_c])
    assert result.statistic == pytest.approx(z, rel=1e-9) and result.p_value == pytest.approx(p, rel=1e-9)
    low, high = confint_proportions_2indep(x_t, n_t, x_c, n_c, method="wald", compare="diff", alpha=0.05)
    assert (result.ci_low, result.ci_high) == pytest.approx((low, high), rel=1e-9)
    assert result.relative_lift == pytest.approx((x_t / n_t) / (x_c / n_c) - 1)


def test_welch_test_matches_scipy_and_statsmodels() -> None:
    rng = np.random.default_rng(0)
    a = rng.lognormal(3.0, 1.0, 800)
    b = rng.lognormal(3.1, 1.2, 650)
    result = ab_stats.welch_test(a, b, 0.05, "revenue_per_visitor", "treatment")
    reference = stats.ttest_ind(b, a, equal_var=False)
    assert result.statistic == pytest.approx(reference.statistic, rel=1e-9)
    assert result.p_value == pytest.approx(reference.pvalue, rel=1e-9)
    low, high = CompareMeans(DescrStatsW(b), DescrStatsW(a)).tconfint_diff(alpha=0.05, usevar="unequal")
    assert (result.ci_low, result.ci_high) == pytest.approx((low, high), rel=1e-9)


def test_bootstrap_interval_agrees_with_welch_on_a_large_sample() -> None:
    rng = np.random.default_rng(1)
    a, b = rng.gamma(2.0, 20.0, 3_000), rng.gamma(2.0, 22.0, 3_000)
    (low, high), (rlow, rhigh) = ab_stats.bootstrap_intervals(a, b, 0.05, 2_000, seed=3)
    welch = ab_stats.welch_test(a, b, 0.05, "revenue_per_visitor", "treatment")
    assert low == pytest.approx(welch.ci_low, abs=0.15 * (welch.ci_high - welch.ci_low))
    assert high == pytest.approx(welch.ci_high, abs=0.15 * (welch.ci_high - welch.ci_low))
    assert rlow < b.mean() / a.mean() - 1 < rhigh
    again = ab_stats.bootstrap_intervals(a, b, 0.05, 2_000, seed=3)
    assert again == ((low, high), (rlow, rhigh)), "seeded: the same interval twice"


def test_chi_square_srm_matches_scipy() -> None:
    counts, weights = np.array([5_120, 4_880, 2_400]), np.array([0.4, 0.4, 0.2])
    stat, p = ab_stats.srm_chi_square(counts, weights)
    reference = stats.chisquare(counts, counts.sum() * weights)
    assert (stat, p) == pytest.approx((reference.statistic, reference.pvalue))


def test_sequential_srm_bayes_factor_is_the_dirichlet_multinomial_over_the_multinomial() -> None:
    counts, weights, concentration = np.array([530, 470]), np.array([0.5, 0.5]), 100.0
    log_bf = ab_stats.srm_log_bayes_factor(counts, weights, concentration)
    n = counts.sum()
    reference = stats.dirichlet_multinomial.logpmf(counts, concentration * weights, n) - stats.multinomial.logpmf(
        counts, n, weights
    )
    assert log_bf == pytest.approx(reference, rel=1e-9)


def test_sequential_srm_keeps_false_alarms_below_alpha_over_daily_looks() -> None:
    rng = np.random.default_rng(5)
    weights, replicates, looks = np.array([0.5, 0.5]), 2_000, 60
    daily = rng.binomial(150, 0.5, (replicates, looks))
    paths = np.stack([np.cumsum(150 - daily, axis=1), np.cumsum(daily, axis=1)], axis=-1)
    p = ab_stats.running_p_values(ab_stats.srm_log_bayes_factor(paths, weights, 100.0))[:, -1]
    assert (p < 0.05).mean() <= 0.05 + 3 * np.sqrt(0.05 * 0.95 / replicates)
    # and a real mismatch (12% of one arm lost) is caught
    lost = rng.binomial(daily, 0.88)
    broken = np.stack([np.cumsum(150 - daily, axis=1), np.cumsum(lost, axis=1)], axis=-1)
    p_broken = ab_stats.running_p_values(ab_stats.srm_log_bayes_factor(broken, weights, 100.0))[:, -1]
    assert (p_broken < 0.001).mean() > 0.9  # 0.96 measured: 9,000 units, 12% of one arm lost


def test_mixture_interval_is_where_the_likelihood_ratio_reaches_one_over_alpha() -> None:
    variance, tau2, alpha = 0.0004, 0.0025, 0.05
    half = ab_stats.mixture_half_width(variance, tau2, alpha)
    assert ab_stats.mixture_log_likelihood_ratio(half, variance, tau2) == pytest.approx(np.log(1 / alpha))
    assert half > stats.norm.ppf(0.975) * np.sqrt(variance), "wider than the fixed-horizon interval"


def test_mixture_confidence_sequence_covers_at_every_look() -> None:
    """Gaussian random walks with no effect: the share that ever leaves the interval stays at or below alpha."""
    rng = np.random.default_rng(7)
    replicates, looks, alpha = 4_000, 100, 0.05
    sums = np.cumsum(rng.standard_normal((replicates, looks)), axis=1)
    n = np.arange(1, looks + 1)
    estimate, variance = sums / n, 1.0 / n
    p = ab_stats.running_p_values(ab_stats.mixture_log_likelihood_ratio(estimate, variance, tau2=0.05))[:, -1]
    fixed = np.abs(estimate) > stats.norm.ppf(1 - alpha / 2) * np.sqrt(variance)
    assert (p < alpha).mean() <= alpha + 3 * np.sqrt(alpha * (1 - alpha) / replicates)
    assert fixed.any(axis=1).mean() > 3 * alpha, "peeking at the fixed-horizon test would inflate errors"


def test_holm_matches_statsmodels_per_look() -> None:
    rng = np.random.default_rng(2)
    p = rng.uniform(0, 0.2, (4, 30))
    ours = ab_stats.holm(p)
    for look in range(p.shape[1]):
        assert ours[:, look] == pytest.approx(multipletests(p[:, look], method="holm")[1])


def test_cuped_theta_is_the_ols_slope_and_the_reduction_its_r_squared() -> None:
    rng = np.random.default_rng(4)
    x = rng.poisson(2.0, 5_000).astype(float)
    y = 0.4 * x + rng.normal(0, 1, 5_000)
    adjusted, theta, reduction = ab_stats.cuped_adjust(y, x)
    slope = stats.linregress(x, y)
    assert theta == pytest.approx(slope.slope, rel=1e-9)
    assert reduction == pytest.approx(slope.rvalue**2, rel=1e-9)
    assert adjusted.mean() == pytest.approx(y.mean())


def test_delta_method_relative_lift_variance_matches_simulation() -> None:
    rng = np.random.default_rng(6)
    p_c, p_t, n = 0.3, 0.33, 4_000
    draws = rng.binomial(n, p_t, 20_000) / rng.binomial(n, p_c, 20_000) - 1
    _, variance = ab_stats.relative_lift(p_c, p_c * (1 - p_c), n, p_t, p_t * (1 - p_t), n)
    assert np.sqrt(variance) == pytest.approx(draws.std(), rel=0.03)


def test_design_power_of_the_fixed_horizon_test_is_statsmodels() -> None:
    power = ab_stats.fixed_horizon_power(0.33, 0.06, 4_300, 4_300, 0.05)
    assert 0.3 < power < 0.7
    assert ab_stats.sequential_power_at_end(0.33, 0.06, 4_300, 4_300, 0.05, 0.0025) < power
