"""Conversion model: P(session converts) from the session's performance KPIs, context and customer history.

Input: a training set (parquet) as Feast's ``get_historical_features`` writes it for feature service
``conversion_v1``: ``session_id``, ``customer_id``, ``event_timestamp`` (UTC), the label ``converted``, the basket
label ``added_to_cart`` (the session put a product in the cart, from the impressions), the ``session_kpis``
features (device, channel, is_anonymous, 25 KPIs) and the ``customer_history`` features (null when the customer has
no history, e.g. anonymous sessions).

The model follows the shop's funnel, P(convert) = P(basket) x P(checkout | basket), as one network
(:class:`training.conversion.pyfunc.ConversionFunnel`):

* basket: an MLP over every feature, trained on every session (Adam, early stopping on the validation days);
* checkout: on the sessions with a basket, ``sigmoid(h(kpis)) x sigmoid(g(context))`` where ``h`` is linear in the
  KPIs it selects and ``g`` a small MLP of device, channel and history
  (:class:`~training.conversion.pyfunc.CheckoutNet`).
  It is fitted to convergence by full-batch L-BFGS as a relaxed lasso: a smoothed-L1 fit picks the KPIs, a refit
  with L2 on the context network only estimates their effects unshrunk. An early-stopped MLP stopped at 60-95% of
  the planted effects; the product form is the simulator's and a real checkout's (a shopper who would not buy
  anyway is not lost by a slow payment page).

A training set without ``added_to_cart`` (the UCI benchmark's) trains the single-stage MLP of before. The split is
by time inside the training window (the ``training_window_days`` days up to the run date):

    [ train ............................ | validation | holdout (last holdout_days) ]

The preprocessing is fitted on train only; a seeded search over the config's grid picks, stage by stage, the
candidate with the lowest validation loss; with ``calibration: platt`` a logistic recalibration fitted on the
validation days is folded into the basket stage's output, and the checkout stage's intercept alone is refitted there
(:func:`calibrate_funnel`: a Platt slope of 0.94 on that stage shrank every KPI effect by 6%). The holdout is
touched once, for the metrics, the single-stage model's paired comparison (``funnel_minus_single.*``), the KPI
impact analysis (``training/conversion/kpi_impact.py``, split by funnel stage, rendered by ``kpi_impact_report.py``,
logged under ``kpi_impact/``) and the promotion gate. The model is logged as a pyfunc
(``training/conversion/pyfunc.py``, models-from-code; ``params={"output": "stages"}`` returns both stages) and
registered as a new version of ``conversion``; promotion is the gate's business, not this module's.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch
from torch import nn

from config.models import DriftConfig, KpiImpactConfig, ModelConfig, ModelsConfig, get_models_config
from feature_repo.contract.schema import KPI_NAMES, SESSIONS
from feature_repo.features.tables import CUSTOMER_HISTORY, EVENT_TIMESTAMP, SESSION_KPIS
from training.conversion import pyfunc as conversion_pyfunc
from training.conversion.kpi_impact import KpiImpactResult, analyze_kpi_impact
from training.conversion.kpi_impact_report import write_report
from training.conversion.pyfunc import (
    STAGES,
    CheckoutNet,
    ConversionFunnel,
    ConversionMLP,
    ConversionPreprocessor,
    _kpi_values,
    _numeric,
    calibrated,
    predict_matrix,
    predict_proba,
    predict_stages,
    save_model_files,
)
from training.shared import nets, publish, registry, results
from training.shared.devices import select_device
from training.shared.metrics import binary_classification_metrics, expected_calibration_error
from training.shared.results import Candidate
from training.shared.trainer import (
    EpochRecord,
    FitResult,
    LoopConfig,
    TrainingData,
    cpu_threads,
    expand_grid,
    fit,
    fit_full_batch,
)

logger = logging.getLogger(__name__)

MODEL_NAME = "conversion"
LABEL = "converted"
BASKET = "added_to_cart"  # the funnel's first stage: the session added at least one product to the cart
PREDICTION = "p_convert"
ID_COLUMNS = ("session_id", "customer_id", EVENT_TIMESTAMP)
CATEGORICAL_COLUMNS = ("device", "channel")
FLAG_COLUMNS = ("is_anonymous",)
KPI_COLUMNS = KPI_NAMES
COUNT_KPI_COLUMNS = tuple(c.name for c in SESSIONS.columns if c.name in KPI_NAMES and c.unit == "count")
# the numeric history columns (acquisition_channel, CRM data the promotion model reads, is not a conversion input)
HISTORY_COLUMNS = tuple(c.name for c in CUSTOMER_HISTORY.columns if c.dtype != "string")
SESSION_FEATURES = tuple(c for c in SESSION_KPIS.column_names if c != "customer_id")
FEATURE_COLUMNS = (*SESSION_FEATURES, *HISTORY_COLUMNS)  # what the pyfunc takes, in the training set's order
NESTED_KEYS = ("hidden_sizes", "checkout_hidden_sizes")
# The funnel's checkout stage (:class:`CheckoutNet`): its context networks' sizes and the L2 on their weights. It is
# fitted to convergence (L-BFGS), so the loop keys (learning rate, epochs, patience) are the basket stage's and the
# single-stage model's alone.
CHECKOUT_KEYS = {"checkout_hidden_sizes", "checkout_l2", "checkout_l1"}
CHECKOUT_DEFAULTS = {"checkout_hidden_sizes": [8], "checkout_l2": 0.001, "checkout_l1": 0.003}
# A KPI whose checkout coefficient the L1 fit leaves below this (log-odds per standard deviation of the KPI's input)
# is dropped from the checkout stage; the smoothed L1 leaves a dropped KPI near 1e-3, a real effect is above 0.05.
KPI_SELECTION_TOLERANCE = 0.01
L1_SMOOTHING = 1e-6  # |b| is minimised as sqrt(b^2 + this): differentiable, so L-BFGS applies
MODEL_KEYS = {
    "hidden_sizes",
    "learning_rate",
    "weight_decay",
    "dropout",
    "batch_size",
    "max_epochs",
    "patience",
    "seed",
    *CHECKOUT_KEYS,
}


@dataclass(frozen=True)
class TimeSplit:
    """Rows of the training window cut by event date (UTC); dates are inclusive."""

    train: pd.DataFrame
    validation: pd.DataFrame
    holdout: pd.DataFrame
    window_start: dt.date
    validation_start: dt.date
    holdout_start: dt.date
    window_end: dt.date

    def describe(self) -> str:
        return (
            f"train {self.window_start}..{self.validation_start - dt.timedelta(days=1)} ({len(self.train)} rows), "
            f"validation {self.validation_start}..{self.holdout_start - dt.timedelta(days=1)} "
            f"({len(self.validation)}), holdout {self.holdout_start}..{self.window_end} ({len(self.holdout)})"
        )


@dataclass
class TrainingResult(results.SearchedTrainingResult):
    """What ``train_conversion`` logged and registered; ``to_dict`` travels through XCom."""


# --- data ----------------------------------------------------------------------------------------------------------
def read_training_set(path: Path) -> pd.DataFrame:
    """Read a conversion training set (a parquet file or folder) and check its columns."""
    frame = pd.read_parquet(path)
    required = [*ID_COLUMNS, LABEL, *SESSION_FEATURES]
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise KeyError(f"training set {path} lacks column(s): {', '.join(missing)}")
    for column in HISTORY_COLUMNS:  # a set built without history (or before the first history day) is allowed
        if column not in frame.columns:
            frame[column] = np.nan
    for column in (*FLAG_COLUMNS, *KPI_COLUMNS, *HISTORY_COLUMNS):
        # Feast hands integer features over as nullable Int64, which MLflow's schema enforcement refuses.
        if isinstance(frame[column].dtype, pd.api.extensions.ExtensionDtype):
            frame[column] = pd.to_numeric(frame[column]).astype("float64")
    ts = pd.to_datetime(frame[EVENT_TIMESTAMP], utc=True)
    frame[EVENT_TIMESTAMP] = ts
    if frame[LABEL].isna().any():
        raise ValueError(f"training set {path}: {int(frame[LABEL].isna().sum())} rows have no label")
    frame[LABEL] = frame[LABEL].astype(bool)
    if BASKET in frame.columns:
        if frame[BASKET].isna().any():
            raise ValueError(f"training set {path}: {int(frame[BASKET].isna().sum())} rows have no {BASKET}")
        frame[BASKET] = frame[BASKET].astype(bool)
        direct = frame[LABEL] & ~frame[BASKET]
        if direct.any():  # e.g. a buy-now button: the order is the basket
            logger.warning("training set %s: %d converted sessions without %s count as baskets", path,
                           int(direct.sum()), BASKET)
            frame[BASKET] = frame[BASKET] | frame[LABEL]
    return frame


def has_funnel(frame: pd.DataFrame) -> bool:
    """Whether the rows carry the basket stage (the nightly's do; a set without it trains one stage)."""
    return BASKET in frame.columns


def split_by_time(
    frame: pd.DataFrame, day: dt.date, window_days: int, holdout_days: int, validation_days: int
) -> TimeSplit:
    """Cut the ``window_days`` days up to ``day`` (inclusive) into train, validation and holdout by event date."""
    if window_days <= holdout_days + validation_days:
        raise ValueError(
            f"a {window_days}-day window leaves no training days after {holdout_days} holdout and "
            f"{validation_days} validation days"
        )
    window_start = day - dt.timedelta(days=window_days - 1)
    holdout_start = day - dt.timedelta(days=holdout_days - 1)
    validation_start = holdout_start - dt.timedelta(days=validation_days)
    dates = frame[EVENT_TIMESTAMP].dt.date
    in_window = (dates >= window_start) & (dates <= day)
    ordered = frame.loc[in_window].sort_values([EVENT_TIMESTAMP, "session_id"], kind="stable")
    odates = ordered[EVENT_TIMESTAMP].dt.date
    split = TimeSplit(
        train=ordered.loc[odates < validation_start].reset_index(drop=True),
        validation=ordered.loc[(odates >= validation_start) & (odates < holdout_start)].reset_index(drop=True),
        holdout=ordered.loc[odates >= holdout_start].reset_index(drop=True),
        window_start=window_start,
        validation_start=validation_start,
        holdout_start=holdout_start,
        window_end=day,
    )
    for part in ("train", "validation", "holdout"):
        rows: pd.DataFrame = getattr(split, part)
        if rows.empty:
            raise ValueError(f"no {part} rows for {day} ({split.describe()}): does the training set cover the window?")
        if rows[LABEL].nunique() < 2:
            raise ValueError(f"the {part} rows for {day} hold one class only ({split.describe()})")
    first = frame[EVENT_TIMESTAMP].min().date()
    if first > window_start:
        logger.warning(
            "the training set starts on %s, after the window start %s: training on fewer days", first, window_start
        )
    return split


# --- model ---------------------------------------------------------------------------------------------------------
def fit_preprocessor(train: pd.DataFrame) -> ConversionPreprocessor:
    return ConversionPreprocessor.fit(
        train,
        list(KPI_COLUMNS),
        list(HISTORY_COLUMNS),
        list(FLAG_COLUMNS),
        list(CATEGORICAL_COLUMNS),
        count_columns=COUNT_KPI_COLUMNS,
    )


def training_data(preprocessor: ConversionPreprocessor, rows: pd.DataFrame, target: str = LABEL) -> TrainingData:
    """Model inputs and 0/1 targets (``target``: the label or the basket) of ``rows`` as CPU tensors."""
    x = torch.from_numpy(preprocessor.transform(rows))
    y = torch.from_numpy(rows[target].to_numpy(dtype=np.float32))
    return TrainingData((x,), y)


@dataclass(frozen=True)
class FunnelData:
    """The two stages' rows: every session for the basket stage, the sessions with a basket for checkout."""

    basket: TrainingData
    checkout: TrainingData
    context: list[int]  # the non-KPI columns of the matrix (:class:`CheckoutNet`'s context net)

    @classmethod
    def of(cls, preprocessor: ConversionPreprocessor, rows: pd.DataFrame) -> FunnelData:
        data = training_data(preprocessor, rows, BASKET)
        with_basket = torch.from_numpy(rows[BASKET].to_numpy(dtype=bool))
        checkout = TrainingData((data.inputs[0][with_basket],), torch.from_numpy(rows[LABEL].to_numpy(np.float32))[
            with_basket])
        return cls(data, checkout, preprocessor.context_indices)

    def resampled(self, rows: torch.Tensor) -> FunnelData:
        """The sessions at ``rows`` (a bootstrap draw; both stages from the same sessions)."""
        n = len(self.basket)
        x, b = self.basket.inputs[0][rows], self.basket.target[rows]
        checkout_y = torch.zeros(n)
        checkout_y[_basket_positions(self.basket)] = self.checkout.target
        keep = b > 0.5
        return FunnelData(TrainingData((x,), b), TrainingData((x[keep],), checkout_y[rows][keep]), self.context)


def day_bootstrap_rows(days: np.ndarray, seed: int) -> torch.Tensor:
    """Row positions of a bootstrap resample of whole days: ``days`` numbers each row's day (0..D-1); D days are
    drawn with replacement and every row of a drawn day comes in, once per draw.

    Sessions of one day share that day's conditions (the backend's load, which moves several latency KPIs at
    once, the campaigns, the traffic mix), so they are not independent draws: resampling sessions gave refit
    intervals too narrow to hold a planted effect that the day-to-day variation moves (the search latency's on
    lake seed 8: 52.7-77.5 per 100k against 48.5; resampling days: 45.7-84.5).
    """
    n_days = int(days.max()) + 1
    drawn = np.bincount(np.random.default_rng(seed).integers(0, n_days, n_days), minlength=n_days)
    return torch.from_numpy(np.repeat(np.arange(len(days)), drawn[days]))


def _basket_positions(data: TrainingData) -> torch.Tensor:
    return torch.nonzero(data.target > 0.5).squeeze(1)


def _loop_config(hp: dict[str, Any]) -> LoopConfig:
    return LoopConfig(
        learning_rate=float(hp["learning_rate"]),
        weight_decay=float(hp.get("weight_decay", 0.0)),
        batch_size=int(hp["batch_size"]),
        max_epochs=int(hp["max_epochs"]),
        patience=int(hp["patience"]),
        seed=int(hp["seed"]),
    )


def _build(hp: dict[str, Any], n_features: int) -> Callable[[], ConversionMLP]:
    sizes, dropout = [int(s) for s in hp["hidden_sizes"]], float(hp.get("dropout", 0.0))
    return lambda: ConversionMLP(n_features, sizes, dropout)


def _checkout_hp(hp: dict[str, Any]) -> tuple[list[int], float, float]:
    full = {**CHECKOUT_DEFAULTS, **hp}
    return [int(s) for s in full["checkout_hidden_sizes"]], float(full["checkout_l2"]), float(full["checkout_l1"])


def _project(grid: list[dict[str, Any]], keep: Callable[[str], bool]) -> list[dict[str, Any]]:
    """The distinct grid points restricted to the keys ``keep`` accepts, in grid order."""
    out: list[dict[str, Any]] = []
    for hp in grid:
        point = {k: v for k, v in hp.items() if keep(k)}
        if point not in out:
            out.append(point)
    return out


def fit_checkout(
    hp: dict[str, Any], train: TrainingData, validation: TrainingData, context: list[int], device: torch.device,
    label: str,
) -> FitResult:
    """The checkout stage (:class:`CheckoutNet`): KPIs selected by an L1 fit, then refitted without a KPI penalty.

    The relaxed lasso, both fits to convergence by L-BFGS:

    1. every KPI in, the penalty ``checkout_l1`` x sum |beta| (smoothed) on the KPI coefficients and ``checkout_l2``
       x the squared weights of the context networks; the KPIs whose coefficient stays below
       :data:`KPI_SELECTION_TOLERANCE` are dropped (``checkout_l1`` 0 keeps all);
    2. the kept KPIs refitted with the context penalty only, so their effects are estimated as a logistic
       regression would, not shrunk.

    Why: 25 KPIs, several nearly collinear (FCP, page load, DOM content loaded with LCP), against a few thousand
    conversions. Early stopping (the shared loop) shrank the planted effects of the demo shop to 65-95% of their
    truth; unpenalised coefficients recovered them but let collinear noise KPIs share the credit (FCP ranked
    among the planted six on lake seed 8); selecting first and estimating after does neither (seeds 7-9).
    """
    sizes, l2, l1 = _checkout_hp(hp)
    n_features = train.inputs[0].shape[1]
    kpis = [i for i in range(n_features) if i not in set(context)]
    loss_fn = nn.BCEWithLogitsLoss()

    def context_penalty(module: nn.Module) -> torch.Tensor:
        return l2 * sum((w**2).sum() for w in module.context_weights())

    def build(kept: list[int]) -> Callable[[], CheckoutNet]:
        return lambda: CheckoutNet(n_features, sizes, 0.0, context, kept)

    kept = kpis
    if l1 > 0:
        lasso = fit_full_batch(
            build(kpis), train, validation, loss_fn,
            lambda m: context_penalty(m) + l1 * torch.sqrt(m.kpi_effects.weight**2 + L1_SMOOTHING).sum(),
            device, seed=int(hp["seed"]), label=f"{label} L1",
        )
        beta = lasso.model.kpi_effects.weight.detach().cpu().numpy().reshape(-1)
        kept = [k for k, b in zip(kpis, beta, strict=True) if abs(b) > KPI_SELECTION_TOLERANCE]
        logger.info("%s: L1 %.4g keeps %d of %d KPIs", label, l1, len(kept), len(kpis))
    return fit_full_batch(build(kept), train, validation, loss_fn, context_penalty, device, seed=int(hp["seed"]),
                          label=label)


def _check_keys(hp: dict[str, Any]) -> None:
    unknown = set(hp) - MODEL_KEYS
    if unknown:
        raise KeyError(f"unknown conversion hyperparameter(s) {sorted(unknown)}; known: {sorted(MODEL_KEYS)}")


def _best_of(
    points: list[dict[str, Any]], fit_point: Callable[[int, dict[str, Any]], FitResult], stage: str | None = None
) -> tuple[dict[str, Any], FitResult, list[Candidate]]:
    """Fit every point (``fit_point(i, hp)``, 1-based ``i``); the lowest validation loss wins (the first on a tie).
    Candidates of a funnel stage carry it as ``stage``."""
    best: tuple[dict[str, Any], FitResult] | None = None
    candidates: list[Candidate] = []
    for i, hp in enumerate(points, start=1):
        result = fit_point(i, hp)
        candidates.append(Candidate({"stage": stage, **hp} if stage else hp, result.best_val_loss, result.best_epoch,
                                    len(result.history), result.seconds))
        logger.info("candidate %s%d/%d %s: val loss %.5f at epoch %d", f"{stage} " if stage else "", i, len(points),
                    hp, result.best_val_loss, result.best_epoch)
        if best is None or result.best_val_loss < best[1].best_val_loss:
            best = (hp, result)
    assert best is not None  # expand_grid never returns an empty grid
    return best[0], best[1], candidates


def search(
    grid: list[dict[str, Any]], train: TrainingData, validation: TrainingData, device: torch.device
) -> tuple[dict[str, Any], FitResult, list[Candidate]]:
    """Single stage: fit every grid point with the same seed; the lowest validation loss wins (the first on a tie)."""
    for hp in grid:
        _check_keys(hp)
    grid = _project(grid, lambda k: k not in CHECKOUT_KEYS)  # the funnel's checkout keys do not apply here
    n_features = train.inputs[0].shape[1]
    return _best_of(grid, lambda i, hp: fit(
        _build(hp, n_features), train, validation, nn.BCEWithLogitsLoss(), _loop_config(hp), device,
        label=f"conversion[{i}/{len(grid)}]",
    ))


@dataclass
class FunnelFit:
    """The two stages of one grid point, each with its best validation epoch loaded."""

    basket: FitResult
    checkout: FitResult
    val_loss: float  # validation log loss of the observed funnel per session (see :func:`fit_funnel`)

    @property
    def seconds(self) -> float:
        return self.basket.seconds + self.checkout.seconds

    def module(self) -> ConversionFunnel:
        return ConversionFunnel(self.basket.model.to("cpu").eval(), self.checkout.model.to("cpu").eval()).eval()


def fit_funnel(
    hp: dict[str, Any], train: FunnelData, validation: FunnelData, device: torch.device, label: str
) -> FunnelFit:
    """Both stages of one grid point: the basket network stopped early, the checkout stage fitted to convergence.

    The validation loss is the negative log-likelihood per session of what was observed: basket or not for every
    session, and converted or not for those with a basket, which is the stages' losses weighted by their rows.
    """
    n_features = train.basket.inputs[0].shape[1]
    basket = fit(_build(hp, n_features), train.basket, validation.basket, nn.BCEWithLogitsLoss(), _loop_config(hp),
                 device, label=f"{label} basket")
    checkout = fit_checkout(hp, train.checkout, validation.checkout, train.context, device, f"{label} checkout")
    return FunnelFit(basket, checkout, _funnel_loss(basket.best_val_loss, checkout.best_val_loss, validation))


def _funnel_loss(basket_loss: float, checkout_loss: float, validation: FunnelData) -> float:
    return basket_loss + len(validation.checkout) / len(validation.basket) * checkout_loss


def search_funnel(
    grid: list[dict[str, Any]], train: FunnelData, validation: FunnelData, device: torch.device
) -> tuple[dict[str, Any], FunnelFit, list[Candidate]]:
    """The funnel's search: each stage over its own keys, each choosing its lowest validation loss.

    The stages share no parameter and the funnel's validation loss is the sum of theirs (weighted by rows), so
    choosing each stage's best is choosing the funnel's best, without fitting every combination.
    """
    for hp in grid:
        _check_keys(hp)
    basket_grid = _project(grid, lambda k: k not in CHECKOUT_KEYS)
    checkout_grid = _project(grid, lambda k: k in CHECKOUT_KEYS or k == "seed")
    n_features = train.basket.inputs[0].shape[1]
    basket_hp, basket, basket_candidates = _best_of(basket_grid, lambda i, hp: fit(
        _build(hp, n_features), train.basket, validation.basket, nn.BCEWithLogitsLoss(), _loop_config(hp), device,
        label=f"conversion basket[{i}/{len(basket_grid)}]",
    ), "basket")
    checkout_hp, checkout, checkout_candidates = _best_of(checkout_grid, lambda i, hp: fit_checkout(
        hp, train.checkout, validation.checkout, train.context, device,
        f"conversion checkout[{i}/{len(checkout_grid)}]",
    ), "checkout")
    chosen = {**basket_hp, **CHECKOUT_DEFAULTS, **checkout_hp}
    fitted = FunnelFit(basket, checkout, _funnel_loss(basket.best_val_loss, checkout.best_val_loss, validation))
    logger.info("conversion funnel: basket %s, checkout %s, funnel val loss %.5f", basket_hp, checkout_hp,
                fitted.val_loss)
    return chosen, fitted, basket_candidates + checkout_candidates


# --- calibration and model uncertainty ----------------------------------------------------------------------------
@torch.no_grad()
def _logits(module: nn.Module, data: TrainingData) -> np.ndarray:
    module.eval()
    return module(*data.inputs).numpy().astype(np.float64)


def fit_platt(module: nn.Module, validation: TrainingData) -> tuple[float, float]:
    """Slope and intercept of ``P = sigmoid(slope * logit + intercept)``, maximum likelihood on the validation rows."""
    from sklearn.linear_model import LogisticRegression

    z, y = _logits(module, validation), validation.target.numpy()
    platt = LogisticRegression(C=1e6).fit(z[:, None], y)  # practically unpenalized: two parameters, 10k rows
    return float(platt.coef_[0, 0]), float(platt.intercept_[0])


def apply_platt(module: nn.Module, slope: float, intercept: float) -> nn.Module:
    """A copy of ``module`` whose output computes ``slope * logit + intercept``: the pyfunc needs no change."""
    return calibrated(module, slope, intercept)


def calibrate(
    module: nn.Module, validation: TrainingData, method: Literal["none", "platt"]
) -> tuple[nn.Module, tuple[float, float] | None]:
    """The module to serve and the Platt parameters applied (None: served as trained)."""
    if method == "none":
        return module, None
    slope, intercept = fit_platt(module, validation)
    if slope <= 0:  # the validation days rank sessions against the model: recalibrating would invert it
        logger.warning("Platt slope %.3f <= 0 on the validation days: the model is served uncalibrated", slope)
        return module, None
    return apply_platt(module, slope, intercept), (slope, intercept)


def fit_intercept(module: nn.Module, validation: TrainingData) -> float | None:
    """The shift ``d`` of ``P = sigmoid(logit + d)`` that matches the validation rows' rate (maximum likelihood with
    the slope held at 1: the score equation sum(y - P) = 0); None where it has no finite solution (no rows, or rows
    of one class only, as a small shop's few validation days can hold)."""
    from scipy.optimize import brentq
    from scipy.special import expit

    z, y = _logits(module, validation), validation.target.numpy().astype(np.float64)
    if len(y) == 0 or y.min() == y.max():
        return None

    def score(d: float) -> float:
        return float(np.sum(y - expit(z + d)))

    low, high = -10.0, 10.0
    while score(low) < 0:  # sum(y) > 0 and sum(P) -> 0 as d -> -inf, so the bracket widens to a sign change
        low *= 2
    while score(high) > 0:
        high *= 2
    return float(brentq(score, low, high, xtol=1e-9))


def calibrate_funnel(
    funnel: ConversionFunnel, validation: FunnelData, method: Literal["none", "platt"]
) -> tuple[ConversionFunnel, dict[str, tuple[float, float] | None]]:
    """The basket stage Platt-scaled on its validation rows; the checkout stage's level matched to them.

    The basket network is stopped early, so nothing ties its probabilities to the observed rates; Platt scaling
    does. The checkout stage is a penalised maximum-likelihood fit, calibrated on its training rows by its own
    score equations, but the shop's checkout rate moves over weeks (experiments that change conversion start and
    stop; nothing in the features says who is treated): on lake seed 7 baskets checked out at 9.4% on the training
    days and 8.6% on the validation and holdout days. So its intercept is refitted on the validation days, the days
    next to those the model serves (without it the holdout ECE was 0.0041, the single stage's 0.0004). Its slope
    is not: the validation rows
    hold a few hundred conversions, a slope fitted there is mostly noise, and it would scale every KPI effect of
    the stage by that noise (a Platt slope of 0.94 on lake seed 7 took 6% off each).
    """
    basket, basket_platt = calibrate(funnel.basket, validation.basket, method)
    if method == "none":
        return ConversionFunnel(basket, funnel.checkout).eval(), {"basket": basket_platt, "checkout": None}
    shift = fit_intercept(funnel.checkout, validation.checkout)
    if shift is None:
        logger.warning("the validation days' %d baskets are all of one class: the checkout stage is served as fitted",
                       len(validation.checkout))
        return ConversionFunnel(basket, funnel.checkout).eval(), {"basket": basket_platt, "checkout": None}
    checkout = calibrated(funnel.checkout, 1.0, shift)
    return ConversionFunnel(basket, checkout).eval(), {"basket": basket_platt, "checkout": (1.0, shift)}


def load_logged_model(model_uri: str) -> tuple[ConversionPreprocessor, nn.Module]:
    """The preprocessing and network of a logged conversion model, built from this package's classes.

    ``PyFuncModel.unwrap_python_model()`` holds them too, but built from the classes of the model's own copy of
    ``pyfunc.py`` (MLflow runs models-from-code under a module name of its own), which this package's
    ``isinstance`` checks (a funnel's stages, :func:`at_training_level`) do not recognise.
    """
    from mlflow.models import Model

    folder = registry.download_artifact(model_uri)
    artifacts = Model.load(str(folder / "MLmodel")).flavors["python_function"]["artifacts"]
    return conversion_pyfunc.load_model_files(
        str(folder / artifacts[conversion_pyfunc.PREPROCESSING_ARTIFACT]["path"]),
        str(folder / artifacts[conversion_pyfunc.WEIGHTS_ARTIFACT]["path"]),
    )


def at_training_level(module: nn.Module) -> nn.Module:
    """A funnel with its checkout stage at the level of its training days (the validation days' shift undone);
    any other module as it is.

    The served funnel's checkout level is that of the days next to those it serves (:func:`calibrate_funnel`). An
    analysis of a population from other days, such as the truth tests' every simulated session of six weeks,
    uses the level the stage was fitted at: the shift moves every KPI's effect on P(convert) with the level
    (about 8% on lake seed 7), and says nothing about the effects.
    """
    if not isinstance(module, ConversionFunnel) or not isinstance(module.checkout, CheckoutNet):
        return module
    checkout = copy.deepcopy(module.checkout)
    with torch.no_grad():
        checkout.calibration.copy_(torch.tensor([1.0, 0.0]))
    return ConversionFunnel(module.basket, checkout.eval()).eval()


def bootstrap_refits(
    hp: dict[str, Any],
    train: TrainingData | FunnelData,
    validation: TrainingData | FunnelData,
    n: int,
    device: torch.device,
    calibration: Literal["none", "platt"],
    days: np.ndarray,
) -> list[nn.Module]:
    """``n`` models with the chosen hyperparameters, each fitted on a bootstrap resample of the training days.

    Their spread is the model's uncertainty for the KPI impact intervals. ``days`` numbers the day of each
    training row; a resample draws whole days (:func:`day_bootstrap_rows`). Resample ``i`` and its initial weights
    are seeded by ``hp["seed"] + i``; early stopping and calibration use the same validation days; the
    preprocessing (a standardization) stays the one fitted on all training rows, and the search is not redone.
    A funnel (``FunnelData``) refits both stages on the same resampled sessions.
    """
    models: list[nn.Module] = []
    for i in range(1, n + 1):
        seed = int(hp["seed"]) + i
        refit_hp = {**hp, "seed": seed}
        rows = day_bootstrap_rows(days, seed)
        if isinstance(train, FunnelData):
            assert isinstance(validation, FunnelData)
            result = fit_funnel(refit_hp, train.resampled(rows), validation, device, label=f"conversion refit {i}/{n}")
            models.append(calibrate_funnel(result.module(), validation, calibration)[0])
            continue
        assert isinstance(validation, TrainingData)
        resample = TrainingData(tuple(x[rows] for x in train.inputs), train.target[rows])
        fitted = fit(
            _build(hp, train.inputs[0].shape[1]),
            resample,
            validation,
            nn.BCEWithLogitsLoss(),
            _loop_config(refit_hp),
            device,
            label=f"conversion refit {i}/{n}",
        )
        models.append(calibrate(fitted.model.to("cpu").eval(), validation, calibration)[0])
    return models


class ConversionPredict:
    """``predict_proba`` of one module as the KPI impact analysis calls it, with a fast path for its scenarios.

    ``predict(frame)`` is :func:`training.conversion.pyfunc.predict_proba`, or for a funnel the two stage
    probabilities (:func:`training.conversion.pyfunc.predict_stages`), so the analysis can split each change by
    stage. ``bind(frame)`` (see
    :func:`training.conversion.kpi_impact.bind_rows`) transforms ``frame`` once and, per call, rewrites only the KPI
    columns
    the call replaces, with the preprocessor's own KPI transform (``_kpi_values``, then its standardization); the
    network then scores the patched matrix. The analysis scores one holdout some 300 times per model with one
    KPI changed, and the full pandas transform was most of its time. The KPI block of the bound matrix is checked
    against the full transform once per bind; should they ever differ, every call takes the full transform.
    Torch runs single-threaded here (:func:`training.shared.trainer.cpu_threads`): the network is small.
    """

    def __init__(self, module: nn.Module, preprocessor: ConversionPreprocessor) -> None:
        self.module, self.preprocessor = module.eval(), preprocessor
        self.stages = STAGES if isinstance(module, ConversionFunnel) else ("conversion",)

    def __call__(self, frame: pd.DataFrame) -> np.ndarray:
        """P(convert) per row, or for a funnel the (n, 2) stage probabilities whose product it is."""
        with cpu_threads(1):
            return self._matrix(self.preprocessor.transform(frame))

    def _matrix(self, x: np.ndarray) -> np.ndarray:
        stages = predict_stages(self.module, x)
        return predict_matrix(self.module, x) if stages is None else stages

    def bind(self, frame: pd.DataFrame) -> Callable[[dict[str, np.ndarray]], np.ndarray]:
        pre = self.preprocessor
        names = pre.feature_names
        kpis = {  # KPI -> (its index in the KPI block, its column in the matrix)
            c: (i, names.index(c if c in pre.count_columns else f"log1p_{c}")) for i, c in enumerate(pre.kpi_columns)
        }
        x = torch.from_numpy(pre.transform(frame))
        raw = {c: _float_values(frame[c]) for c in kpis}
        exact = all(torch.equal(x[:, j], torch.from_numpy(self._kpi_column(i, raw[c]))) for c, (i, j) in kpis.items())
        if not exact:
            logger.warning("the bound KPI columns differ from the preprocessor's transform: full transform per call")

        def scored(overrides: dict[str, np.ndarray]) -> np.ndarray:
            if overrides and (not exact or any(c not in kpis for c in overrides)):
                return self(frame.assign(**overrides))
            changed = {}
            for column, values in overrides.items():
                values = _float_values(values)
                if not np.array_equal(values, raw[column], equal_nan=True):  # e.g. the 24 unshuffled KPIs
                    changed[column] = values
            saved = {c: x[:, kpis[c][1]].clone() for c in changed}
            try:  # patched in place and put back: a copy of the whole matrix per call cost more than the network
                for column, values in changed.items():
                    i, j = kpis[column]
                    x[:, j] = torch.from_numpy(self._kpi_column(i, values))
                return self._forward(x)
            finally:
                for column, original in saved.items():
                    x[:, kpis[column][1]] = original

        return scored

    def _kpi_column(self, i: int, values: Any) -> np.ndarray:
        """Column ``i`` of the transform's KPI block for raw ``values``: the same operations, on one column."""
        pre, column = self.preprocessor, self.preprocessor.kpi_columns[i]
        kpi = _kpi_values(pd.DataFrame({column: values}), [column], [column] if column in pre.count_columns else [])
        kpi = (kpi - np.asarray(pre.kpi_mean)[i : i + 1]) / np.asarray(pre.kpi_std)[i : i + 1]
        return np.nan_to_num(kpi, nan=0.0).astype(np.float32)[:, 0]

    def _forward(self, x: torch.Tensor) -> np.ndarray:
        with cpu_threads(1):
            return self._matrix(x.numpy())


def _float_values(values: Any) -> np.ndarray:
    """Raw values as float64 (nulls as NaN), read as the preprocessor reads a numeric column."""
    return _numeric(pd.Series(values)).to_numpy()


def kpi_impact_analysis(
    module: nn.Module,
    preprocessor: ConversionPreprocessor,
    sessions: pd.DataFrame,
    refits: list[nn.Module],
    config: KpiImpactConfig,
    seed: int,
    *,
    label: str = LABEL,
    **options: Any,
) -> KpiImpactResult:
    """The KPI impact analysis of ``module`` on labelled ``sessions`` (the holdout), ``refits`` for model intervals.

    A funnel's what-if is split by stage. ``options`` go to
    :func:`training.conversion.kpi_impact.analyze_kpi_impact` (e.g. ``improvements``).
    """
    from threadpoolctl import threadpool_limits

    with cpu_threads(1), threadpool_limits(1):  # small networks and (B x n) @ (n x K) bootstrap products
        predict = ConversionPredict(module, preprocessor)
        if "counts" not in options and set(preprocessor.count_columns) >= set(COUNT_KPI_COLUMNS):
            # The network reads count KPIs on a linear scale (standardized counts, no log): a fractional count is
            # read off where the model puts it (exactly linear in the funnel's checkout log-odds). Interpolating
            # between whole counts on the stage probability's logit would bend a linear effect on the checkout
            # log-odds (by ~10-20% for the 5xx count on the demo shop).
            options["counts"] = ()
        return analyze_kpi_impact(
            predict,
            sessions,
            KPI_COLUMNS,
            label=label,
            stages=predict.stages,
            n_bootstrap=config.n_bootstrap,
            seed=seed,
            refits=[ConversionPredict(m, preprocessor) for m in refits],
            **options,
        )


@dataclass
class FittedConversion:
    """What :func:`fit_conversion` chose and fitted on one training window, before anything is logged."""

    split: TimeSplit
    preprocessor: ConversionPreprocessor
    grid: list[dict[str, Any]]
    chosen: dict[str, Any]
    candidates: list[Candidate]
    trained: nn.Module  # as trained
    module: nn.Module  # as served (calibrated)
    platt: dict[str, tuple[float, float] | None]  # per stage (or "conversion"), None where not applied
    val_loss: float
    best_epoch: int
    histories: dict[str, list[EpochRecord]]  # per stage ("" for a single stage)
    train: TrainingData | FunnelData
    validation: TrainingData | FunnelData
    validation_days: int
    calibration: Literal["none", "platt"]

    @property
    def funnel(self) -> bool:
        """Two stages (the set has the basket label) or one."""
        return isinstance(self.train, FunnelData)

    def refits(self, n: int, device: torch.device) -> list[nn.Module]:
        """:func:`bootstrap_refits` of the chosen model on this window's training days."""
        days = self.split.train[EVENT_TIMESTAMP].dt.floor("D").factorize()[0]
        return bootstrap_refits(self.chosen, self.train, self.validation, n, device, self.calibration, days)


def fit_conversion(frame: pd.DataFrame, day: dt.date, model_cfg: ModelConfig, device: torch.device) -> FittedConversion:
    """Split ``frame`` (:func:`read_training_set`) by time, fit the preprocessing, search and calibrate.

    A set with the basket label (``added_to_cart``) trains the funnel; one without trains a single stage.
    """
    hyperparameters = dict(model_cfg.hyperparameters)
    # Optional key that shapes the split, not the network (not searched over): 3 validation days for a 7-day holdout.
    validation_days = int(hyperparameters.pop("validation_days", max(1, model_cfg.holdout_days // 2)))
    split = split_by_time(frame, day, model_cfg.training_window_days, model_cfg.holdout_days, validation_days)
    logger.info("conversion %s: %s", day, split.describe())

    preprocessor = fit_preprocessor(split.train)
    grid = expand_grid(hyperparameters, nested=NESTED_KEYS)
    train: TrainingData | FunnelData
    validation: TrainingData | FunnelData
    if has_funnel(split.train):
        train, validation = FunnelData.of(preprocessor, split.train), FunnelData.of(preprocessor, split.validation)
        chosen, funnel_fit, candidates = search_funnel(grid, train, validation, device)
        trained: nn.Module = funnel_fit.module()
        module, platt = calibrate_funnel(trained, validation, model_cfg.calibration)
        return FittedConversion(
            split, preprocessor, grid, chosen, candidates, trained, module, platt, funnel_fit.val_loss,
            funnel_fit.checkout.best_epoch,
            {"basket": funnel_fit.basket.history, "checkout": funnel_fit.checkout.history},
            train, validation, validation_days, model_cfg.calibration,
        )
    logger.warning("conversion %s: the training set has no %s column: a single-stage model", day, BASKET)
    train, validation = training_data(preprocessor, split.train), training_data(preprocessor, split.validation)
    chosen, result, candidates = search(grid, train, validation, device)
    trained = result.model.to("cpu").eval()
    module, single_platt = calibrate(trained, validation, model_cfg.calibration)
    return FittedConversion(
        split, preprocessor, grid, chosen, candidates, trained, module, {"conversion": single_platt},
        result.best_val_loss, result.best_epoch, {"": result.history}, train, validation, validation_days,
        model_cfg.calibration,
    )


def single_stage_comparison(
    grid: list[dict[str, Any]],
    preprocessor: ConversionPreprocessor,
    split: TimeSplit,
    calibration: Literal["none", "platt"],
    device: torch.device,
    funnel_p: np.ndarray,
    n_bootstrap: int = 500,
    seed: int = 0,
) -> dict[str, float]:
    """Today's single-stage model, searched and calibrated as before, scored on the funnel's holdout rows.

    Returns ``single_stage.<metric>`` for ROC-AUC, log loss and ECE, and ``funnel_minus_single.<metric>`` with a
    95% paired bootstrap interval over holdout sessions (``..._ci_low`` / ``..._ci_high``): both models score the
    same resampled sessions in each draw.
    """
    from training.shared.metrics import binary_metric, bootstrap_interval

    train, validation = training_data(preprocessor, split.train), training_data(preprocessor, split.validation)
    _, result, _ = search(grid, train, validation, device)
    single, _ = calibrate(result.model.to("cpu").eval(), validation, calibration)
    y = split.holdout[LABEL].to_numpy().astype(np.int64)
    single_p = predict_proba(single, preprocessor, split.holdout)
    out: dict[str, float] = {}
    for name in ("roc_auc", "log_loss", "ece"):

        def gap(rows: np.ndarray, name: str = name) -> float:  # nan (dropped) for a draw of one class
            if not 0 < y[rows].sum() < len(rows):
                return np.nan
            return binary_metric(name, y[rows], funnel_p[rows]) - binary_metric(name, y[rows], single_p[rows])

        out[f"single_stage.{name}"] = binary_metric(name, y, single_p)
        out[f"funnel_minus_single.{name}"] = binary_metric(name, y, funnel_p) - out[f"single_stage.{name}"]
        low, high = bootstrap_interval(gap, len(y), n_bootstrap, seed, level=0.95)  # the same draws for each metric
        out[f"funnel_minus_single.{name}_ci_low"], out[f"funnel_minus_single.{name}_ci_high"] = low, high
    logger.info("conversion funnel against one stage on the holdout: %s",
                ", ".join(f"{k} {v:+.4f}" for k, v in out.items() if "ci" not in k))
    return out


# --- the stage -----------------------------------------------------------------------------------------------------
def train_conversion(
    training_set: Path,
    day: dt.date,
    *,
    models_config: ModelsConfig | None = None,
    device: str | None = None,
) -> TrainingResult:
    """Train, evaluate on the holdout, log to MLflow and register a new version of ``conversion``.

    Args:
        training_set: parquet file (or folder) of the conversion training set.
        day: the run date: the last day of the training window.
        models_config: [default: ``config/models.yaml``]; tests pass a copy with fewer epochs.
        device: ``auto``/``cpu``/``cuda``/``hpu`` [default: ``settings.device``].
    """
    started = time.perf_counter()
    config = models_config or get_models_config()
    model_cfg: ModelConfig = config.model(MODEL_NAME)
    drift: DriftConfig = config.drift
    torch_device = select_device(device)

    frame = read_training_set(Path(training_set))
    fitted = fit_conversion(frame, day, model_cfg, torch_device)
    split, preprocessor, module, trained = fitted.split, fitted.preprocessor, fitted.module, fitted.trained
    chosen, candidates, platt, funnel = fitted.chosen, fitted.candidates, fitted.platt, fitted.funnel
    val_loss, best_epoch, histories, grid = fitted.val_loss, fitted.best_epoch, fitted.histories, fitted.grid
    validation_days = fitted.validation_days
    calibrated_any = any(v is not None for v in platt.values())

    holdout_y = split.holdout[LABEL].to_numpy()
    holdout_p = predict_proba(module, preprocessor, split.holdout)
    metrics = binary_classification_metrics(holdout_y, holdout_p)
    logger.info("conversion %s holdout: %s", day, ", ".join(f"{k} {v:.4f}" for k, v in metrics.items()))
    curves = {"served": (holdout_y, holdout_p)}
    if calibrated_any:
        curves = {
            "before Platt scaling": (holdout_y, predict_proba(trained, preprocessor, split.holdout)),
            "served (Platt-scaled)": curves["served"],
        }
    comparison: dict[str, float] = {}
    if funnel:  # today's single-stage model on the same rows, in the same run: what the funnel must not lose to
        comparison = single_stage_comparison(grid, preprocessor, split, model_cfg.calibration, torch_device, holdout_p)

    seed = int(chosen["seed"])
    impact: KpiImpactResult | None = None
    impact_seconds = 0.0
    impact_cfg = model_cfg.kpi_impact
    if impact_cfg.enabled:
        impact_started = time.perf_counter()
        refits = fitted.refits(impact_cfg.model_refits, torch_device)
        impact = kpi_impact_analysis(module, preprocessor, split.holdout, refits, impact_cfg, seed)
        impact_seconds = time.perf_counter() - impact_started
        logger.info("conversion %s KPI impact (%d refits) in %.1f s", day, len(refits), impact_seconds)
    reference = split.train.sample(n=min(drift.reference_sample_rows, len(split.train)), random_state=seed)
    reference = reference.sort_index()
    reference = reference[[EVENT_TIMESTAMP, *FEATURE_COLUMNS, LABEL]].assign(
        **{PREDICTION: predict_proba(module, preprocessor, reference)}
    )
    holdout = split.holdout[[*ID_COLUMNS, LABEL, *([BASKET] if funnel else []), *FEATURE_COLUMNS]]

    def log_extra(run: registry.TrainingRun, folder: Path) -> None:
        run.log_metrics({"val_loss": val_loss, **comparison})
        run.log_params({"calibration": model_cfg.calibration if calibrated_any else "none",
                        "stages": ",".join(STAGES) if funnel else "conversion"})
        for stage, params in platt.items():
            if params is not None:
                prefix = "calibration" if stage == "conversion" else f"calibration.{stage}"
                run.log_params({f"{prefix}.slope": round(params[0], 6), f"{prefix}.intercept": round(params[1], 6)})
        if calibrated_any:
            raw_y, raw_p = curves["before Platt scaling"]
            run.log_metrics({"uncalibrated_ece": expected_calibration_error(raw_y, raw_p)})
        if impact is not None:
            report = write_report(
                impact, folder / "kpi_impact", f"KPI impact of the conversion model, {day}", calibration=curves
            )
            for path in report.values():
                run.log_artifact(path, "kpi_impact")
            run.set_tags({f"kpi_impact.top_{i}": kpi for i, kpi in enumerate(impact.ranking[:3], start=1)})
            run.log_metrics(
                {f"what_if_5pct.{k}": impact.what_if_for(k, 0.05).delta_conversion_rate for k in KPI_COLUMNS}
            )
            if funnel:
                run.log_metrics({
                    f"what_if_5pct.{k}.{stage}": impact.what_if_for(k, 0.05).stage_delta(stage)
                    for k in KPI_COLUMNS for stage in STAGES
                })
            run.log_metrics({"kpi_impact_seconds": impact_seconds})
        for stage, history in histories.items():
            prefix = f"{stage}." if stage else ""
            for record in history:
                run.log_metrics(
                    {f"{prefix}epoch_train_loss": record.train_loss, f"{prefix}epoch_val_loss": record.val_loss},
                    step=record.epoch,
                )
        run.log_dict({"candidates": [asdict(c) for c in candidates]}, "search/candidates.json")

    published = publish.log_and_register(publish.TrainingRecord(
        model=MODEL_NAME,
        day=day,
        config=model_cfg,
        window_start=split.window_start,
        training_set=training_set,
        device=str(torch_device),
        hyperparameters=chosen,
        params={
            "grid_size": len(grid),
            "validation_days": validation_days,
            "rows_train": len(split.train),
            "rows_validation": len(split.validation),
            "rows_holdout": len(split.holdout),
            "best_epoch": best_epoch,
            "n_features": len(preprocessor.feature_names),
        },
        metrics=metrics,
        holdout=holdout,
        reference=reference,
        log_extra=log_extra,
        package=publish.ModelPackage(
            python_model=Path(conversion_pyfunc.__file__),
            write_files=lambda folder: save_model_files(
                folder, preprocessor, module, [int(s) for s in chosen["hidden_sizes"]],
                float(chosen.get("dropout", 0.0)),
            ),
            signature=registry.tabular_signature(
                string_columns=list(CATEGORICAL_COLUMNS),
                numeric_columns=[*FLAG_COLUMNS, *KPI_COLUMNS, *HISTORY_COLUMNS],
                optional_columns=list(HISTORY_COLUMNS),
                output_name=PREDICTION,
                params=[("output", "string", "p_convert", None)],  # "stages": p_convert, p_basket, p_checkout
            ),
            requirements=("torch", "pandas", "numpy"),
            input_example=holdout[list(FEATURE_COLUMNS)].head(3),
            code_paths=(nets.CODE_PATH,),
            version_tags={"holdout_roc_auc": f"{metrics['roc_auc']:.6f}"},
        ),
    ))
    seconds = time.perf_counter() - started
    logger.info("conversion %s: run %s, %s v%s, %.1f s", day, published.run_id, MODEL_NAME, published.version, seconds)
    return TrainingResult(
        run_id=published.run_id,
        model_name=MODEL_NAME,
        model_version=published.version,
        model_uri=published.model_uri,
        holdout_path=published.holdout_path,
        holdout_uri=published.holdout_uri,
        reference_uri=published.reference_uri,
        metrics=metrics,
        hyperparameters=chosen,
        device=str(torch_device),
        seconds=seconds,
        candidates=candidates,
    )


def read_holdout(path: Path) -> pd.DataFrame:
    """A holdout written by :func:`train_conversion` (the gate scores challenger and champion on it)."""
    return pd.read_parquet(path)


def describe(result: TrainingResult) -> str:
    return json.dumps(result.to_dict(), indent=2, sort_keys=True, default=str)
