"""The elasticity estimator on synthetic panels: the final stage against statsmodels, and recovery under confounding."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
import torch

from training.elasticity.estimator import (
    EstimatorConfig,
    estimate_elasticities,
    fixed_effects_poisson,
    naive_loglog,
    week_folds,
)

PLANTED = {"calm": -0.8, "jumpy": -2.5}


def _panel(seed: int, products: int = 120, days: int = 140) -> pd.DataFrame:
    """Demand per impression = exp(product level + season + weekday) * (price / list) ** beta[group].

    Prices move weekly at random and rise with the season, when traffic and the per-impression rate rise too:
    both the naive daily fit and a fit without season controls are confounded.
    """
    rng = np.random.default_rng(seed)
    start = dt.date(2026, 1, 1)
    dates = pd.date_range(start, periods=days, freq="D")
    doy = dates.dayofyear.to_numpy()
    season = np.sin(2 * np.pi * doy / 365.25)
    dow = dates.dayofweek.to_numpy() + 1
    group = np.where(np.arange(products) % 2 == 0, "calm", "jumpy")
    beta = np.array([PLANTED[g] for g in group])
    level = rng.normal(-5.0, 0.7, products)
    weeks = days // 7 + 1
    weekly = np.exp(rng.normal(0, 0.15, (weeks, products)))
    weekly = np.where(rng.random((weeks, products)) < 0.4, weekly, np.roll(weekly, 1, axis=0))
    ratio = weekly[np.arange(days) // 7] * np.exp(0.3 * season)[:, None]
    impressions = rng.poisson(60 * np.exp(0.4 * season)[:, None] * np.ones((1, products)))
    rate = np.exp(level[None, :] + 0.3 * season[:, None] + 0.05 * (dow[:, None] >= 6) + beta[None, :] * np.log(ratio))
    units = rng.poisson(impressions * rate)
    list_price = rng.uniform(5, 100, products)
    return pd.DataFrame(
        {
            "date": np.repeat(dates.date, products),
            "product_id": np.tile([f"P{i:03d}" for i in range(products)], days),
            "category": np.tile(group, days),
            "list_price": np.tile(list_price, days),
            "price": (ratio * list_price[None, :]).reshape(-1),
            "impressions": impressions.reshape(-1),
            "units": units.reshape(-1),
            "day_of_week": np.repeat(dow, products),
            "day_of_year": np.repeat(doy, products),
        }
    )


def test_the_final_stage_matches_a_statsmodels_poisson_glm_with_product_dummies() -> None:
    import statsmodels.api as sm

    rng = np.random.default_rng(5)
    n_products, n_days = 25, 30
    product = np.repeat(np.arange(n_products), n_days)
    residual = rng.normal(0, 0.2, len(product))
    offset = np.log(rng.integers(20, 80, len(product)).astype(float)) - 3.0
    units = rng.poisson(np.exp(offset + rng.normal(0, 0.5, n_products)[product] - 1.7 * residual)).astype(float)
    beta, se, _ = fixed_effects_poisson(
        torch.from_numpy(units), torch.from_numpy(offset), torch.from_numpy(residual), torch.from_numpy(product)
    )
    dummies = pd.get_dummies(product).to_numpy(float)
    fit = sm.GLM(units, np.column_stack([residual, dummies]), family=sm.families.Poisson(), offset=offset).fit(
        cov_type="cluster", cov_kwds={"groups": product, "use_correction": False}
    )
    assert beta == pytest.approx(fit.params[0], abs=1e-7)
    # statsmodels' cluster correction without the small-sample factor, times ours (C / (C - 1))
    assert se == pytest.approx(fit.bse[0] * np.sqrt(n_products / (n_products - 1)), rel=1e-6)


def test_folds_are_whole_calendar_weeks() -> None:
    dates = pd.Series(pd.date_range("2026-01-05", periods=21, freq="D"))  # three Monday-to-Sunday weeks
    folds = week_folds(dates, 3)
    assert list(folds) == [0] * 7 + [1] * 7 + [2] * 7


def test_confounded_prices_the_estimator_recovers_the_planted_elasticities_the_naive_fit_does_not() -> None:
    frame = _panel(seed=11)
    result = estimate_elasticities(frame, EstimatorConfig())
    table = result.model.elasticities().set_index("group")
    for group, planted in PLANTED.items():
        row = table.loc[group]
        assert abs(row["elasticity"] - planted) < 3 * row["std_error"], (group, row.to_dict())
        assert row["ci_low"] < planted < row["ci_high"] or abs(row["elasticity"] - planted) < 2.5 * row["std_error"]
        assert row["std_error"] < 0.15
    naive = naive_loglog(frame, ("category",)).set_index("group")
    # traffic and price both follow the season: daily units barely fall (or rise) with price
    assert all(naive.loc[g, "elasticity"] > planted + 0.5 for g, planted in PLANTED.items())
    # the forecast reproduces the units it was fitted on, in total
    assert result.model.predict_units(frame).sum() == pytest.approx(frame["units"].sum(), rel=0.02)


def test_a_product_in_two_groups_is_refused() -> None:
    frame = _panel(seed=1, products=10, days=21)
    frame.loc[frame.index[0], "category"] = "jumpy" if frame.loc[frame.index[0], "category"] == "calm" else "calm"
    with pytest.raises(ValueError, match="several groups"):
        estimate_elasticities(frame)
