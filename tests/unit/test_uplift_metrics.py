"""Uplift curves against scikit-uplift, the policy estimators on planted effects, and the coupon and policy rules."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from config.models import PromotionPolicyConfig
from training.promotion.policy import apply_policy
from training.promotion.pyfunc import CouponChoice
from training.promotion.uplift_metrics import (
    auuc,
    auuc_gain,
    policy_curve,
    policy_value,
    qini_curve,
    uplift_curve,
)
from training.shared.metrics import bootstrap_interval


def _binary_experiment(n: int = 4000, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    treated = rng.integers(0, 2, n)
    y = (rng.random(n) < 0.1 + 0.08 * treated * (x > 0)).astype(int)
    score = np.round(x + rng.normal(0, 0.5, n), 1)  # rounded: ties must be grouped as scikit-uplift does
    return y, score, treated


@pytest.mark.parametrize("ours,name", [(qini_curve, "qini_curve"), (uplift_curve, "uplift_curve")])
def test_curves_match_scikit_uplift_on_binary_outcomes(ours, name) -> None:
    from sklift import metrics

    y, score, treated = _binary_experiment()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # sklift calls sklearn's deprecated stable_cumsum
        x_ref, curve_ref = getattr(metrics, name)(y, score, treated)
    x, curve = ours(y, score, treated)
    np.testing.assert_array_equal(x, x_ref)
    np.testing.assert_allclose(curve, curve_ref, rtol=1e-12, atol=1e-9)


def test_auuc_ranks_an_informative_score_above_random_on_a_continuous_outcome() -> None:
    rng = np.random.default_rng(1)
    n = 20_000
    x = rng.normal(size=n)
    treated = rng.integers(0, 2, n)
    effect = 3.0 * x  # half the customers lose money when treated
    y = 20 + 5 * rng.standard_normal(n) + treated * effect
    informative, noise = auuc_gain(y, x, treated), auuc_gain(y, rng.normal(size=n), treated)
    assert informative > 0.5 and abs(noise) < 0.2
    assert auuc(y, x, treated) == pytest.approx(informative + uplift_curve(y, x, treated)[1][-1] / n / 2)


def test_policy_value_and_curve_recover_a_planted_multi_coupon_effect() -> None:
    rng = np.random.default_rng(2)
    n = 60_000
    segment = rng.integers(0, 2, n)  # segment 0 gains 4 EUR from coupon a, segment 1 loses 3 EUR from any coupon
    arm = rng.choice(np.array(["none", "a", "b"], dtype=object), n)
    effect = np.where(arm != "none", np.where(segment == 0, np.where(arm == "a", 4, 0), -3), 0)
    y = 10 + 8 * rng.standard_normal(n) + effect
    recommended = np.where(segment == 0, "a", "none").astype(object)
    assert policy_value(y, arm, recommended) == pytest.approx(0.5 * 4, abs=0.25)
    wrong = np.where(segment == 0, "none", "b").astype(object)
    assert policy_value(y, arm, wrong) == pytest.approx(-0.5 * 3, abs=0.25)
    curve = policy_curve(y, arm, recommended, np.where(segment == 0, 4.0, 0.0))
    assert curve.value_per_row == pytest.approx(2.0, abs=0.25)
    assert np.all(curve.gain[curve.k > recommended.tolist().count("a")] == curve.gain[-1])  # flat past the coupons
    low, high = bootstrap_interval(lambda i: policy_value(y[i], arm[i], recommended[i]), n, 60, seed=0)
    assert low < 2.0 < high


def test_coupon_choice_takes_the_cheapest_near_tie_and_none_when_nothing_pays() -> None:
    choice = CouponChoice(("pct5", "pct10", "free_shipping"), ("pct5", "free_shipping", "pct10"), 0.0, 0.25)
    uplift = np.array([[1.0, 1.2, 0.5], [0.1, 2.0, 1.9], [-0.5, -0.1, -2.0], [0.1, 0.05, 0.12]])
    chosen, value = choice.choose(uplift)
    assert chosen.tolist() == ["pct5", "free_shipping", "none", "pct5"]
    np.testing.assert_allclose(value, [1.0, 1.9, 0.0, 0.1])


def test_coupon_choice_judges_on_the_lower_bound_when_asked() -> None:
    choice = CouponChoice(("pct5", "pct10"), ("pct5", "pct10"), 0.0, 0.0, confidence_z=1.0)
    uplift, spread = np.array([[1.0, 3.0], [1.0, 3.0]]), np.array([[0.5, 1.0], [2.0, 4.0]])
    chosen, value = choice.choose(uplift, spread)
    assert chosen.tolist() == ["pct10", "none"]  # bounds 0.5/2.0, then -1.0/-1.0
    np.testing.assert_allclose(value, [3.0, 0.0])


def test_policy_applies_offer_limit_min_spend_and_budget() -> None:
    predicted = pd.DataFrame({
        "uplift_pct5": [1.0, 2.0, 3.0, 0.5, 4.0],
        "uplift_pct20": [5.0, 1.0, 0.5, 0.2, 0.1],
        "best_coupon": ["pct20", "pct5", "pct5", "pct5", "pct5"],
        "expected_incremental_profit": [5.0, 2.0, 3.0, 0.5, 4.0],
    })
    policy = PromotionPolicyConfig(max_offers_per_customer=1, budget_offers=2, min_spend={"pct20": 50.0})
    out = apply_policy(
        predicted, ["pct5", "pct20"], recent_offers=np.array([0, 0, 1, 0, 0]),
        avg_order_value=np.array([20.0, 80.0, 80.0, np.nan, 80.0]), policy=policy,
    )
    # row 0 cannot reach pct20's minimum spend: pct5 instead (1.0); row 2 had an offer already;
    # the budget of two coupons keeps the best expected profits (rows 4 and 1)
    assert out["coupon"].tolist() == ["none", "pct5", "none", "none", "pct5"]
    assert out["reason"].tolist() == ["budget", "model", "offer_limit", "budget", "model"]
