"""Uplift evaluation on randomized data: Qini and uplift curves, AUUC, and the value of a multi-coupon policy.

scikit-uplift (pinned, used by the tests and the Hillstrom benchmark as the cross-check) computes these curves
for binary outcomes only; the promotion model's outcome is a profit in EUR, so the curves are computed here with
scikit-uplift's exact conventions (descending score, ties grouped, the curve starts at (0, 0)), and for binary
outcomes the points are identical to ``sklift.metrics.qini_curve`` / ``uplift_curve`` (tested).

* Uplift curve: ``U(k) = (mean_T(k) - mean_C(k)) * k`` over the top ``k`` rows by score: the incremental outcome of
  treating the top ``k`` (in outcome units, e.g. EUR).
* Qini curve: ``Q(k) = Y_T(k) - Y_C(k) * N_T(k) / N_C(k)`` (Radcliffe 2007): the same, counted on the treated.
* AUUC here is the area under the uplift curve with both axes divided by the number of rows ``N``: the mean,
  over every targeting depth, of the incremental outcome per customer of the population (EUR per customer).
  Targeting at random gives ``ATE / 2``; :func:`auuc_gain` is the area above that line.

For several coupons (:func:`policy_curve`), each row gets the coupon a policy recommends and the rows are ranked by
the policy's expected gain; a row counts as treated when its randomized arm is the recommended coupon and as
control when it got no coupon (each arm had the same chance, so within the top ``k`` the matched rows and the
control rows are comparable random samples). Rows the policy gives no coupon add nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

NO_COUPON = "none"


def _cumulative(y: np.ndarray, score: np.ndarray, treated: np.ndarray, control: np.ndarray):
    order = np.argsort(score, kind="mergesort")[::-1]
    y, score, treated, control = y[order], score[order], treated[order], control[order]
    thresholds = np.r_[np.flatnonzero(np.diff(score)), len(score) - 1]
    n_t = np.cumsum(treated)[thresholds].astype(np.float64)
    n_c = np.cumsum(control)[thresholds].astype(np.float64)
    y_t = np.cumsum(np.where(treated, y, 0.0))[thresholds]
    y_c = np.cumsum(np.where(control, y, 0.0))[thresholds]
    return thresholds + 1, n_t, n_c, y_t, y_c


def _start_at_origin(x: np.ndarray, curve: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if x.size == 0 or curve[0] != 0 or x[0] != 0:
        return np.r_[0, x], np.r_[0.0, curve]
    return x, curve


def _ratio(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.divide(a, b, out=np.zeros_like(a), where=b != 0)


def uplift_curve(y, score, treatment) -> tuple[np.ndarray, np.ndarray]:
    """Points ``(k, U(k))`` of the uplift curve; ``treatment`` is 1 (treated) / 0 (control); ``y`` may be continuous."""
    y, score, t = np.asarray(y, np.float64), np.asarray(score, np.float64), np.asarray(treatment).astype(bool)
    k, n_t, n_c, y_t, y_c = _cumulative(y, score, t, ~t)
    return _start_at_origin(k, (_ratio(y_t, n_t) - _ratio(y_c, n_c)) * k)


def qini_curve(y, score, treatment) -> tuple[np.ndarray, np.ndarray]:
    """Points ``(k, Q(k))`` of the Qini curve (see the module docstring)."""
    y, score, t = np.asarray(y, np.float64), np.asarray(score, np.float64), np.asarray(treatment).astype(bool)
    k, n_t, n_c, y_t, y_c = _cumulative(y, score, t, ~t)
    return _start_at_origin(k, y_t - y_c * _ratio(n_t, n_c))


def area_per_row(x: np.ndarray, curve: np.ndarray) -> float:
    """Trapezoid area under ``curve`` with both axes divided by the last ``x`` (the number of rows)."""
    n = float(x[-1])
    return float(np.trapezoid(curve / n, x / n)) if n > 0 else float("nan")


def auuc(y, score, treatment) -> float:
    """Area under the uplift curve, per row (outcome units per customer; see the module docstring)."""
    return area_per_row(*uplift_curve(y, score, treatment))


def auuc_gain(y, score, treatment) -> float:
    """AUUC above random targeting, whose curve is the line to the overall uplift ``U(N)``: ``AUUC - U(N)/(2N)``."""
    x, u = uplift_curve(y, score, treatment)
    return area_per_row(x, u) - float(u[-1] / x[-1]) / 2.0


@dataclass(frozen=True)
class PolicyCurve:
    """The uplift curve of a multi-coupon policy (see :func:`policy_curve`), and its area per row."""

    k: np.ndarray
    gain: np.ndarray  # incremental outcome of the top k getting their recommended coupon

    @property
    def auuc(self) -> float:
        return area_per_row(self.k, self.gain)

    @property
    def value_per_row(self) -> float:
        """Incremental outcome per customer when everyone gets the policy's coupon (the curve's end / N)."""
        return float(self.gain[-1] / self.k[-1])


def policy_curve(y, arm, recommended, expected_gain) -> PolicyCurve:
    """The uplift curve of giving each row its ``recommended`` coupon, rows ranked by ``expected_gain``.

    ``arm``: the randomized coupon each row actually got (``none`` = control). Rows recommended ``none`` are
    neither treated nor control (targeting them changes nothing): past the last coupon the curve stays flat.
    """
    y = np.asarray(y, np.float64)
    arm, recommended = np.asarray(arm, dtype=object), np.asarray(recommended, dtype=object)
    targeted = recommended != NO_COUPON
    matched = targeted & (arm == recommended)
    control = targeted & (arm == NO_COUPON)
    k, n_t, n_c, y_t, y_c = _cumulative(y, np.asarray(expected_gain, np.float64), matched, control)
    # rows ranked by score; the targeted count among the top k multiplies the per-targeted uplift
    order = np.argsort(np.asarray(expected_gain, np.float64), kind="mergesort")[::-1]
    n_targeted = np.cumsum(targeted[order])[k - 1].astype(np.float64)
    x, gain = _start_at_origin(k, (_ratio(y_t, n_t) - _ratio(y_c, n_c)) * n_targeted)
    return PolicyCurve(x, gain)


def arm_means(y, arm, coupons: list[str]) -> dict[str, float]:
    """Mean outcome per randomized arm (``none`` and each coupon)."""
    y, arm = np.asarray(y, np.float64), np.asarray(arm, dtype=object)
    return {c: float(y[arm == c].mean()) if (arm == c).any() else float("nan") for c in [NO_COUPON, *coupons]}


def policy_value(y, arm, recommended) -> float:
    """Incremental outcome per customer of the policy against no coupon for anyone, on randomized rows.

    Each customer's term is estimated from the rows whose arm is what the policy gives them: ``sum over coupons c
    of share(recommended = c) * (mean y of rows recommended c that got c - mean y of rows recommended c that got
    none)`` (a stratified difference; rows recommended ``none`` contribute 0).
    """
    y = np.asarray(y, np.float64)
    arm, recommended = np.asarray(arm, dtype=object), np.asarray(recommended, dtype=object)
    total = 0.0
    for coupon in np.unique(recommended):
        if coupon == NO_COUPON:
            continue
        rows = recommended == coupon
        got, held_out = rows & (arm == coupon), rows & (arm == NO_COUPON)
        if got.any() and held_out.any():
            total += rows.mean() * (y[got].mean() - y[held_out].mean())
    return total
