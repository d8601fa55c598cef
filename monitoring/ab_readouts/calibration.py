"""Calibration of the daily readout by re-randomisation over one experiment's simulated units.

Method: keep every unit's outcomes and exposure day as simulated, and draw a fresh Bernoulli assignment of
units to variants (the planned treatment weight) for each of ``replicates`` A/A experiments. Outcomes do not
depend on the new labels, so the null holds exactly; each replicate is read out at every daily look exactly as
the readout does (CUPED with the pooled, label-free theta; relative lift; normal-mixture interval), all replicates
at once with matrix products. A replicate is a false positive when its always-valid p-value falls below alpha
at any look up to the planned end.

For power, an effect is planted in the re-randomised treatment arm: each treatment unit that never converted
is made to convert from its exposure day on with probability q = p * lift / (1 - p), which raises the treatment
arm's unit conversion rate by the relative ``lift`` in expectation. The detection rates of the fixed-horizon
two-proportion test at the last look and of the daily sequential test are compared with the design's predictions.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats

from monitoring.ab_readouts import stats as ab_stats
from monitoring.ab_readouts.readout import CUPED_COVARIATES, Panel, cuped_values, sequential_lift


@dataclass(frozen=True)
class CalibrationResult:
    replicates: int
    alpha: float
    rejections: int
    rate: float
    standard_error: float  # binomial, of the rate
    looks: int
    units: int

    def as_dict(self) -> dict:
        return asdict(self)


def _assignments(units: int, replicates: int, weight: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.random((replicates, units)) < weight).astype(float)


def _two_arm_moments(treated: np.ndarray, values: np.ndarray, valid: np.ndarray) -> tuple[np.ndarray, ...]:
    """(2, replicates, looks) count, mean and unit variance; arm 0 = not ``treated``."""
    v = np.where(valid, values, 0.0)
    w = valid.astype(float)
    totals = (w.sum(0), v.sum(0), (v * v).sum(0))
    n_t, s_t, ss_t = treated @ w, treated @ v, treated @ (v * v)
    return _moments(totals, (n_t, s_t, ss_t))


def _moments(totals, treatment) -> tuple[np.ndarray, ...]:
    n_t, s_t, ss_t = treatment
    n = np.stack([totals[0][None, :] - n_t, n_t])
    s = np.stack([totals[1][None, :] - s_t, s_t])
    ss = np.stack([totals[2][None, :] - ss_t, ss_t])
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = s / n
        var = np.maximum((ss - n * mean**2) / (n - 1), 0.0)
    return n, mean, var


def aa_false_positive_rate(
    panel: Panel,
    metric: str,
    *,
    treatment_weight: float,
    tau2: float,
    alpha: float,
    replicates: int,
    seed: int,
    cuped: bool = True,
) -> CalibrationResult:
    """Share of re-randomised A/A experiments whose daily sequential test ever rejects at level ``alpha``."""
    values, valid = panel.metric(metric)
    if cuped and metric in CUPED_COVARIATES:
        values, _ = cuped_values(values, valid, panel.covariates[CUPED_COVARIATES[metric]])
    treated = _assignments(len(panel.arm), replicates, treatment_weight, seed)
    n, mean, var = _two_arm_moments(treated, values, valid)
    p = sequential_lift(n, mean, var, tau2, alpha)["p_value"][0]  # (replicates, looks), running
    rejections = int((p[:, -1] < alpha).sum())
    rate = rejections / replicates
    return CalibrationResult(replicates, alpha, rejections, rate, float(np.sqrt(alpha * (1 - alpha) / replicates)),
                             len(panel.looks), len(panel.arm))


@dataclass(frozen=True)
class PowerResult:
    relative_lift: float
    control_rate: float
    units_per_arm: float
    replicates: int
    fixed_horizon_rate: float
    fixed_horizon_predicted: float  # statsmodels NormalIndPower at the planted effect
    sequential_rate: float  # rejected at any daily look
    sequential_predicted_at_end: float  # lower bound: the last look's interval alone
    standard_error: float  # binomial, of a rate near the fixed-horizon prediction

    def as_dict(self) -> dict:
        return asdict(self)


def planted_lift_power(
    panel: Panel,
    relative_lift: float,
    *,
    treatment_weight: float,
    tau2: float,
    alpha: float,
    replicates: int,
    seed: int,
) -> PowerResult:
    """Detection rates of a planted relative lift in unit conversion, against the design's predictions."""
    values, valid = panel.metric("conversion_rate")
    converted_by_end = values[:, -1] > 0
    p = float(values[valid[:, -1], -1].mean())
    q = p * relative_lift / (1 - p)
    rng = np.random.default_rng([seed, 1])
    treated = _assignments(len(panel.arm), replicates, treatment_weight, seed)
    planted = treated * (rng.random(treated.shape) < q) * (~converted_by_end)[None, :]
    w = valid.astype(float)
    v = np.where(valid, values, 0.0)
    # a planted unit converts from its exposure on: its value is 1 wherever it is exposed (binary, so v*v = v)
    s_t = treated @ v + planted @ w
    n_t = treated @ w
    totals_n, totals_s = w.sum(0), v.sum(0)
    s_all = totals_s[None, :] + planted @ w
    n, mean, var = _binary_moments(totals_n, s_all, n_t, s_t)
    sequential_p = sequential_lift(n, mean, var, tau2, alpha)["p_value"][0]
    # fixed horizon: the two-proportion z test (pooled) at the last look
    n_c_end, n_t_end = n[0, :, -1], n[1, :, -1]
    x_c, x_t = mean[0, :, -1] * n_c_end, mean[1, :, -1] * n_t_end
    pooled = (x_c + x_t) / (n_c_end + n_t_end)
    z = (x_t / n_t_end - x_c / n_c_end) / np.sqrt(pooled * (1 - pooled) * (1 / n_c_end + 1 / n_t_end))
    fixed_reject = 2 * stats.norm.sf(np.abs(z)) < alpha
    units = float(valid[:, -1].sum())
    n_c_exp, n_t_exp = units * (1 - treatment_weight), units * treatment_weight
    predicted = ab_stats.fixed_horizon_power(p, relative_lift, n_c_exp, n_t_exp, alpha)
    return PowerResult(
        relative_lift=relative_lift,
        control_rate=p,
        units_per_arm=units / 2,
        replicates=replicates,
        fixed_horizon_rate=float(fixed_reject.mean()),
        fixed_horizon_predicted=predicted,
        sequential_rate=float((sequential_p[:, -1] < alpha).mean()),
        sequential_predicted_at_end=ab_stats.sequential_power_at_end(p, relative_lift, n_c_exp, n_t_exp, alpha, tau2),
        standard_error=float(np.sqrt(predicted * (1 - predicted) / replicates)),
    )


def _binary_moments(totals_n, s_all, n_t, s_t) -> tuple[np.ndarray, ...]:
    n = np.stack([np.broadcast_to(totals_n[None, :], n_t.shape) - n_t, n_t])
    s = np.stack([s_all - s_t, s_t])
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = s / n
        var = mean * (1 - mean) * n / (n - 1)
    return n, mean, var
