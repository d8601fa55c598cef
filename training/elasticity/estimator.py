"""Price elasticity per group by double/debiased ML on product-day demand, in PyTorch.

What is estimated. The simulator (and the model) treat demand as units per impression: a product shown ``n``
times on day t at price p sells ``E[units] = n * r(X) * (p / list_price) ** beta_g``, where X are the controls
(product, season, weekday) and g the product's elasticity group (its category by default). ``beta_g`` is the
elasticity of units at fixed exposure and controls; it is what ``_truth/truth.json`` plants per category.
Counting units per day instead would mix price with footfall, which follows the season as prices do.

How. Prices are not random: the shop marks prices up in season, when traffic is high too. So the model
removes what the controls explain before it looks at price (Chernozhukov et al. 2018, partialling out, in its
panel form: the product effects by the within transformation, the rest by cross-fitted nuisances; adapted to a
log link):

1. Cross-fitting. The days are cut into ``n_folds`` folds by calendar week (a price holds for a week, so a fold
   never sees the week it predicts). For each fold, two nuisance models are fitted on the other folds:
   ``m(X)``, the expected log(price / list_price) (least squares), and ``l(X)``, log units per impression from
   the controls alone (Poisson, exposure as offset). Both are linear in product effects (ridge-penalized in
   ``l``, so a product that never sold gets a finite effect) and, per group, an intercept, annual Fourier terms
   of the day of year and weekday dummies; both are solved to the optimum by Newton's method.
2. Final stage, on the out-of-fold season/weekday parts ``m_cal``, ``l_cal`` of the nuisances: a Poisson
   regression of units with offset ``log n + l_cal(X)`` on the price residual ``v = log(price / list_price) -
   m_cal(X)`` with free product effects and one slope ``beta_g`` per group. Poisson with product fixed effects
   has no incidental-parameter bias, and the product parts of both nuisances are absorbed by those effects
   (a ridge-shrunk product level in the offset attenuated strongly elastic groups by 5-10%).
3. Intervals: the sandwich of the profiled score, cluster-robust by product (a product's days share its weekly
   prices), times C/(C-1), normal quantiles.
4. Forecasts: the nuisances refitted on all rows, and per product a gamma-Poisson posterior mean of its level at
   ``beta_g`` (shrunk towards the group's rate by ``prior_units``).

Why not the shared minibatch trainer (``training.shared.trainer.fit``)? Every piece here is a convex GLM with a few
hundred parameters per group; the sandwich covariance needs the exact optimum, which Newton's method reaches in
milliseconds, while early-stopped minibatch AdamW stops near it, at a point that depends on the seed.

The naive baseline for comparison (:func:`naive_loglog`): per group, OLS of log(daily units) on log(price)
within products over the days with sales, no exposure and no controls, as a first analysis would do.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from scipy import stats

from training.elasticity.pyfunc import DemandModel, Nuisance, calendar_features, group_key

logger = logging.getLogger(__name__)

DEMAND_COLUMNS = (
    "product_id",
    "price",
    "list_price",
    "impressions",
    "units",
    "day_of_week",
    "day_of_year",
)


@dataclass(frozen=True)
class EstimatorConfig:
    """How the elasticities are estimated; the defaults are the ones ``config/models.yaml`` documents."""

    group_columns: tuple[str, ...] = ("category",)
    n_folds: int = 3
    product_penalty: float = 1.0  # ridge on the demand nuisance's product effects (1 / prior variance of a log level)
    prior_units: float = 1.0  # forecasts: a product's level is shrunk towards its group's as if by this many units
    min_units: float = 10.0  # a group that sold fewer units in the window gets no elasticity (left out, logged)
    confidence: float = 0.95
    max_iter: int = 50  # Newton iterations per nuisance fit
    threads: int = 1  # torch intra-op threads while fitting (small problems; more only spins on a busy box)


def prepare(frame: pd.DataFrame, group_columns: tuple[str, ...]) -> pd.DataFrame:
    """Rows the estimator can use: every ``DEMAND_COLUMNS`` present, impressions > 0 and positive prices.

    Adds ``group`` (the elasticity group) and ``treatment`` = log(price / list_price).
    """
    missing = [c for c in (*DEMAND_COLUMNS, *group_columns) if c not in frame.columns]
    if missing:
        raise KeyError(f"demand rows lack column(s) {', '.join(missing)}")
    rows = frame.loc[(frame["impressions"] > 0) & (frame["price"] > 0) & (frame["list_price"] > 0)].copy()
    rows["units"] = pd.to_numeric(rows["units"]).astype("float64")
    rows["impressions"] = pd.to_numeric(rows["impressions"]).astype("float64")
    rows["group"] = group_key(rows, group_columns)
    rows["treatment"] = np.log(rows["price"].to_numpy(np.float64) / rows["list_price"].to_numpy(np.float64))
    return rows.reset_index(drop=True)


@dataclass(frozen=True)
class _GroupRows:
    """One group's rows as float64 tensors: product index (into the group's products), controls, data."""

    product: torch.Tensor  # (n,) int64
    controls: torch.Tensor  # (n, 1 + k): intercept then calendar features
    n_products: int


@dataclass
class LinearControls:
    """A nuisance of one group: ``effect[product] + controls @ coef``; the product effects are ridge-penalized."""

    effect: torch.Tensor  # (n_products,)
    coef: torch.Tensor  # (1 + k,)

    def __call__(self, rows: _GroupRows) -> torch.Tensor:
        known = rows.product >= 0
        effect = torch.where(known, self.effect[rows.product.clamp(min=0)], torch.zeros((), dtype=torch.float64))
        return effect + rows.controls @ self.coef


def _newton(
    rows: _GroupRows,
    curvature,
    init: float,
    penalty: float,
    max_iter: int,
    init_effect: torch.Tensor | None = None,
) -> LinearControls:
    """Minimize ``sum_i loss_i(eta_i) + penalty/2 * |effect|^2`` by Newton's method with step halving.

    ``curvature(eta) -> (loss, dloss/deta, d2loss/deta2)`` per row. The Hessian's product block is diagonal (a row
    has one product), so each step solves only the small controls block (its Schur complement).
    """
    n_p, k = rows.n_products, rows.controls.shape[1]
    x, p = rows.controls, rows.product
    effect = torch.zeros(n_p, dtype=torch.float64) if init_effect is None else init_effect.clone()
    model = LinearControls(effect, torch.zeros(k, dtype=torch.float64))
    model.coef[0] = init

    def objective(m: LinearControls) -> float:
        return float(curvature(m(rows))[0].sum() + 0.5 * penalty * (m.effect**2).sum())

    current = objective(model)
    for _ in range(max_iter):
        _, d1, d2 = curvature(model(rows))
        g_a = torch.zeros(n_p, dtype=torch.float64).index_add_(0, p, d1) + penalty * model.effect
        g_c = x.T @ d1
        h_aa = torch.zeros(n_p, dtype=torch.float64).index_add_(0, p, d2) + penalty
        h_ac = torch.zeros(n_p, k, dtype=torch.float64).index_add_(0, p, x * d2[:, None])
        h_cc = x.T @ (x * d2[:, None])
        schur = h_cc - h_ac.T @ (h_ac / h_aa[:, None]) + 1e-10 * torch.eye(k, dtype=torch.float64)
        step_c = torch.linalg.solve(schur, g_c - h_ac.T @ (g_a / h_aa))
        step_a = (g_a - h_ac @ step_c) / h_aa
        t = 1.0
        while True:
            trial = LinearControls(model.effect - t * step_a, model.coef - t * step_c)
            value = objective(trial)
            if value <= current + 1e-12 or t < 1e-6:
                break
            t /= 2
        model, previous, current = trial, current, value
        if abs(previous - current) <= 1e-10 * max(1.0, abs(current)):
            break
    return model


def fit_price_nuisance(rows: _GroupRows, treatment: torch.Tensor, max_iter: int) -> LinearControls:
    """m(X): least squares of log(price / list_price) on the controls (product effects and calendar)."""

    def squared(eta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        r = eta - treatment
        return 0.5 * r**2, r, torch.ones_like(r)

    # a vanishing ridge only keeps the solve defined for a product with a single day
    return _newton(rows, squared, float(treatment.mean()), 1e-6, max_iter)


def fit_demand_nuisance(
    rows: _GroupRows, units: torch.Tensor, log_exposure: torch.Tensor, penalty: float, max_iter: int
) -> LinearControls:
    """l(X): Poisson regression of units on the controls with log(impressions) as offset, no price."""

    def poisson(eta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        mu = torch.exp(eta + log_exposure)
        return mu - units * (eta + log_exposure), mu - units, mu

    init = math.log(max(float(units.sum()), 0.5) / float(log_exposure.exp().sum()))
    return _newton(rows, poisson, init, penalty, max_iter)


@dataclass(frozen=True)
class GroupEstimate:
    """The final stage of one group."""

    elasticity: float
    std_error: float  # cluster-robust (by product)
    rows: int  # product-days with impressions
    products: int  # products with at least one unit: the others carry no information about the slope
    units: float


def fixed_effects_poisson(
    units: torch.Tensor, offset: torch.Tensor, residual: torch.Tensor, product: torch.Tensor, max_iter: int = 50
) -> tuple[float, float, torch.Tensor]:
    """Poisson MLE of ``log E[units] = offset + alpha_product + beta * residual`` with free product effects.

    Only products with units carry information (the conditional likelihood given a product's total does not
    involve its effect), so ``product`` should index those. Returns beta, its cluster-robust standard error
    (clusters = products, the Wooldridge 1999 sandwich of the profiled score, times C/(C-1)) and the effects.
    """
    n_products = int(product.max()) + 1
    rows = _GroupRows(product, residual[:, None], n_products)

    def poisson(eta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        mu = torch.exp(eta + offset)
        return mu - units * (eta + offset), mu - units, mu

    fit = _newton(rows, poisson, 0.0, 0.0, max_iter, init_effect=_log_ratio_by_product(units, offset, product))
    mu = torch.exp(fit(rows) + offset)
    # profile the effects out: per product, the residual centred on its mu-weighted mean
    mu_p = torch.zeros(n_products, dtype=torch.float64).index_add_(0, product, mu)
    centre = torch.zeros(n_products, dtype=torch.float64).index_add_(0, product, mu * residual) / mu_p
    centred = residual - centre[product]
    hessian = float((mu * centred * residual).sum())
    score = torch.zeros(n_products, dtype=torch.float64).index_add_(0, product, (units - mu) * centred)
    scale = n_products / (n_products - 1) if n_products > 1 else 1.0
    variance = float((score**2).sum()) * scale / hessian**2
    return float(fit.coef[0]), math.sqrt(variance), fit.effect


def _log_ratio_by_product(units: torch.Tensor, offset: torch.Tensor, product: torch.Tensor) -> torch.Tensor:
    """Starting product effects: log(units / exp(offset)) per product (the MLE at beta = 0)."""
    n = int(product.max()) + 1
    y = torch.zeros(n, dtype=torch.float64).index_add_(0, product, units)
    e = torch.zeros(n, dtype=torch.float64).index_add_(0, product, torch.exp(offset))
    return torch.log(y.clamp(min=1e-3) / e)


class NoElasticity(ValueError):
    """No group's elasticity could be estimated from the rows (too few units sold, or no fit converged)."""


def week_folds(dates: pd.Series, n_folds: int) -> np.ndarray:
    """Fold of each row: its Monday-based calendar week, counted from the earliest row's, modulo ``n_folds``."""
    days = pd.to_datetime(dates).to_numpy().astype("datetime64[D]").astype(np.int64)
    week = (days + 3) // 7  # 1970-01-01 was a Thursday: +3 makes weeks start on Mondays
    return ((week - week.min()) % n_folds).astype(np.int64)


@dataclass(frozen=True)
class EstimationResult:
    """The fitted demand model and what the final stage saw, per group."""

    model: DemandModel
    estimates: dict[str, GroupEstimate]
    rows: int
    seconds: float


def _group_rows(part: pd.DataFrame, products: list[str]) -> _GroupRows:
    index = {p: i for i, p in enumerate(products)}
    cal = calendar_features(part["day_of_week"].to_numpy(), part["day_of_year"].to_numpy())
    return _GroupRows(
        product=torch.tensor([index.get(p, -1) for p in part["product_id"]], dtype=torch.int64),
        controls=torch.from_numpy(np.column_stack([np.ones(len(part)), cal])),
        n_products=len(products),
    )


def _select(rows: _GroupRows, mask: np.ndarray) -> _GroupRows:
    m = torch.from_numpy(mask)
    return _GroupRows(rows.product[m], rows.controls[m], rows.n_products)


def _calendar_part(fit: LinearControls, rows: _GroupRows) -> torch.Tensor:
    """The controls' part of a nuisance (intercept and calendar), without the product effects."""
    return rows.controls @ fit.coef


@dataclass
class _GroupFit:
    estimate: GroupEstimate
    price: LinearControls  # m(X) refitted on all rows (its calendar part is what forecasting uses)
    demand: LinearControls  # l(X) refitted on all rows
    level: dict[str, float]  # log units per impression of each product, at beta and the refitted nuisances
    base_level: float  # the group's, for products the model has not seen


def _fit_group(part: pd.DataFrame, folds: np.ndarray, config: EstimatorConfig) -> _GroupFit | None:
    """The group's elasticity, nuisances and forecast levels; None when it sold too little to estimate."""
    group = part["group"].iloc[0]
    if part["units"].sum() < config.min_units:
        logger.warning("group %r sold %d units (< %g): no elasticity", group, part["units"].sum(), config.min_units)
        return None
    products = sorted(part["product_id"].unique())
    design = _group_rows(part, products)
    units = torch.from_numpy(part["units"].to_numpy(np.float64))
    log_n = torch.from_numpy(np.log(part["impressions"].to_numpy(np.float64)))
    treatment = torch.from_numpy(part["treatment"].to_numpy(np.float64))
    m_cal, l_cal = torch.zeros(len(part), dtype=torch.float64), torch.zeros(len(part), dtype=torch.float64)
    for k in np.unique(folds):
        train, test = folds != k, folds == k
        t_train, t_test = torch.from_numpy(train), torch.from_numpy(test)
        price = fit_price_nuisance(_select(design, train), treatment[t_train], config.max_iter)
        demand = fit_demand_nuisance(
            _select(design, train), units[t_train], log_n[t_train], config.product_penalty, config.max_iter
        )
        m_cal[t_test] = _calendar_part(price, _select(design, test))
        l_cal[t_test] = _calendar_part(demand, _select(design, test))

    residual = treatment - m_cal
    offset = log_n + l_cal
    sold_total = torch.zeros(len(products), dtype=torch.float64).index_add_(0, design.product, units)
    informative = (sold_total > 0)[design.product]
    remap = torch.cumsum((sold_total > 0).to(torch.int64), 0) - 1
    beta, se, _ = fixed_effects_poisson(
        units[informative], offset[informative], residual[informative], remap[design.product[informative]]
    )
    if not (math.isfinite(beta) and math.isfinite(se) and abs(beta) < 20.0):  # separation: sales at one price only
        logger.warning("group %r: the elasticity does not converge (%s +- %s): left out", group, beta, se)
        return None

    price_full = fit_price_nuisance(design, treatment, config.max_iter)
    demand_full = fit_demand_nuisance(design, units, log_n, config.product_penalty, config.max_iter)
    # Forecast levels at beta: a gamma-Poisson posterior mean per product, so a product that sold little is
    # pulled towards its group's rate instead of to zero.
    residual_full = treatment - _calendar_part(price_full, design)
    exposure = torch.exp(log_n + _calendar_part(demand_full, design) + beta * residual_full)
    expected = torch.zeros(len(products), dtype=torch.float64).index_add_(0, design.product, exposure)
    base_rate = float(units.sum()) / float(expected.sum())
    prior = config.prior_units
    level = torch.log((sold_total + prior) / (expected + prior / base_rate))
    estimate = GroupEstimate(beta, se, len(part), int((sold_total > 0).sum()), float(units.sum()))
    return _GroupFit(
        estimate, price_full, demand_full, dict(zip(products, level.tolist(), strict=True)), math.log(base_rate)
    )


def estimate_elasticities(frame: pd.DataFrame, config: EstimatorConfig | None = None) -> EstimationResult:
    """Cross-fitted DML elasticities per group from product-day demand rows (see the module docstring).

    ``frame`` needs ``DEMAND_COLUMNS``, the group columns and ``date`` (for the week folds). A product must stay
    in one group. The returned model forecasts with the nuisances refitted on all rows.
    """
    config = config or EstimatorConfig()
    started = time.perf_counter()
    rows = prepare(frame, config.group_columns)
    if rows.empty:
        raise ValueError("no product-day with impressions: nothing to estimate elasticities from")
    rows["product_id"] = rows["product_id"].astype(str)
    spread = rows.groupby("product_id")["group"].nunique()
    if (spread > 1).any():
        raise ValueError(
            f"{int((spread > 1).sum())} product(s) fall in several groups of {config.group_columns} "
            f"(e.g. {spread[spread > 1].index[0]}): the group must be constant per product"
        )
    folds = week_folds(rows["date"], config.n_folds)
    if len(np.unique(folds)) < 2:  # a window inside one calendar week: folds by day (a week's price then leaks)
        logger.warning("the rows span one calendar week: cross-fitting by day instead of by week")
        days = pd.to_datetime(rows["date"]).to_numpy().astype("datetime64[D]").astype(np.int64)
        folds = (days - days.min()) % config.n_folds
    if len(np.unique(folds)) < 2:
        raise ValueError("the rows span a single day: cross-fitting needs two")
    groups = sorted(rows["group"].unique())
    fits: dict[str, _GroupFit] = {}
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(config.threads)
    try:
        for group in groups:
            in_group = (rows["group"] == group).to_numpy()
            fit = _fit_group(rows.loc[in_group], folds[in_group], config)
            if fit is not None:
                fits[group] = fit
    finally:
        torch.set_num_threads(previous_threads)
    if not fits:
        raise NoElasticity(f"no group of {config.group_columns} sold {config.min_units:g} units: no elasticity at all")
    groups = [g for g in groups if g in fits]

    z = float(stats.norm.ppf(0.5 + config.confidence / 2))
    est = [fits[g].estimate for g in groups]
    demand = Nuisance(
        {p: v - fits[g].base_level for g in groups for p, v in fits[g].level.items()},
        tuple(fits[g].base_level + float(fits[g].demand.coef[0]) for g in groups),
        tuple(tuple(float(c) for c in fits[g].demand.coef[1:]) for g in groups),
    )
    price = Nuisance(
        {},  # a product's own price level is absorbed by its demand level, which was fitted on the same residual
        tuple(float(fits[g].price.coef[0]) for g in groups),
        tuple(tuple(float(c) for c in fits[g].price.coef[1:]) for g in groups),
    )
    model = DemandModel(
        group_columns=tuple(config.group_columns),
        groups=tuple(groups),
        elasticity=tuple(e.elasticity for e in est),
        std_error=tuple(e.std_error for e in est),
        ci_low=tuple(e.elasticity - z * e.std_error for e in est),
        ci_high=tuple(e.elasticity + z * e.std_error for e in est),
        level=tuple(0.0 for _ in groups),
        confidence=config.confidence,
        demand=demand,
        price=price,
    )
    seconds = time.perf_counter() - started
    logger.info(
        "elasticities from %d product-days (%d products, %d groups, %d folds) in %.1f s: %s",
        len(rows),
        rows["product_id"].nunique(),
        len(groups),
        config.n_folds,
        seconds,
        ", ".join(f"{g} {e.elasticity:+.2f}±{e.std_error:.2f}" for g, e in zip(groups, est, strict=True)),
    )
    return EstimationResult(model, dict(zip(groups, est, strict=True)), len(rows), seconds)


def naive_loglog(frame: pd.DataFrame, group_columns: tuple[str, ...], confidence: float = 0.95) -> pd.DataFrame:
    """The naive fit: per group, OLS of log(units per day) on log(price), within products (statsmodels).

    Product-days with sales only (log of zero is undefined), both logs demeaned per product (product fixed
    effects), no exposure and no season or weekday controls: what a first panel analysis does. Standard
    errors are cluster-robust by product. Columns: group, elasticity, std_error, ci_low, ci_high, rows.
    """
    import statsmodels.api as sm

    rows = frame.loc[(frame["units"] > 0) & (frame["price"] > 0)].copy()
    rows["group"] = group_key(rows, group_columns)
    rows["log_units"] = np.log(pd.to_numeric(rows["units"]).to_numpy(np.float64))
    rows["log_price"] = np.log(rows["price"].to_numpy(np.float64))
    for column in ("log_units", "log_price"):
        rows[column] = rows[column] - rows.groupby("product_id")[column].transform("mean")
    out = []
    for group, part in rows.groupby("group", sort=True):
        if len(part) < 3 or part["log_price"].abs().sum() == 0:
            continue
        codes = pd.factorize(part["product_id"])[0]
        fit = sm.OLS(part["log_units"].to_numpy(), part[["log_price"]].to_numpy()).fit(
            cov_type="cluster", cov_kwds={"groups": codes}
        )
        low, high = fit.conf_int(alpha=1 - confidence)[0]
        out.append(
            {
                "group": group,
                "elasticity": float(fit.params[0]),
                "std_error": float(fit.bse[0]),
                "ci_low": float(low),
                "ci_high": float(high),
                "rows": len(part),
            }
        )
    return pd.DataFrame(out, columns=["group", "elasticity", "std_error", "ci_low", "ci_high", "rows"])
