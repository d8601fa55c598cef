"""Profit-maximizing prices within guardrails, from the elasticity model, with intervals on what they would change.

For a product of elasticity beta (< 0), unit cost c and current price p0, constant-elasticity demand
``q(p) = q0 * (p / p0) ** beta`` makes the profit ``(p - c) * q(p)``:

* elastic (beta < -1): the profit has one maximum, at the Lerner price ``p* = c * beta / (1 + beta)``; it rises
  before and falls after, so the best price inside an interval is ``p*`` clipped to the interval;
* inelastic (-1 <= beta < 0): the profit rises with the price without end, so the best admissible price is the
  interval's top: the guardrails, not the model, decide how far to go.

The guardrails (``config.models.PricingGuardrails``): at most ``max_change`` away from the current price per
step, never below ``unit_cost * (1 + min_margin)``, never above ``list_price * max_list_multiple``. When they
conflict, "never" wins over "per step": a price below the floor or above the cap moves to it in one step, however
far. A product whose floor lies above its cap gets no recommendation (it keeps its price, ``binding =
"infeasible"``).

The expected changes are per day: ``q0`` is the model's expected units per day at the current price over the
baseline days (their impressions, season and weekdays), and units, revenue and profit change as
``q0 * ((p/p0) ** beta - 1)``, ``q0 * (p * (p/p0) ** beta - p0)`` and ``q0 * ((p - c) * (p/p0) ** beta - (p0 - c))``.
Their intervals come from draws of the group's elasticity from its normal sampling distribution (the model's
standard error); the uncertainty of ``q0`` itself is not included.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from config.models import PricingGuardrails
from training.elasticity.pyfunc import DemandModel

CHANGE_COLUMNS = ("units", "revenue", "profit")


def admissible_range(
    price: np.ndarray, unit_cost: np.ndarray, list_price: np.ndarray, guardrails: PricingGuardrails
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Lowest and highest admissible price per product (EUR), and whether any price is admissible."""
    floor = unit_cost * (1.0 + guardrails.min_margin)
    cap = list_price * guardrails.max_list_multiple
    low = np.maximum(price * (1.0 - guardrails.max_change), floor)
    high = np.minimum(price * (1.0 + guardrails.max_change), cap)
    high = np.maximum(high, np.minimum(floor, cap))  # below the floor already: the floor wins over max_change
    return low, high, floor <= cap


def optimal_price(elasticity: np.ndarray, unit_cost: np.ndarray) -> np.ndarray:
    """The unconstrained profit-maximizing price (Lerner rule); +inf where demand is inelastic (beta >= -1)."""
    beta = np.asarray(elasticity, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        lerner = unit_cost * beta / (1.0 + beta)
    return np.where(beta < -1.0, lerner, np.inf)


def recommend_prices(
    products: pd.DataFrame, elasticity: np.ndarray, guardrails: PricingGuardrails
) -> tuple[np.ndarray, np.ndarray]:
    """Recommended price per product (``price``, ``unit_cost``, ``list_price`` columns) and what bound it.

    ``binding`` is ``optimum`` (inside the range), ``max_change`` / ``floor`` / ``cap`` (the bound it sits on;
    ``max_change`` also when an inelastic product goes as far up as allowed) or ``infeasible``.
    """
    price = products["price"].to_numpy(np.float64)
    cost = products["unit_cost"].to_numpy(np.float64)
    listed = products["list_price"].to_numpy(np.float64)
    low, high, feasible = admissible_range(price, cost, listed, guardrails)
    best = optimal_price(elasticity, cost)
    recommended = np.where(feasible, np.clip(best, low, high), price)
    floor = cost * (1.0 + guardrails.min_margin)
    cap = listed * guardrails.max_list_multiple
    binding = np.select(
        [
            ~feasible,
            (recommended > low) & (recommended < high),
            np.isclose(recommended, cap) & (recommended >= high),
            np.isclose(recommended, floor) & (recommended <= low),
        ],
        ["infeasible", "optimum", "cap", "floor"],
        default="max_change",
    )
    return np.round(recommended, 2), binding


def expected_changes(
    baseline_units: np.ndarray,
    price: np.ndarray,
    new_price: np.ndarray,
    unit_cost: np.ndarray,
    elasticity: np.ndarray,
) -> dict[str, np.ndarray]:
    """Per-day change in units, revenue (EUR) and profit (EUR) when the price moves from ``price`` to ``new_price``.

    Arrays broadcast, so ``elasticity`` may carry a leading axis of draws.
    """
    volume = np.power(new_price / price, elasticity)
    return {
        "units": baseline_units * (volume - 1.0),
        "revenue": baseline_units * (new_price * volume - price),
        "profit": baseline_units * ((new_price - unit_cost) * volume - (price - unit_cost)),
    }


def price_recommendations(
    model: DemandModel,
    current: pd.DataFrame,
    baseline: pd.DataFrame,
    guardrails: PricingGuardrails,
    *,
    draws: int = 2000,
    seed: int = 7,
) -> pd.DataFrame:
    """One recommendation per product of ``current`` (its row of the run date) that the model has a group for.

    Args:
        model: the fitted demand model (elasticities, intervals, forecasts).
        current: one row per product: ``product_id``, the group columns, ``price``, ``list_price``, ``unit_cost``.
        baseline: the products' recent demand rows (the model's input columns): ``q0`` is their expected units
            per day at the current price.
        guardrails: the price limits.
        draws, seed: elasticity draws behind the intervals.

    Columns: product_id, group, elasticity (+ ci_low/ci_high), price, list_price, unit_cost, optimal_price (NaN
    when inelastic), recommended_price, change_pct, binding, baseline_units_per_day, and for units, revenue and
    profit the expected change per day with its interval (``<name>_change``, ``_low``, ``_high``).
    """
    products = current.drop_duplicates("product_id").reset_index(drop=True)
    g = model.group_index(products)
    products = products.loc[g >= 0].reset_index(drop=True)
    g = g[g >= 0]
    beta = np.asarray(model.elasticity)[g]
    se = np.asarray(model.std_error)[g]

    # q0: expected units per day at the current price, over each product's baseline days
    rows = baseline.loc[baseline["product_id"].isin(products["product_id"])].copy()
    current_price = rows["product_id"].map(products.set_index("product_id")["price"]).to_numpy(np.float64)
    rows["expected"] = model.predict_units(rows, current_price)
    per_product = rows.groupby("product_id").agg(expected=("expected", "sum"), days=("expected", "size"))
    per_day = (per_product["expected"] / per_product["days"]).reindex(products["product_id"]).fillna(0.0)
    q0 = per_day.to_numpy(np.float64)

    recommended, binding = recommend_prices(products, beta, guardrails)
    price = products["price"].to_numpy(np.float64)
    cost = products["unit_cost"].to_numpy(np.float64)
    point = expected_changes(q0, price, recommended, cost, beta)
    rng = np.random.default_rng(seed)
    # one draw per group and draw: products of a group share their elasticity's uncertainty
    group_draws = rng.standard_normal((draws, len(model.groups)))
    sampled = beta[None, :] + se[None, :] * group_draws[:, g]
    spread = expected_changes(q0[None, :], price[None, :], recommended[None, :], cost[None, :], sampled)
    alpha = 1.0 - model.confidence
    z = float(stats.norm.ppf(1 - alpha / 2))
    out = pd.DataFrame(
        {
            "product_id": products["product_id"].astype(str),
            "group": np.asarray(model.groups, dtype=object)[g],
            "elasticity": beta,
            "elasticity_ci_low": beta - z * se,
            "elasticity_ci_high": beta + z * se,
            "price": price,
            "list_price": products["list_price"].to_numpy(np.float64),
            "unit_cost": cost,
            "optimal_price": np.where(np.isfinite(optimal_price(beta, cost)), optimal_price(beta, cost), np.nan),
            "recommended_price": recommended,
            "change_pct": 100.0 * (recommended / price - 1.0),
            "binding": binding,
            "baseline_units_per_day": q0,
        }
    )
    for name in CHANGE_COLUMNS:
        out[f"{name}_change"] = point[name]
        out[f"{name}_change_low"] = np.quantile(spread[name], alpha / 2, axis=0)
        out[f"{name}_change_high"] = np.quantile(spread[name], 1 - alpha / 2, axis=0)
    return out
