"""Price recommendations: the profit optimum inside the guardrails, the bound that holds, the expected changes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from config.models import PricingGuardrails
from training.elasticity.price_recommendation import expected_changes, optimal_price, recommend_prices

GUARDRAILS = PricingGuardrails(max_change=0.10, min_margin=0.05, max_list_multiple=1.0)


def _products(price: list[float], cost: list[float], listed: list[float]) -> pd.DataFrame:
    return pd.DataFrame({"price": price, "unit_cost": cost, "list_price": listed})


def _grid_best(price: float, cost: float, listed: float, beta: float, g: PricingGuardrails) -> float:
    """Brute force: the admissible price with the highest profit under constant-elasticity demand."""
    low = max(price * (1 - g.max_change), cost * (1 + g.min_margin))
    high = min(price * (1 + g.max_change), listed * g.max_list_multiple)
    grid = np.linspace(low, high, 20001)
    profit = (grid - cost) * (grid / price) ** beta
    return float(grid[np.argmax(profit)])


def test_the_recommendation_is_the_best_admissible_price() -> None:
    rng = np.random.default_rng(3)
    n = 300
    listed = rng.uniform(5, 200, n)
    price = listed * rng.uniform(0.7, 1.0, n)
    cost = listed * rng.uniform(0.3, 0.6, n)
    beta = rng.uniform(-4.0, -0.3, n)
    keep = cost * 1.05 <= np.minimum(price * 1.1, listed)  # an admissible price exists
    products = _products(list(price[keep]), list(cost[keep]), list(listed[keep]))
    recommended, _ = recommend_prices(products, beta[keep], GUARDRAILS)
    for i, (p, c, lp, b) in enumerate(zip(price[keep], cost[keep], listed[keep], beta[keep], strict=True)):
        assert recommended[i] == pytest.approx(_grid_best(p, c, lp, b, GUARDRAILS), abs=0.011), (p, c, lp, b)


def test_an_interior_optimum_is_the_lerner_price() -> None:
    # beta -3, cost 10: p* = 10 * 3 / 2 = 15, within 10% of 15.5 and below the list price 20
    recommended, binding = recommend_prices(_products([15.5], [10.0], [20.0]), np.array([-3.0]), GUARDRAILS)
    assert recommended[0] == pytest.approx(15.0)
    assert binding[0] == "optimum"
    assert optimal_price(np.array([-3.0]), np.array([10.0]))[0] == pytest.approx(15.0)


def test_inelastic_demand_goes_up_as_far_as_the_guardrails_allow() -> None:
    products = _products([10.0, 19.0], [4.0, 4.0], [30.0, 20.0])
    recommended, binding = recommend_prices(products, np.array([-0.6, -0.6]), GUARDRAILS)
    assert list(recommended) == [11.0, 20.0]  # +10%, then capped at the list price
    assert list(binding) == ["max_change", "cap"]
    assert np.isinf(optimal_price(np.array([-0.6]), np.array([4.0]))[0])


def test_the_cost_floor_wins_over_the_step_limit_and_a_loss_maker_keeps_its_price() -> None:
    products = _products([10.0, 10.0], [12.0, 30.0], [30.0, 20.0])
    recommended, binding = recommend_prices(products, np.array([-3.0, -3.0]), GUARDRAILS)
    assert recommended[0] == pytest.approx(12.6)  # 12 * 1.05, though that is 26% above the current price
    assert binding[0] == "floor"
    assert recommended[1] == 10.0 and binding[1] == "infeasible"  # cost + 5% is above the list price


def test_expected_changes_follow_constant_elasticity() -> None:
    changes = expected_changes(np.array([10.0]), np.array([20.0]), np.array([22.0]), np.array([12.0]), np.array([-2.0]))
    volume = (22 / 20) ** -2.0
    assert changes["units"][0] == pytest.approx(10 * (volume - 1))
    assert changes["revenue"][0] == pytest.approx(10 * (22 * volume - 20))
    assert changes["profit"][0] == pytest.approx(10 * (10 * volume - 8))
    assert changes["units"][0] < 0 < changes["profit"][0]  # fewer units, more margin: worth it at beta -2, cost 12


def test_a_price_above_the_cap_comes_down_to_it_in_one_step() -> None:
    recommended, binding = recommend_prices(_products([13.5], [4.0], [10.0]), np.array([-0.8]), GUARDRAILS)
    assert recommended[0] == 10.0 and binding[0] == "cap"  # a 26% cut: the cap is never, the step limit per step
