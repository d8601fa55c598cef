"""Ranking model v1: relevance per (list, product) learned with LambdaRank and position-bias correction, then
revenue-aware re-ranking, judged on relevance and revenue metrics.

Input: the training set of ``training/ranking/data.py`` (one row per impression: list, position, graded label
0..4, the position's propensity, and the ``ranking_v1`` features as known when the list was shown).

The split is by the shown date inside the window: ``[ train | validation (validation_days) | holdout (last
holdout_days) ]``. Then:

1. **Relevance model** f(x): an MLP scoring each item, trained on padded lists with a LambdaRank loss
   (:func:`lambdarank_loss`: pairwise logistic loss on every pair with different labels, weighted by the
   |change of NDCG| of swapping the two items in the current ranking). **Bias correction**: each pair is
   weighted by the inverse propensity ``1 / theta(position)`` of its more relevant item (clicks, and everything
   after them, only happen to examined items; Joachims et al. 2017, Wang et al. 2018). Lists with no positive
   item have no pair and no ideal DCG: they are dropped from training (counted and logged), and their NDCG is
   undefined (NaN, reported apart) in every metric.
2. **Purchase classifier** p(purchase | x): a logistic regression on the same features whose positive rows are
   weighted by price / mean price (a price-weighted logistic loss), so that missing a dear purchase costs more.
3. **Re-rankers** on the holdout: the rank-product hybrid ``rank(rank(f)^alpha * rank(price)^(1-alpha))`` for
   every alpha of ``ranking.alpha_grid``, and expected revenue ``p * g(price)`` with g = identity and ln.
4. **Evaluation** against the logged order: NDCG@k, NDCP@k and AvgPrice@k for k = 5, 10, 20, ECDF curves across
   lists and the change of the area under them, the alpha trade-off curve; all logged to MLflow and written as a
   report (``training/ranking/report.py``). NDCG and NDCP are counterfactual: observed gains divided by the
   propensity of the logged position, lists weighted by their ideal DCG (``training/ranking/metrics.py``);
   on raw logged labels the logged order would win for having put the clicked items where they were clicked.

The served model (``training/ranking/pyfunc.py``) is f with the hybrid at the configured ``ranking.alpha``; the
gate scores it on the holdout by ``gate.metric`` (NDCG@20) with a guardrail on NDCP@20.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from config.models import GateConfig, ModelConfig, ModelsConfig, RankingConfig, get_models_config
from config.settings import get_settings
from feature_repo.features.tables import EVENT_TIMESTAMP, PRODUCT_RANKING
from training.ranking import pyfunc as ranking_pyfunc
from training.ranking.data import GRADE, MODEL_NAME, PROPENSITIES_FILE, PROPENSITY, midnight, shown_day
from training.ranking.metrics import (
    LOGGED,
    PURCHASE_GRADE,
    RELEVANCE,
    UNCORRECTED,
    Evaluation,
    PaddedLists,
    avg_price_at_k,
    ecdf_area,
    hybrid_name,
    ideal_dcg,
    mean_defined,
    ndcg_with_gains,
    pad_lists,
)
from training.ranking.pyfunc import (
    CATEGORICAL_COLUMNS,
    INPUT_COLUMNS,
    LIST_ID,
    PRICE,
    RankingMLP,
    RankingPreprocessor,
    expected_revenue_key,
    hybrid_sort_keys,
    relevance_scores,
)
from training.shared import nets, publish, registry, results
from training.shared.devices import select_device
from training.shared.results import Candidate
from training.shared.trainer import FitResult, LoopConfig, TrainingData, expand_grid, fit

logger = logging.getLogger(__name__)

KS = (5, 10, 20)
METRICS = ("ndcg", "ndcp", "avg_price")
PREDICTION = "sort_key"
NESTED_KEYS = ("hidden_sizes",)
MODEL_KEYS = {"hidden_sizes", "learning_rate", "weight_decay", "dropout", "batch_size", "max_epochs", "patience",
              "sigma", "seed"}
HOLDOUT_COLUMNS = (*INPUT_COLUMNS, "product_id", "position", "ranker", "session_id", "shown_at", GRADE, "purchased",
                   PROPENSITY)


# --- data ----------------------------------------------------------------------------------------------------------
def read_training_set(path: Path) -> pd.DataFrame:
    """Read a ranking training set and check its columns; Feast's nullable integers become float64."""
    frame = pd.read_parquet(path)
    required = [*HOLDOUT_COLUMNS, PROPENSITY, "shown_at", EVENT_TIMESTAMP]
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise KeyError(f"ranking training set {path} lacks column(s): {', '.join(missing)}")
    for column in frame.columns:
        dtype = frame[column].dtype
        if isinstance(dtype, pd.api.extensions.ExtensionDtype) and pd.api.types.is_numeric_dtype(dtype):
            frame[column] = pd.to_numeric(frame[column]).astype("float64")
    frame["shown_at"] = pd.to_datetime(frame["shown_at"], utc=True)
    unknown_products = int(frame["category"].isna().sum())
    if unknown_products:  # a product missing from the day-before snapshot (launched that day): kept, imputed
        logger.info("ranking: %d impressions of products without a feature row (launched that day)", unknown_products)
    return frame


@dataclass(frozen=True)
class RankingSplit:
    train: pd.DataFrame
    validation: pd.DataFrame
    holdout: pd.DataFrame
    validation_start: dt.date
    holdout_start: dt.date

    def describe(self) -> str:
        def n(f: pd.DataFrame) -> str:
            return f"{f[LIST_ID].nunique()} lists, {len(f)} rows"

        return (f"train ..{self.validation_start - dt.timedelta(days=1)} ({n(self.train)}), validation "
                f"{self.validation_start}.. ({n(self.validation)}), holdout {self.holdout_start}.. ({n(self.holdout)})")


def split_by_date(frame: pd.DataFrame, day: dt.date, holdout_days: int, validation_days: int) -> RankingSplit:
    """Cut the lists by their shown date (a list never straddles two parts)."""
    holdout_start = day - dt.timedelta(days=holdout_days - 1)
    validation_start = holdout_start - dt.timedelta(days=validation_days)
    dates = shown_day(frame["shown_at"])  # UTC midnights, compared without Python date objects
    frame = frame.loc[dates <= midnight(day)]
    dates = dates.loc[frame.index]
    val_from, holdout_from = midnight(validation_start), midnight(holdout_start)
    split = RankingSplit(
        train=frame.loc[dates < val_from].reset_index(drop=True),
        validation=frame.loc[(dates >= val_from) & (dates < holdout_from)].reset_index(drop=True),
        holdout=frame.loc[dates >= holdout_from].reset_index(drop=True),
        validation_start=validation_start,
        holdout_start=holdout_start,
    )
    for part in ("train", "validation", "holdout"):
        rows: pd.DataFrame = getattr(split, part)
        if rows.empty or not (rows[GRADE] > 0).any():
            raise ValueError(f"no {part} lists with a positive label for {day} ({split.describe()})")
    return split


@dataclass(frozen=True)
class ListTensors:
    """Padded lists as tensors: ``x`` (n, L, F); ``target`` (n, L, 3) = label, inverse-propensity weight, mask."""

    data: TrainingData
    padded: PaddedLists
    dropped_lists: int  # lists without a positive item, left out


def padded_list_tensors(
    x: np.ndarray, labels: np.ndarray, list_ids: np.ndarray, order: np.ndarray, weights: np.ndarray | None = None
) -> ListTensors:
    """Items (rows of ``x``) grouped into padded lists, lists without a positive label left out.

    Args:
        x: (n, F) transformed features; labels: (n,) graded labels; list_ids, order: the list of each item and
            its place in it; weights: (n,) weight of each item as the more relevant one of a pair [default: 1].
    """
    list_ids = np.asarray(list_ids)
    positive = pd.Series(labels).groupby(pd.Series(list_ids)).transform("max").to_numpy() > 0
    keep = np.flatnonzero(positive)
    padded = pad_lists(list_ids[keep], np.asarray(order)[keep])
    x_pad = np.zeros((*padded.shape, x.shape[1]), dtype=np.float32)
    x_pad[padded.mask] = x[keep][padded.rows[padded.mask]]
    weight = np.ones(len(keep)) if weights is None else np.asarray(weights, dtype=np.float64)[keep]
    target = np.stack(
        [padded.gather(np.asarray(labels, np.float64)[keep]), padded.gather(weight), padded.mask.astype(np.float64)],
        axis=-1,
    ).astype(np.float32)
    dropped = int(len(pd.unique(list_ids)) - len(padded.list_ids))
    return ListTensors(TrainingData((torch.from_numpy(x_pad),), torch.from_numpy(target)), padded, dropped)


def list_tensors(
    preprocessor: RankingPreprocessor, frame: pd.DataFrame, *, corrected: bool, propensity_clip: float
) -> ListTensors:
    """The lists of ``frame`` with at least one positive item, padded; weights 1/theta when ``corrected``."""
    weights = 1.0 / np.clip(frame[PROPENSITY].to_numpy(np.float64), propensity_clip, 1.0) if corrected else None
    return padded_list_tensors(preprocessor.transform(frame), frame[GRADE].to_numpy(np.float64),
                               frame[LIST_ID].to_numpy(), frame["position"].to_numpy(), weights)


# --- the loss ------------------------------------------------------------------------------------------------------
def lambdarank_loss(scores: torch.Tensor, target: torch.Tensor, sigma: float = 1.0) -> torch.Tensor:
    """LambdaRank loss of padded lists, averaged over the lists that have a positive item.

    Args:
        scores: (B, L) model scores; padding positions are ignored whatever their value.
        target: (B, L, 3): graded label, the weight of the item when it is the more relevant one of a pair
            (1 / propensity for bias correction, else 1), and the mask (1 = real item).
        sigma: steepness of the pairwise logistic.

    For every pair (i, j) of one list with ``label_i > label_j`` the loss adds
    ``w_i * |dNDCG_ij| * log(1 + exp(-sigma * (s_i - s_j)))``, where ``|dNDCG_ij|`` is how much NDCG (gain
    ``2^label - 1``, discount ``1 / log2(1 + rank)``, ranks from the current scores) would change if i and j swapped
    places. Its gradient is LambdaRank's lambda. Lists whose ideal DCG is 0 contribute nothing and are not counted.
    """
    labels, weights, mask = target[..., 0], target[..., 1], target[..., 2] > 0.5
    n_items = scores.shape[1]
    with torch.no_grad():
        gains = torch.where(mask, torch.pow(2.0, labels) - 1.0, torch.zeros_like(labels))
        ranked = scores.detach().masked_fill(~mask, float("-inf"))
        order = torch.argsort(ranked, dim=1, descending=True, stable=True)
        ranks = torch.empty_like(order)
        ranks.scatter_(1, order, torch.arange(n_items, device=scores.device).expand_as(order))
        discount = torch.where(mask, 1.0 / torch.log2(ranks.to(scores.dtype) + 2.0), torch.zeros_like(scores))
        ideal_discount = 1.0 / torch.log2(torch.arange(n_items, device=scores.device, dtype=scores.dtype) + 2.0)
        ideal = (torch.sort(gains, dim=1, descending=True).values * ideal_discount).sum(dim=1)
        has_positive = ideal > 0
        delta = (gains[:, :, None] - gains[:, None, :]).abs() * (discount[:, :, None] - discount[:, None, :]).abs()
        delta = delta / ideal.clamp_min(1e-12)[:, None, None]
        pairs = (labels[:, :, None] > labels[:, None, :]) & mask[:, :, None] & mask[:, None, :]
        pair_weight = torch.where(pairs, delta * weights[:, :, None], torch.zeros_like(delta))
    pair_loss = F.softplus(-sigma * (scores[:, :, None] - scores[:, None, :]))
    per_list = (pair_weight * pair_loss).sum(dim=(1, 2))
    return per_list[has_positive].sum() / has_positive.sum().clamp_min(1)


# --- training ------------------------------------------------------------------------------------------------------
def _network(hp: dict[str, Any], n_features: int) -> dict[str, Any]:
    return {"n_features": n_features, "hidden_sizes": [int(s) for s in hp["hidden_sizes"]],
            "dropout": float(hp.get("dropout", 0.0))}


def train_relevance(
    grid: list[dict[str, Any]], train: ListTensors, validation: ListTensors, device: torch.device, label: str
) -> tuple[dict[str, Any], FitResult, list[Candidate]]:
    """Fit every grid point with its seed; the lowest validation LambdaRank loss wins (the first one on a tie)."""
    n_features = train.data.inputs[0].shape[-1]
    best: tuple[dict[str, Any], FitResult] | None = None
    candidates = []
    for i, hp in enumerate(grid, start=1):
        unknown = set(hp) - MODEL_KEYS
        if unknown:
            raise KeyError(f"unknown ranking hyperparameter(s) {sorted(unknown)}; known: {sorted(MODEL_KEYS)}")
        net = _network(hp, n_features)
        sigma = float(hp.get("sigma", 1.0))
        result = fit(
            lambda net=net: RankingMLP(net["n_features"], net["hidden_sizes"], net["dropout"]),
            train.data,
            validation.data,
            lambda s, t, sigma=sigma: lambdarank_loss(s, t, sigma),
            LoopConfig.from_hyperparameters(hp),
            device,
            label=f"{label}[{i}/{len(grid)}]",
        )
        candidates.append(Candidate(hp, result.best_val_loss, result.best_epoch, len(result.history), result.seconds))
        if best is None or result.best_val_loss < best[1].best_val_loss:
            best = (hp, result)
    assert best is not None
    return best[0], best[1], candidates


@dataclass(frozen=True)
class PurchaseClassifier:
    """p(purchase | x) = sigmoid(x . coef + intercept), fitted with a price-weighted logistic loss."""

    coef: np.ndarray
    intercept: float

    def predict(self, x: np.ndarray) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-(x.astype(np.float64) @ self.coef + self.intercept)))


def fit_purchase_classifier(x: np.ndarray, purchased: np.ndarray, price: np.ndarray, price_weight: bool,
                            seed: int) -> PurchaseClassifier:
    """Logistic regression of ``purchased``; positive rows weigh ``price / mean price`` when ``price_weight``."""
    from sklearn.linear_model import LogisticRegression

    y = purchased.astype(np.int64)
    if y.min() == y.max():
        raise ValueError("the purchase classifier needs purchases and non-purchases in the training rows")
    weight = np.where(y == 1, price / price.mean(), 1.0) if price_weight else np.ones(len(y))
    model = LogisticRegression(C=1.0, max_iter=500, random_state=seed).fit(x, y, sample_weight=weight)
    return PurchaseClassifier(model.coef_[0].astype(np.float64), float(model.intercept_[0]))


# --- evaluation ----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class HoldoutLists:
    """The holdout's lists padded: graded labels, prices and the inverse-propensity weight of each item."""

    padded: PaddedLists
    labels: np.ndarray
    price: np.ndarray
    weights: np.ndarray

    @classmethod
    def of(cls, holdout: pd.DataFrame, propensity_clip: float = 0.05) -> HoldoutLists:
        padded = pad_lists(holdout[LIST_ID], holdout["position"])
        ipw = 1.0 / np.clip(holdout[PROPENSITY].to_numpy(np.float64), propensity_clip, 1.0)
        return cls(padded, padded.gather(holdout[GRADE].to_numpy(np.float64)),
                   padded.gather(holdout[PRICE].to_numpy(np.float64)), padded.gather(ipw))

    def gains(self, metric: str) -> np.ndarray | None:
        """Counterfactual gains of ``ndcg`` or ``ndcp`` (None for ``avg_price``)."""
        if metric == "ndcg":
            return (np.power(2.0, self.labels) - 1.0) * self.weights
        if metric == "ndcp":
            return np.where(self.labels >= PURCHASE_GRADE, self.price, 0.0) * self.weights
        return None

    def list_weights(self, name: str) -> np.ndarray:
        """How much each list counts in means and ECDFs of ``name``: its ideal DCG@k, 1 for AvgPrice."""
        metric, k = parse_metric(name)
        gains = self.gains(metric)
        return np.ones(len(self.padded.list_ids)) if gains is None else ideal_dcg(gains, self.padded.mask, k)

    def metric(self, name: str, key: np.ndarray) -> np.ndarray:
        """One metric (``ndcg@20``, ``ndcp@10``, ``avg_price@5`` ...) per list for the ordering ``key``."""
        metric, k = parse_metric(name)
        k_pad = self.padded.gather(np.asarray(key, dtype=np.float64))
        gains = self.gains(metric)
        if gains is None:
            return avg_price_at_k(self.price, k_pad, self.padded.mask, k)
        return ndcg_with_gains(gains, k_pad, self.padded.mask, k)


def evaluate_orderings(
    holdout: pd.DataFrame, keys: dict[str, np.ndarray], propensity_clip: float = 0.05
) -> Evaluation:
    """Every metric of every ordering (a sort key per holdout row, higher first) on the holdout lists.

    NDCG and NDCP use counterfactual gains (observed gain / propensity of the logged position): see
    ``training/ranking/metrics.py``.
    """
    lists = HoldoutLists.of(holdout, propensity_clip)
    rows: dict[str, dict[str, float]] = {}
    per_list: dict[str, dict[str, np.ndarray]] = {}
    names = [f"{metric}@{k}" for k in KS for metric in METRICS]
    weights = {name: lists.list_weights(name) for name in names}
    for ordering, key in keys.items():
        per_list[ordering] = {name: lists.metric(name, key) for name in names}
        rows[ordering] = {name: mean_defined(per_list[ordering][name], weights[name])[0] for name in names}
    table = pd.DataFrame.from_dict(rows, orient="index")
    ndcg20 = per_list[next(iter(keys))]["ndcg@20"]
    ndcp20 = per_list[next(iter(keys))]["ndcp@20"]
    return Evaluation(
        table=table,
        per_list=per_list,
        weights=weights,
        areas=ecdf_areas(per_list, weights),
        lists=len(lists.padded.list_ids),
        lists_without_positive=int(np.isnan(ndcg20).sum()),
        lists_without_purchase=int(np.isnan(ndcp20).sum()),
    )


def ecdf_areas(per_list: dict[str, dict[str, np.ndarray]], weights: dict[str, np.ndarray]) -> pd.DataFrame:
    """Area under each ordering's ECDF per metric@k and its relative change against the logged order.

    NDCG and NDCP live in [0, 1]; AvgPrice on [0, the largest value of any ordering]: the same range for all.
    """
    metrics = list(next(iter(per_list.values())))
    hi = {m: 1.0 for m in metrics}
    for m in metrics:
        if m.startswith("avg_price"):
            hi[m] = float(max(np.nanmax(v[m]) for v in per_list.values()))
    out: dict[str, dict[str, float]] = {}
    for name, values in per_list.items():
        out[name] = {f"{m} auc": ecdf_area(values[m], 0.0, hi[m], weights[m]) for m in metrics}
    table = pd.DataFrame.from_dict(out, orient="index")
    if LOGGED in out:
        for m in metrics:
            table[f"{m} auc change"] = table[f"{m} auc"] / table.loc[LOGGED, f"{m} auc"] - 1.0
    return table


def orderings(
    holdout: pd.DataFrame, relevance: np.ndarray, p_purchase: np.ndarray, alphas: list[float],
    extra: dict[str, np.ndarray] | None = None,
) -> dict[str, np.ndarray]:
    """The sort keys compared in the evaluation: logged order, relevance, hybrids, expected revenue."""
    codes, _ = pd.factorize(holdout[LIST_ID], sort=False)
    price = holdout[PRICE].to_numpy(np.float64)
    keys = {LOGGED: -holdout["position"].to_numpy(np.float64), RELEVANCE: relevance, **(extra or {})}
    for alpha, key in zip(alphas, hybrid_sort_keys(codes, relevance, price, list(alphas)), strict=True):
        keys[hybrid_name(alpha)] = key
    keys["expected revenue p*price"] = expected_revenue_key(p_purchase, price, "identity")
    keys["expected revenue p*ln(price)"] = expected_revenue_key(p_purchase, price, "ln")
    return keys


def parse_metric(name: str) -> tuple[str, int]:
    """``ndcg@20`` -> (``ndcg``, 20); the gate's metric names."""
    metric, _, k = name.partition("@")
    if metric not in METRICS or not k.isdigit():
        raise KeyError(f"no ranking metric {name!r}: use one of {', '.join(METRICS)} with @k, e.g. ndcg@20")
    return metric, int(k)


def holdout_metric(holdout: pd.DataFrame, key: np.ndarray, name: str, propensity_clip: float = 0.05) -> float:
    """Mean of one metric (``ndcg@20``, ``ndcp@20``, ``avg_price@10`` ...) over the lists where it is defined."""
    lists = HoldoutLists.of(holdout, propensity_clip)
    mean, n, _ = mean_defined(lists.metric(name, key), lists.list_weights(name))
    if n == 0:
        raise ValueError(f"{name} is undefined on every holdout list (no positive label): the gate cannot score")
    return mean


def gate_scorer(gate: GateConfig) -> registry.Scorer:
    """Score a served ranking model (its sort keys) on a holdout by ``gate.metric`` (e.g. ``ndcg@20``)."""
    parse_metric(gate.metric)
    clip = (get_models_config().model(MODEL_NAME).ranking or RankingConfig()).propensity_clip

    def score(model: Any, holdout: pd.DataFrame) -> float:
        return holdout_metric(holdout, _served_keys(model, holdout), gate.metric, clip)

    return score


# (model, holdout, its sort keys) of the last few gate scorings, held weakly: the gate scores each model twice on
# the same holdout (its metric, then the guardrail's), and the prediction is most of a scoring's time
_served: list[tuple[weakref.ref, weakref.ref, np.ndarray]] = []


def _served_keys(model: Any, holdout: pd.DataFrame) -> np.ndarray:
    """The sort keys ``model`` serves for the rows of ``holdout``, predicted once per (model, holdout) object pair."""
    for model_ref, holdout_ref, keys in _served:
        if model_ref() is model and holdout_ref() is holdout:
            return keys
    keys = np.asarray(model.predict(registry.model_input(model, holdout)), dtype=np.float64).reshape(-1)
    live = [entry for entry in _served if entry[0]() is not None and entry[1]() is not None]
    _served[:] = [*live[-3:], (weakref.ref(model), weakref.ref(holdout), keys)]
    return keys


def read_holdout(path: Path) -> pd.DataFrame:
    """A holdout written by :func:`train_ranking` (the gate scores challenger and champion on it)."""
    return pd.read_parquet(path)


# --- the stage -----------------------------------------------------------------------------------------------------
@dataclass
class TrainingResult(results.SearchedTrainingResult):
    """What ``train_ranking`` logged and registered: a searched network's record plus the report and evaluation.

    ``to_dict`` (what travels through XCom) adds only the report folder; the evaluation stays in process.
    """

    report_dir: Path | None = None
    evaluation: Evaluation | None = field(default=None, repr=False, metadata=results.IN_PROCESS)
    propensities: list[float] = field(default_factory=list, metadata=results.IN_PROCESS)


@dataclass
class FittedRanker:
    """One relevance model, its preprocessing, and how it was chosen."""

    preprocessor: RankingPreprocessor
    module: RankingMLP
    hyperparameters: dict[str, Any]
    fit: FitResult
    candidates: list[Candidate]
    dropped_train_lists: int
    dropped_validation_lists: int

    def scores(self, frame: pd.DataFrame) -> np.ndarray:
        return relevance_scores(self.module, self.preprocessor.transform(frame))


def fit_ranker(
    split: RankingSplit, model_cfg: ModelConfig, device: torch.device, *, corrected: bool = True,
    hyperparameters: dict[str, Any] | None = None,
) -> FittedRanker:
    """Fit the relevance model on ``split`` (with or without inverse-propensity weights)."""
    cfg = model_cfg.ranking or RankingConfig()
    preprocessor = RankingPreprocessor.fit(split.train)
    train = list_tensors(preprocessor, split.train, corrected=corrected, propensity_clip=cfg.propensity_clip)
    validation = list_tensors(preprocessor, split.validation, corrected=corrected,
                              propensity_clip=cfg.propensity_clip)
    grid = expand_grid(hyperparameters or model_cfg.hyperparameters, nested=NESTED_KEYS)
    label = "ranking" if corrected else "ranking (uncorrected)"
    chosen, result, candidates = train_relevance(grid, train, validation, device, label)
    return FittedRanker(preprocessor, result.model.to("cpu").eval(), chosen, result, candidates,
                        train.dropped_lists, validation.dropped_lists)


def train_ranking(
    training_set: Path,
    day: dt.date,
    *,
    models_config: ModelsConfig | None = None,
    device: str | None = None,
    with_uncorrected: bool = False,
) -> TrainingResult:
    """Train, evaluate on the holdout, write the report, log to MLflow and register a new version of ``ranking``.

    Args:
        training_set: the parquet file of ``build_ranking_training_set``.
        day: the run date, the last day of the window.
        models_config: [default: ``config/models.yaml``].
        device: ``auto``/``cpu``/``cuda``/``hpu`` [default: ``settings.device``].
        with_uncorrected: also fit the same model without bias correction and compare it in the report.
    """
    from training.ranking.report import write_ranking_report

    started = time.perf_counter()
    config = models_config or get_models_config()
    model_cfg = config.model(MODEL_NAME)
    cfg = model_cfg.ranking or RankingConfig()
    torch_device = select_device(device)
    frame = read_training_set(Path(training_set))
    split = split_by_date(frame, day, model_cfg.holdout_days, cfg.validation_days)
    logger.info("ranking %s: %s", day, split.describe())

    ranker = fit_ranker(split, model_cfg, torch_device, corrected=True)
    pre = ranker.preprocessor
    x_train = pre.transform(split.train)
    classifier = fit_purchase_classifier(
        x_train, split.train["purchased"].to_numpy(bool), split.train[PRICE].to_numpy(np.float64),
        cfg.purchase_price_weight, int(ranker.hyperparameters["seed"]),
    )
    holdout = split.holdout
    relevance = ranker.scores(holdout)
    extra: dict[str, np.ndarray] = {}
    uncorrected: FittedRanker | None = None
    if with_uncorrected:
        uncorrected = fit_ranker(split, model_cfg, torch_device, corrected=False,
                                 hyperparameters=ranker.hyperparameters)
        extra[UNCORRECTED] = uncorrected.scores(holdout)
    alphas = sorted({*cfg.alpha_grid, cfg.alpha})
    keys = orderings(holdout, relevance, classifier.predict(pre.transform(holdout)), alphas, extra)
    evaluation = evaluate_orderings(holdout, keys, cfg.propensity_clip)
    served = hybrid_name(cfg.alpha)
    metrics = {
        **{f"{m.replace('@', '_at_')}": float(v) for m, v in evaluation.table.loc[served].items()},
        **{f"relevance.{m.replace('@', '_at_')}": float(v) for m, v in evaluation.table.loc[RELEVANCE].items()},
        **{f"logged.{m.replace('@', '_at_')}": float(v) for m, v in evaluation.table.loc[LOGGED].items()},
        "holdout_lists": float(evaluation.lists),
        "holdout_lists_without_positive": float(evaluation.lists_without_positive),
        "holdout_lists_without_purchase": float(evaluation.lists_without_purchase),
    }
    logger.info("ranking %s holdout (served alpha=%.2f): %s", day, cfg.alpha,
                ", ".join(f"{k} {v:.4f}" for k, v in metrics.items() if "." not in k))

    propensities = json.loads((Path(training_set).parent / PROPENSITIES_FILE).read_text()) if (
        Path(training_set).parent / PROPENSITIES_FILE).is_file() else {}
    settings = get_settings()
    report_dir = settings.reports / "ranking" / f"dt={day.isoformat()}"
    report_files = write_ranking_report(
        evaluation, report_dir, title=f"Ranking model, holdout {split.holdout_start}..{day}",
        alphas=alphas, served=served, propensities=propensities,
        notes={
            "training lists": int(split.train[LIST_ID].nunique()),
            "training lists without a positive (left out)": ranker.dropped_train_lists,
            "max lists per training day": cfg.max_lists_per_day,
        },
    )
    seed = int(ranker.hyperparameters["seed"])
    reference = _reference_sample(split.train, config.drift.reference_sample_rows, seed)
    holdout_out = holdout[list(HOLDOUT_COLUMNS)]
    def log_extra(run: registry.TrainingRun, folder: Path) -> None:
        run.log_metrics({"val_loss": ranker.fit.best_val_loss})
        for record in ranker.fit.history:
            run.log_metrics({"epoch_train_loss": record.train_loss, "epoch_val_loss": record.val_loss},
                            step=record.epoch)
        for alpha in alphas:  # the trade-off curve, one step per alpha (x100), for MLflow's charts
            row = evaluation.table.loc[hybrid_name(alpha)]
            run.log_metrics({f"tradeoff.{m.replace('@', '_at_')}": float(row[m])
                             for m in ("ndcg@20", "ndcp@20", "avg_price@20")}, step=round(alpha * 100))
        if propensities:
            for k, value in enumerate(propensities.get("theta", []), start=1):
                run.log_metrics({"propensity": float(value)}, step=k)
            run.log_dict(propensities, "propensities/propensities.json")
        run.log_dict({"metrics": json.loads(evaluation.table.to_json(orient="index")),
                      "ecdf_areas": json.loads(evaluation.areas.to_json(orient="index"))}, "evaluation/evaluation.json")
        for path in report_files.values():
            run.log_artifact(path, "report")

    published = publish.log_and_register(publish.TrainingRecord(
        model=MODEL_NAME,
        day=day,
        config=model_cfg,
        window_start=day - dt.timedelta(days=model_cfg.training_window_days - 1),
        training_set=training_set,
        device=str(torch_device),
        hyperparameters=ranker.hyperparameters,
        tags={"alpha": f"{cfg.alpha}"},
        params={
            "alpha": cfg.alpha,
            "alpha_grid": alphas,
            "propensity_clip": cfg.propensity_clip,
            "purchase_price_weight": cfg.purchase_price_weight,
            "max_lists_per_day": cfg.max_lists_per_day,
            "validation_days": cfg.validation_days,
            "lists_train": int(split.train[LIST_ID].nunique()),
            "lists_train_without_positive": ranker.dropped_train_lists,
            "lists_validation": int(split.validation[LIST_ID].nunique()),
            "lists_holdout": evaluation.lists,
            "best_epoch": ranker.fit.best_epoch,
            "n_features": len(pre.feature_names),
        },
        metrics=metrics,
        holdout=holdout_out,
        reference=reference,
        log_extra=log_extra,
        package=publish.ModelPackage(
            python_model=Path(ranking_pyfunc.__file__),
            write_files=lambda folder: ranking_pyfunc.save_model_files(
                folder, pre, ranker.module, _network(ranker.hyperparameters, len(pre.feature_names)), cfg.alpha
            ),
            signature=registry.tabular_signature(
                string_columns=[LIST_ID, *CATEGORICAL_COLUMNS],
                numeric_columns=[c for c in INPUT_COLUMNS if c not in (LIST_ID, *CATEGORICAL_COLUMNS)],
                optional_columns=["ctr_raw", "mean_position"],
                output_name=PREDICTION,
            ),
            requirements=("torch", "pandas", "numpy"),
            input_example=holdout_out[list(INPUT_COLUMNS)].head(5),
            code_paths=(nets.CODE_PATH,),
            version_tags={"alpha": f"{cfg.alpha}", "holdout_ndcg_at_20": f"{metrics['ndcg_at_20']:.6f}"},
        ),
    ))
    seconds = time.perf_counter() - started
    logger.info("ranking %s: run %s, %s v%s, %.1f s", day, published.run_id, MODEL_NAME, published.version, seconds)
    return TrainingResult(
        run_id=published.run_id, model_name=MODEL_NAME, model_version=published.version,
        model_uri=published.model_uri, holdout_path=published.holdout_path, holdout_uri=published.holdout_uri,
        reference_uri=published.reference_uri, metrics=metrics,
        hyperparameters=ranker.hyperparameters, device=str(torch_device), seconds=seconds,
        candidates=ranker.candidates, report_dir=report_dir, evaluation=evaluation,
        propensities=list(propensities.get("theta", [])),
    )


def _reference_sample(train: pd.DataFrame, rows: int, seed: int) -> pd.DataFrame:
    """The ``product_ranking`` rows the training lists saw (one per product and date): the drift reference."""
    columns = ["product_id", EVENT_TIMESTAMP, *PRODUCT_RANKING.column_names]
    snapshot = train[columns].drop_duplicates(["product_id", EVENT_TIMESTAMP]).dropna(subset=["category"])
    return snapshot.sample(n=min(rows, len(snapshot)), random_state=seed).sort_index()


def score_ranking_day(day: dt.date) -> Path | None:
    """Re-rank every list of ``day`` with ``ranking@champion``; None (and a warning) when there is no champion.

    ``<lake>/scores/ranking/dt=<day>/scores.parquet``: per shown item its logged position, the champion's sort key
    and the rank it would have been shown at, with the model version.
    """
    from feature_repo.store import historical_features
    from training.ranking.data import read_impressions
    from training.shared.scoring import scores_path

    version = registry.champion(MODEL_NAME)
    if version is None:
        logger.warning("scoring ranking %s: skipped, no champion yet", day)
        return None
    rows = read_impressions(day, 1)
    features = historical_features(rows, get_models_config().model(MODEL_NAME).feature_service)
    model = registry.load_model(registry.model_version_uri(MODEL_NAME, version.version))
    keys = np.asarray(model.predict(registry.model_input(model, features)), dtype=np.float64).reshape(-1)
    codes, _ = pd.factorize(features[LIST_ID], sort=False)
    out = pd.DataFrame({
        LIST_ID: features[LIST_ID],
        "product_id": features["product_id"],
        "shown_at": features["shown_at"],
        "logged_position": features["position"],
        PREDICTION: keys,
        "ranked_position": ranking_pyfunc.rank_within_lists(codes, keys),
        "model_name": MODEL_NAME,
        "model_version": str(version.version),
    }).sort_values([LIST_ID, "ranked_position"], kind="stable")
    path = scores_path(MODEL_NAME, day)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    out.to_parquet(tmp, index=False, coerce_timestamps="us", allow_truncated_timestamps=False)
    tmp.replace(path)
    logger.info("re-ranked %d lists of %s with ranking v%s -> %s", out[LIST_ID].nunique(), day, version.version, path)
    return path
