"""Recommendation model v1: products for a customer, from what they bought, carted and clicked.

Input: the training set of a run date D (:func:`build_recommendation_training_set`): the Spark-built
``customer_product_interactions`` partitions of the ``training_window_days`` up to D (one row per customer,
product, device and date with a click or an order line, ``strength`` purchase 4 > cart 2 > click 1) and the
catalogue snapshot of D. Impressions without a click are not used (see the Spark build's docstring).

The model is a matrix factorisation trained with a **full softmax** over the catalogue (the exact form of the
sampled-softmax loss; a catalogue of a few thousand products makes the exact normaliser cheap): for every
(customer c, product p) pair of the training days, ``-w_cp * log softmax_p(u_c . v_p + b_p)`` with the weight
``w_cp = strength ** strength_power``. It runs in the shared trainer (:func:`training.shared.trainer.fit`): a minibatch
is a set of pairs, the loss is the weighted cross-entropy over every product, no negative sampling is needed, so
the loop's fixed tensors fit (a BPR loss would need fresh negatives each epoch, which the loop does not draw).

The split is by date inside the window:

    [ train ................................ | validation | holdout (last holdout_days) ]

Each grid point is fitted on train with early stopping on the validation loss, and the one with the best
validation NDCG@10 wins; it is then refitted on train + validation for its best epoch count (the holdout follows
on directly, as serving will). The holdout is touched once: Recall@k and NDCG@k (k = 10, 20) over the full
catalogue for the model and two baselines fitted on the same days (popularity and item-kNN), and the gate.

Serving rules (``training/recommendation/pyfunc.py``): customers without a personal model get the products
popular on their device (and in the page's category); products without interactions get their category's mean
factors; already-bought products are excluded unless they are repeat-purchase items (the catalogue's
``is_repeat_purchase`` flag, or, in data without one, :func:`repeat_purchase_items`); only products of the
catalogue snapshot are named.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch
from torch import nn

from config.models import GateConfig, ModelsConfig, get_models_config
from config.settings import get_settings
from feature_repo.features.tables import ANONYMOUS_CUSTOMER, CUSTOMER_PRODUCT_INTERACTIONS
from training.recommendation import pyfunc as recommendation_pyfunc
from training.recommendation.metrics import DEFAULT_KS, format_metrics, metric_value, ranking_metrics
from training.recommendation.pyfunc import ALL_DEVICES, RecommenderState
from training.shared import publish, registry, results
from training.shared.devices import select_device
from training.shared.trainer import FitResult, LoopConfig, TrainingData, expand_grid, fit

logger = logging.getLogger(__name__)

MODEL_NAME = "recommendation"
DATE = "date"  # the interaction's partition date, added to the training set
DRIFT_COLUMNS = ("device", "impressions", "clicks", "carts", "purchases", "strength")
MODEL_KEYS = {
    "dim",
    "learning_rate",
    "weight_decay",
    "batch_size",
    "max_epochs",
    "patience",
    "seed",
    "strength_power",
    "negatives",
    "exact_softmax_up_to",
}
SPLIT_KEYS = {"validation_days", "knn_neighbors"}  # shape the split / the baseline, never searched over


# --- data ----------------------------------------------------------------------------------------------------------
def build_recommendation_training_set(
    day: dt.date,
    *,
    window_days: int | None = None,
    raw_root: Path | None = None,
    features_root: Path | None = None,
    out_root: Path | None = None,
) -> Path:
    """Write the training set of ``day``: ``<training_sets>/recommendation/dt=<day>/{interactions,catalog}.parquet``.

    ``interactions``: every row of the ``customer_product_interactions`` partitions of the training window (the
    dates that exist, ``day``'s own required) with its ``date``; ``catalog``: the raw catalogue snapshot of ``day``
    (``product_id``, ``category``, ``is_repeat_purchase``). Returns the folder. The window (default: the model's
    ``training_window_days``) and the roots (default: the settings' lake) can be given, as the tests do.
    """
    from feature_repo.contract import lake
    from feature_repo.contract.schema import TABLES
    from feature_repo.features.partitions import feature_partition_dir, read_feature_partition
    from training.shared.datasets import training_window

    settings = get_settings()
    window_days = window_days or get_models_config().model(MODEL_NAME).training_window_days
    raw_root = raw_root or settings.raw_root
    features_root = features_root or settings.features_root
    table = CUSTOMER_PRODUCT_INTERACTIONS.name
    days = [d for d in training_window(day, window_days) if feature_partition_dir(features_root, table, d).is_dir()]
    if day not in days:
        raise FileNotFoundError(f"no {table} partition for {day} under {features_root / table}")
    frames = [read_feature_partition(features_root, table, d).to_pandas().assign(**{DATE: d}) for d in days]
    interactions = pd.concat(frames, ignore_index=True)
    catalog = (
        lake.read_table(raw_root, TABLES["catalog"], [day])
        .select(["product_id", "category", "is_repeat_purchase"])
        .to_pandas()
    )
    out = (out_root or settings.training_sets_root) / MODEL_NAME / f"dt={day.isoformat()}"
    out.mkdir(parents=True, exist_ok=True)
    interactions.to_parquet(out / "interactions.parquet", index=False, coerce_timestamps="us")
    catalog.to_parquet(out / "catalog.parquet", index=False)
    logger.info(
        "recommendation training set for %s: %d interaction rows over %d days (%s..%s), %d products -> %s",
        day,
        len(interactions),
        len(days),
        days[0],
        days[-1],
        len(catalog),
        out,
    )
    return out


def read_training_set(folder: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(interactions, catalog) of a training set folder."""
    interactions = pd.read_parquet(Path(folder) / "interactions.parquet")
    interactions[DATE] = pd.to_datetime(interactions[DATE]).dt.date
    catalog = pd.read_parquet(Path(folder) / "catalog.parquet")
    return interactions, catalog


@dataclass(frozen=True)
class DateSplit:
    """Interaction rows cut by date; all dates inclusive."""

    train: pd.DataFrame
    validation: pd.DataFrame
    holdout: pd.DataFrame
    validation_start: dt.date
    holdout_start: dt.date
    end: dt.date

    def describe(self) -> str:
        return (
            f"train ..{self.validation_start - dt.timedelta(days=1)} ({len(self.train)} rows), validation "
            f"{self.validation_start}..{self.holdout_start - dt.timedelta(days=1)} ({len(self.validation)}), "
            f"holdout {self.holdout_start}..{self.end} ({len(self.holdout)})"
        )


def split_by_date(interactions: pd.DataFrame, day: dt.date, holdout_days: int, validation_days: int) -> DateSplit:
    """Holdout = the last ``holdout_days`` up to ``day``; validation = the ``validation_days`` before; train = rest."""
    holdout_start = day - dt.timedelta(days=holdout_days - 1)
    validation_start = holdout_start - dt.timedelta(days=validation_days)
    dates = interactions[DATE]
    split = DateSplit(
        train=interactions[dates < validation_start].reset_index(drop=True),
        validation=interactions[(dates >= validation_start) & (dates < holdout_start)].reset_index(drop=True),
        holdout=interactions[(dates >= holdout_start) & (dates <= day)].reset_index(drop=True),
        validation_start=validation_start,
        holdout_start=holdout_start,
        end=day,
    )
    for part in ("train", "validation", "holdout"):
        if getattr(split, part).empty:
            raise ValueError(f"no {part} interactions for {day} ({split.describe()})")
    return split


@dataclass
class Interactions:
    """Registered customers' interactions as a (users x items) matrix of the strongest strength per pair."""

    users: np.ndarray  # (m,) customer ids
    items: np.ndarray  # (n,) product ids: the catalogue
    matrix: sp.csr_matrix  # strength (1, 2 or 4), 0 where nothing happened
    purchased: sp.csr_matrix  # 1 where the customer bought the product

    @property
    def user_index(self) -> dict[str, int]:
        return {u: i for i, u in enumerate(self.users.tolist())}


def interaction_matrix(rows: pd.DataFrame, items: Sequence[str], users: Sequence[str] | None = None) -> Interactions:
    """Aggregate ``rows`` (any dates, devices) per (customer, product) over the given items.

    ``users`` fixes the user axis (rows of other customers are dropped); by default the registered customers
    present in ``rows``, sorted. Anonymous rows never enter; products outside ``items`` are dropped.
    """
    registered = rows[rows["customer_id"] != ANONYMOUS_CUSTOMER]
    item_axis = np.asarray(items, dtype=object)
    user_axis = (
        np.asarray(users, dtype=object)
        if users is not None
        else np.array(sorted(registered["customer_id"].unique()), dtype=object)
    )
    item_pos = pd.Index(item_axis).get_indexer(registered["product_id"])
    user_pos = pd.Index(user_axis).get_indexer(registered["customer_id"])
    keep = (item_pos >= 0) & (user_pos >= 0)
    r, c = user_pos[keep], item_pos[keep]
    shape = (len(user_axis), len(item_axis))
    strength = registered["strength"].to_numpy(np.float64)[keep]
    bought = (registered["purchases"].to_numpy() > 0)[keep].astype(np.float64)
    # strongest interaction per pair: max via a sparse "maximum" reduction over duplicates
    matrix = _max_duplicates(r, c, strength, shape)
    purchased = _max_duplicates(r, c, bought, shape)
    purchased.eliminate_zeros()
    return Interactions(user_axis, item_axis, matrix, purchased)


def _max_duplicates(r: np.ndarray, c: np.ndarray, values: np.ndarray, shape: tuple[int, int]) -> sp.csr_matrix:
    frame = pd.DataFrame({"r": r, "c": c, "v": values}).groupby(["r", "c"], sort=True)["v"].max().reset_index()
    return sp.csr_matrix((frame["v"].to_numpy(np.float64), (frame["r"], frame["c"])), shape=shape)


def repeat_purchase_items(rows: pd.DataFrame, min_buyers: int = 3, min_share: float = 0.2) -> set[str]:
    """Products bought again: at least ``min_share`` of their (at least ``min_buyers``) buyers bought on 2+ dates.

    For data without the catalogue's ``is_repeat_purchase`` flag (the real benchmarks' retail data).
    """
    bought = rows[(rows["purchases"] > 0) & (rows["customer_id"] != ANONYMOUS_CUSTOMER)]
    dates = bought.groupby(["product_id", "customer_id"])[DATE].nunique()
    per_item = dates.groupby(level=0).agg(buyers="size", repeat=lambda s: int((s >= 2).sum()))
    repeat = per_item[(per_item["buyers"] >= min_buyers) & (per_item["repeat"] >= min_share * per_item["buyers"])]
    return set(repeat.index.astype(str))


def popularity_by_device(rows: pd.DataFrame, items: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """(devices, popularity): strength summed per product and device over all customers, anonymous included.

    ``popularity`` has one row per device and a last row for all devices together; a product with no interaction
    scores 0, and ties keep the catalogue order (exact top-k breaks ties by index).
    """
    devices = np.array(sorted(rows["device"].unique()), dtype=object)
    pos = pd.Index(np.asarray(items, dtype=object)).get_indexer(rows["product_id"])
    dev = pd.Index(devices).get_indexer(rows["device"])
    keep = pos >= 0
    pop = np.zeros((len(devices) + 1, len(items)), np.float32)
    np.add.at(pop, (dev[keep], pos[keep]), rows["strength"].to_numpy(np.float32)[keep])
    pop[-1] = pop[:-1].sum(axis=0)
    return devices, pop


# --- baselines -----------------------------------------------------------------------------------------------------
def exclusion_mask(purchased: sp.csr_matrix, repeat: np.ndarray) -> sp.csr_matrix:
    """Pairs that must not be recommended: bought before, and the product is not a repeat-purchase item."""
    mask = purchased.multiply(sp.csr_matrix((~repeat).astype(np.float64))).tocsr()
    mask.eliminate_zeros()
    return mask


def rank_scores(
    scores: np.ndarray, excluded: sp.csr_matrix, k: int, allowed: np.ndarray | None = None
) -> list[np.ndarray]:
    """Top-k item indices per row of dense ``scores`` after removing excluded pairs (and items not ``allowed``)."""
    scores = np.array(scores, dtype=np.float32, copy=True)
    if allowed is not None:
        scores[:, ~allowed] = -np.inf
    coo = excluded.tocoo()
    scores[coo.row, coo.col] = -np.inf
    idx, val = recommendation_pyfunc.top_k(scores, k)
    return [i[np.isfinite(v)] for i, v in zip(idx, val, strict=True)]


def popularity_scores(train: sp.csr_matrix, n_users: int) -> np.ndarray:
    """Every user gets the products ranked by how many customers interacted with them (strength-weighted)."""
    pop = np.asarray(train.sum(axis=0), dtype=np.float32).reshape(1, -1)
    return np.broadcast_to(pop, (n_users, pop.shape[1]))


def item_knn_similarity(train: sp.csr_matrix, neighbors: int = 100, chunk: int = 2048) -> sp.csr_matrix:
    """Item-based kNN: cosine similarity of the products' customer vectors, each product's ``neighbors`` most
    similar kept (Sarwar et al. 2001, Deshpande & Karypis 2004), as a sparse (items x items) matrix.

    Built ``chunk`` products at a time, so a catalogue of 20k products never holds its dense 20k x 20k matrix.
    """
    from sklearn.preprocessing import normalize

    columns = normalize(train.T.tocsr().astype(np.float32), norm="l2", axis=1)
    n_items = columns.shape[0]
    keep = min(neighbors, n_items)
    blocks = []
    for start in range(0, n_items, chunk):
        sim = (columns[start : start + chunk] @ columns.T).toarray()
        sim[np.arange(len(sim)), np.arange(start, start + len(sim))] = 0.0
        if keep < n_items:
            cut = np.argpartition(-sim, keep - 1, axis=1)[:, keep:]
            np.put_along_axis(sim, cut, 0.0, axis=1)
        blocks.append(sp.csr_matrix(sim))
    return sp.vstack(blocks, format="csr")


def item_knn_scores(train: sp.csr_matrix, similarity: sp.csr_matrix, rows: np.ndarray) -> np.ndarray:
    """``score(c, p) = sum_{q in history(c)} strength(c, q) * sim(q, p)`` for the customers ``rows``, dense."""
    return np.asarray((train[rows].astype(np.float32) @ similarity).toarray())


def rank_rows(
    scores: Callable[[np.ndarray], np.ndarray],
    rows: np.ndarray,
    excluded: sp.csr_matrix,
    k: int,
    chunk: int = 2048,
) -> list[np.ndarray]:
    """:func:`rank_scores` of ``scores(rows)`` a ``chunk`` of rows at a time (``excluded`` indexed like ``rows``):
    the dense (rows x catalogue) scores of every customer never exist at once."""
    ranked: list[np.ndarray] = []
    for start in range(0, len(rows), chunk):
        part = rows[start : start + chunk]
        ranked += rank_scores(scores(part), excluded[part], k)
    return ranked


# --- the model -----------------------------------------------------------------------------------------------------
class SoftmaxMF(nn.Module):
    """Matrix factorisation scored over the whole catalogue: ``logits[c] = U[c] @ V.T + b``.

    With ``negatives`` > 0 and a catalogue larger than ``exact_up_to`` products, training estimates the softmax's
    normaliser from ``negatives`` products sampled per minibatch (shared by its rows) from ``proposal`` (the pair
    counts per product, smoothed: ``q ∝ (count + 1) ** 0.75``), the sampled softmax of Jean et al. (2015) with the
    logQ correction of TensorFlow's ``sampled_softmax_loss``: every candidate's logit less ``log(negatives * q)``,
    and a sampled product that is the row's own positive masked out. The forward pass then returns the positive's
    logit in column 0 and the samples' after it. In eval mode (validation loss, scores) it is always the exact
    softmax over the catalogue.
    """

    def __init__(
        self,
        n_users: int,
        n_items: int,
        dim: int,
        *,
        negatives: int = 0,
        exact_up_to: int = 0,
        proposal: np.ndarray | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.n_items = n_items
        self.user = nn.Embedding(n_users, dim)
        self.item = nn.Embedding(n_items, dim)
        self.bias = nn.Parameter(torch.zeros(n_items))
        nn.init.normal_(self.user.weight, std=0.1)
        nn.init.normal_(self.item.weight, std=0.1)
        self.negatives = negatives if sampled_softmax(n_items, negatives, exact_up_to) else 0
        q = np.power(np.asarray(proposal if proposal is not None else np.zeros(n_items), np.float64) + 1.0, 0.75)
        q /= q.sum()
        self.register_buffer("proposal", torch.from_numpy(q.astype(np.float32)), persistent=False)
        self.register_buffer("log_expected", torch.log(self.proposal * max(self.negatives, 1)), persistent=False)
        self.sampler = torch.Generator().manual_seed(seed)  # on the CPU: the samples do not depend on the device

    def forward(self, users: torch.Tensor, items: torch.Tensor | None = None) -> torch.Tensor:
        u = self.user(users)
        if not (self.training and self.negatives and items is not None):
            return u @ self.item.weight.T + self.bias
        sampled = torch.multinomial(self.proposal.cpu(), self.negatives, replacement=True, generator=self.sampler)
        sampled = sampled.to(users.device)
        positive = (u * self.item(items)).sum(dim=1) + self.bias[items] - self.log_expected[items]
        negative = u @ self.item(sampled).T + (self.bias[sampled] - self.log_expected[sampled])
        negative = negative.masked_fill(sampled.unsqueeze(0) == items.unsqueeze(1), float("-inf"))
        return torch.cat([positive.unsqueeze(1), negative], dim=1)


def sampled_softmax(n_items: int, negatives: int, exact_up_to: int) -> bool:
    """Whether training samples the softmax's normaliser: asked for, and the catalogue too large for the exact one."""
    return negatives > 0 and n_items > max(exact_up_to, negatives + 1)


def weighted_softmax_loss(n_items: int) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """The loss: mean over the batch's pairs of ``-w * log softmax(logits)[item]``, weights normalised to mean 1.

    ``target`` packs (item index, weight) per row, so the shared loop's single target tensor carries both. Logits
    over the whole catalogue (``n_items`` wide) take the item index as the column; a sampled softmax's candidates
    (:class:`SoftmaxMF`, never as wide as the catalogue) have the positive in column 0.
    """

    def loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        items, weights = target[:, 0].long(), target[:, 1]
        column = items if logits.shape[1] == n_items else torch.zeros_like(items)
        nll = nn.functional.cross_entropy(logits, column, reduction="none")
        return (weights * nll).sum() / weights.sum()

    return loss


def pair_data(matrix: sp.csr_matrix, strength_power: float) -> TrainingData:
    """One row per (user, item) pair of ``matrix``: inputs the user and the item, target (item, strength ** power)."""
    coo = matrix.tocoo()
    weights = np.power(coo.data, strength_power).astype(np.float32)
    target = np.column_stack([coo.col.astype(np.float32), weights])
    inputs = (torch.from_numpy(coo.row.astype(np.int64)), torch.from_numpy(coo.col.astype(np.int64)))
    return TrainingData(inputs, torch.from_numpy(target))


def _loop_config(hp: dict[str, Any], max_epochs: int | None = None) -> LoopConfig:
    """The grid point's loop settings; with ``max_epochs`` exactly that many epochs (a refit: nothing to stop on)."""
    config = LoopConfig.from_hyperparameters(hp)
    if max_epochs is None:
        return config
    return dataclasses.replace(config, max_epochs=int(max_epochs), patience=int(max_epochs) + 1)


@torch.no_grad()
def factors(module: SoftmaxMF) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(user factors, item factors, item bias) as float32 numpy arrays."""
    module = module.to("cpu").eval()
    return (
        module.user.weight.detach().numpy().astype(np.float32),
        module.item.weight.detach().numpy().astype(np.float32),
        module.bias.detach().numpy().astype(np.float32),
    )


@dataclass(frozen=True)
class Candidate:
    """One grid point: its validation loss, validation ranking metrics and epochs."""

    hyperparameters: dict[str, Any]
    val_loss: float
    val_metrics: dict[str, float]
    best_epoch: int
    epochs: int
    seconds: float


@dataclass
class FittedRecommender:
    """The chosen fit and what the search saw."""

    module: SoftmaxMF
    hyperparameters: dict[str, Any]
    best_epoch: int
    candidates: list[Candidate]
    refit: FitResult | None


def fit_recommender(
    train: Interactions,
    validation: sp.csr_matrix,
    grid: list[dict[str, Any]],
    device: torch.device,
    *,
    excluded: sp.csr_matrix | None = None,
    refit_on: Interactions | None = None,
    select_on: str = "ndcg@10",
    label: str = MODEL_NAME,
) -> FittedRecommender:
    """Search ``grid`` on (train, validation); refit the winner on ``refit_on`` (train + validation) if given.

    ``validation`` is a (users x items) matrix on the train user axis; the winner has the best ``select_on``
    ranking the full catalogue for the users with validation interactions (``excluded`` pairs removed).
    """
    n_items = train.matrix.shape[1]
    val_rows = np.flatnonzero(np.diff(validation.indptr) > 0)
    if len(val_rows) == 0:
        raise ValueError("no validation interaction of a customer seen in training: cannot select a model")
    relevant = [validation.indices[validation.indptr[r] : validation.indptr[r + 1]] for r in val_rows]
    excluded = excluded if excluded is not None else sp.csr_matrix(train.matrix.shape)
    best: tuple[float, dict[str, Any], FitResult] | None = None
    candidates: list[Candidate] = []
    for i, hp in enumerate(grid, start=1):
        unknown = set(hp) - MODEL_KEYS
        if unknown:
            raise KeyError(f"unknown recommendation hyperparameter(s) {sorted(unknown)}; known: {sorted(MODEL_KEYS)}")
        power = float(hp.get("strength_power", 1.0))
        result = fit(
            lambda hp=hp: _module(hp, len(train.users), train.matrix),
            pair_data(train.matrix, power),
            _validation_pairs(validation, power),
            weighted_softmax_loss(n_items),
            _loop_config(hp),
            device,
            label=f"{label}[{i}/{len(grid)}]",
        )
        ranked = rank_rows(scorer(result.model), val_rows, excluded, max(DEFAULT_KS))
        metrics = ranking_metrics(ranked, relevant)
        candidates.append(
            Candidate(hp, result.best_val_loss, metrics, result.best_epoch, len(result.history), result.seconds)
        )
        logger.info(
            "%s candidate %d/%d %s: val loss %.4f, %s",
            label,
            i,
            len(grid),
            hp,
            result.best_val_loss,
            format_metrics(metrics),
        )
        if best is None or metrics[select_on] > best[0]:
            best = (metrics[select_on], hp, result)
    assert best is not None  # expand_grid never returns an empty grid
    _, chosen, result = best
    if refit_on is None:
        return FittedRecommender(result.model, chosen, result.best_epoch, candidates, None)
    power = float(chosen.get("strength_power", 1.0))
    refit = fit(
        lambda: _module(chosen, len(refit_on.users), refit_on.matrix),
        pair_data(refit_on.matrix, power),
        None,  # no held-out days left: runs the chosen number of epochs and keeps the last
        weighted_softmax_loss(n_items),
        _loop_config(chosen, max_epochs=result.best_epoch),
        device,
        label=f"{label} refit",
    )
    return FittedRecommender(refit.model, chosen, result.best_epoch, candidates, refit)


def scorer(module: SoftmaxMF) -> Callable[[np.ndarray], np.ndarray]:
    """Dense scores over the catalogue of the fitted ``module`` for the given user rows."""
    u, v, b = factors(module)
    return lambda rows: u[rows] @ v.T + b


def _module(hp: dict[str, Any], n_users: int, matrix: sp.csr_matrix) -> SoftmaxMF:
    """The grid point's module; a sampled softmax draws from the products' pair counts in ``matrix``."""
    return SoftmaxMF(
        n_users,
        matrix.shape[1],
        int(hp["dim"]),
        negatives=int(hp.get("negatives", 0)),
        exact_up_to=int(hp.get("exact_softmax_up_to", 0)),
        proposal=np.diff(matrix.tocsc().indptr),
        seed=int(hp["seed"]),
    )


def _validation_pairs(validation: sp.csr_matrix, power: float) -> TrainingData:
    if validation.nnz == 0:
        raise ValueError("the validation days hold no interaction of a customer seen in training")
    return pair_data(validation, power)


def category_factors(
    item_factors: np.ndarray, item_bias: np.ndarray, category: np.ndarray, cold: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Cold products get the mean factors and bias of their category's warm products (zeros without any)."""
    v, b = item_factors.copy(), item_bias.copy()
    for c in np.unique(category[cold]):
        warm = (category == c) & ~cold
        rows = cold & (category == c)
        v[rows] = item_factors[warm].mean(axis=0) if warm.any() else 0.0
        b[rows] = item_bias[warm].mean() if warm.any() else float(item_bias[~cold].min(initial=0.0))
    return v, b


# --- the stage -----------------------------------------------------------------------------------------------------
@dataclass
class TrainingResult(results.TrainingResult):
    """What ``train_recommendation`` logged and registered; ``to_dict`` travels through XCom."""

    hyperparameters: dict[str, Any]
    device: str
    candidates: list[Candidate] = field(default_factory=list, metadata=results.IN_PROCESS)


@dataclass
class Evaluation:
    """Holdout metrics of the model and the baselines, for warm customers and for every holdout customer."""

    metrics: dict[str, dict[str, float]]  # method -> metric -> value (method "model", "popularity", "item_knn")
    users_warm: int
    users_all: int

    def flat(self) -> dict[str, float]:
        return {f"{m}.{k}": v for m, values in self.metrics.items() for k, v in values.items()}


def evaluate_on_holdout(
    state: RecommenderState,
    history: Interactions,
    holdout: pd.DataFrame,
    repeat: np.ndarray,
    knn_neighbors: int,
) -> Evaluation:
    """Recall@k, NDCG@k of the model and of popularity and item-kNN fitted on ``history``, full catalogue.

    Warm customers (with a personal model) are the comparison; ``all`` adds holdout customers without history,
    who get the popularity fallback from every method.
    """
    target = interaction_matrix(holdout, history.items)
    warm_pos = pd.Index(history.users).get_indexer(target.users)
    relevant_all = [
        target.matrix.indices[target.matrix.indptr[r] : target.matrix.indptr[r + 1]] for r in range(len(target.users))
    ]
    has_rel = np.array([len(r) > 0 for r in relevant_all])
    excluded = exclusion_mask(history.purchased, repeat)
    k = max(DEFAULT_KS)
    warm_rows = np.flatnonzero((warm_pos >= 0) & has_rel)
    hist_rows = warm_pos[warm_rows]
    relevant = [relevant_all[r] for r in warm_rows]
    knn = item_knn_similarity(history.matrix, knn_neighbors)
    methods: dict[str, Callable[[np.ndarray], np.ndarray]] = {
        "model": lambda r: state.user_factors[r] @ state.item_factors.T + state.item_bias,
        "popularity": lambda r: popularity_scores(history.matrix, len(r)),
        "item_knn": lambda r: item_knn_scores(history.matrix, knn, r),
    }
    cold_rows = np.flatnonzero((warm_pos < 0) & has_rel)
    # every customer without history gets the same popularity list: ranked once
    popular = rank_scores(popularity_scores(history.matrix, 1), sp.csr_matrix((1, len(history.items))), k)[0]
    cold_ranked = [popular] * len(cold_rows)
    out: dict[str, dict[str, float]] = {}
    for name, scores in methods.items():
        ranked = rank_rows(scores, hist_rows, excluded, k)
        out[name] = ranking_metrics(ranked, relevant)
        out[f"{name}_all"] = ranking_metrics(ranked + cold_ranked, relevant + [relevant_all[r] for r in cold_rows])
    return Evaluation(out, len(warm_rows), len(warm_rows) + len(cold_rows))


def train_recommendation(
    training_set: Path,
    day: dt.date,
    *,
    models_config: ModelsConfig | None = None,
    device: str | None = None,
) -> TrainingResult:
    """Train, evaluate on the holdout against the baselines, log and register a new version of ``recommendation``.

    Args:
        training_set: folder written by :func:`build_recommendation_training_set`.
        day: the run date, the last day of the window.
        models_config: [default: ``config/models.yaml``]; tests pass a copy with a smaller grid.
        device: ``auto``/``cpu``/``cuda``/``hpu`` [default: ``settings.device``].
    """
    started = time.perf_counter()
    config = models_config or get_models_config()
    model_cfg = config.model(MODEL_NAME)
    torch_device = select_device(device)
    interactions, catalog = read_training_set(Path(training_set))
    hyperparameters = dict(model_cfg.hyperparameters)
    validation_days = int(hyperparameters.pop("validation_days", 3))
    knn_neighbors = int(hyperparameters.pop("knn_neighbors", 100))
    split = split_by_date(interactions, day, model_cfg.holdout_days, validation_days)
    logger.info("recommendation %s: %s", day, split.describe())

    items = catalog["product_id"].to_numpy(dtype=object)
    category = catalog["category"].to_numpy(dtype=object)
    history_rows = pd.concat([split.train, split.validation], ignore_index=True)
    repeat = catalog["is_repeat_purchase"].to_numpy(bool) | np.isin(items, list(repeat_purchase_items(history_rows)))
    train = interaction_matrix(split.train, items)
    history = interaction_matrix(history_rows, items)
    validation = interaction_matrix(split.validation, items, users=train.users).matrix
    grid = expand_grid(hyperparameters)
    fitted = fit_recommender(
        train, validation, grid, torch_device, excluded=exclusion_mask(train.purchased, repeat), refit_on=history
    )
    user_f, item_f, item_b = factors(fitted.module)
    cold = np.asarray(history.matrix.sum(axis=0)).reshape(-1) == 0
    item_f, item_b = category_factors(item_f, item_b, category, cold)
    devices, popularity = popularity_by_device(history_rows, items)
    purchased = history.purchased.tocsr()
    state = RecommenderState(
        item_ids=items,
        item_category=category,
        item_repeat=repeat,
        item_factors=item_f,
        item_bias=item_b,
        item_cold=cold,
        user_ids=history.users,
        user_factors=user_f,
        purchased_indptr=purchased.indptr.astype(np.int64),
        purchased_indices=purchased.indices.astype(np.int64),
        devices=devices,
        popularity=popularity,
        meta={"run_date": day.isoformat(), "dim": int(fitted.hyperparameters["dim"]), "devices_all": ALL_DEVICES},
    )
    evaluation = evaluate_on_holdout(state, history, split.holdout, repeat, knn_neighbors)
    for method, values in evaluation.metrics.items():
        logger.info("recommendation %s holdout %s: %s", day, method, format_metrics(values))
    metrics = {
        **{k: v for k, v in evaluation.metrics["model_all"].items() if k != "users"},
        **evaluation.flat(),
        "users_warm": float(evaluation.users_warm),
        "users_all": float(evaluation.users_all),
        "cold_products": float(cold.sum()),
        "repeat_products": float(repeat.sum()),
    }
    holdout = gate_holdout(split.holdout, items)
    # the drift monitor compares each night's interaction partition with the rows the model learnt from
    reference = history_rows.sample(
        n=min(config.drift.reference_sample_rows, len(history_rows)), random_state=int(fitted.hyperparameters["seed"])
    ).sort_index()[[*DRIFT_COLUMNS]]

    def log_extra(run: registry.TrainingRun, folder: Path) -> None:
        run.log_dict({"candidates": [asdict(c) for c in fitted.candidates]}, "search/candidates.json")
        run.log_dict(evaluation.metrics, "evaluation/holdout_metrics.json")

    published = publish.log_and_register(publish.TrainingRecord(
        model=MODEL_NAME,
        day=day,
        config=model_cfg,
        window_start=day - dt.timedelta(days=model_cfg.training_window_days - 1),
        training_set=training_set,
        device=str(torch_device),
        hyperparameters=fitted.hyperparameters,
        tags={"feature_table": CUSTOMER_PRODUCT_INTERACTIONS.name},
        params={
            "grid_size": len(grid),
            "validation_days": validation_days,
            "knn_neighbors": knn_neighbors,
            "best_epoch": fitted.best_epoch,
            "users": len(history.users),
            "products": len(items),
            "pairs_train": int(train.matrix.nnz),
            "pairs_history": int(history.matrix.nnz),
            "rows_holdout": len(split.holdout),
        },
        metrics={k.replace("@", "_at_"): v for k, v in metrics.items()},  # MLflow refuses '@'
        holdout=holdout,
        beside_holdout={"catalog": catalog},  # the gate's catalogue goes beside the holdout
        reference=reference,
        log_extra=log_extra,
        package=publish.ModelPackage(
            python_model=Path(recommendation_pyfunc.__file__),
            write_files=lambda folder: {recommendation_pyfunc.STATE_ARTIFACT: str(state.save(folder))},
            signature=recommendation_signature(),
            requirements=("pandas", "numpy"),
            input_example=holdout[["customer_id", "device"]].drop_duplicates().head(3).reset_index(drop=True),
            version_tags={"holdout_ndcg_at_10": f"{metrics['ndcg@10']:.6f}"},
        ),
    ))
    seconds = time.perf_counter() - started
    logger.info("recommendation %s: run %s, v%s, %.1f s", day, published.run_id, published.version, seconds)
    return TrainingResult(
        run_id=published.run_id,
        model_name=MODEL_NAME,
        model_version=published.version,
        model_uri=published.model_uri,
        holdout_uri=published.holdout_uri,
        holdout_path=published.holdout_path,
        metrics=metrics,
        hyperparameters=fitted.hyperparameters,
        device=str(torch_device),
        seconds=seconds,
        candidates=fitted.candidates,
    )


def recommendation_signature() -> Any:
    """Input columns (all optional) and the ``k`` / ``catalog`` params of the pyfunc."""
    return registry.string_params_signature(
        {c: c == "customer_id" for c in ("customer_id", "device", "category")},
        [("k", "long", 10, None), ("catalog", "string", [], (-1,))],
    )


# --- the gate ------------------------------------------------------------------------------------------------------
def main_device(rows: pd.DataFrame) -> pd.DataFrame:
    """Each customer's most frequent ``device`` among ``rows`` (ties: the first by name), one row per customer."""
    counts = rows.groupby(["customer_id", "device"]).size().rename("n").reset_index()
    ordered = counts.sort_values(["customer_id", "n", "device"], ascending=[True, False, True])
    return ordered.drop_duplicates("customer_id")[["customer_id", "device"]].reset_index(drop=True)


def gate_holdout(holdout_rows: pd.DataFrame, items: Sequence[str]) -> pd.DataFrame:
    """The gate's holdout: registered customers' (customer, product) pairs of the catalogue ``items``, with the
    customer's most used device in the holdout days (the context the fallback ranks by)."""
    registered = holdout_rows[
        (holdout_rows["customer_id"] != ANONYMOUS_CUSTOMER) & holdout_rows["product_id"].isin(set(items))
    ]
    pairs = registered[["customer_id", "product_id"]].drop_duplicates()
    return (
        pairs.merge(main_device(registered), on="customer_id")
        .sort_values(["customer_id", "product_id"])
        .reset_index(drop=True)
    )


def read_holdout(path: Path) -> pd.DataFrame:
    """The gate's holdout pairs, with the run date's catalogue in ``attrs["catalog"]`` (both models rank it)."""
    frame = pd.read_parquet(path)
    frame.attrs["catalog"] = pd.read_parquet(Path(path).parent / "catalog.parquet")["product_id"].tolist()
    return frame


def recommendation_scorer(gate: GateConfig) -> Callable[[Any, pd.DataFrame], float]:
    """Score a logged recommender on the gate holdout with ``gate.metric`` (``ndcg_at_10``, ``recall_at_20``)."""
    k = int(gate.metric.replace("_at_", "@").rsplit("@", 1)[-1])

    def score(model: Any, holdout: pd.DataFrame) -> float:
        requests = holdout[["customer_id", "device"]].drop_duplicates("customer_id").reset_index(drop=True)
        catalog = holdout.attrs.get("catalog") or []
        out = model.predict(requests, params={"k": k, "catalog": list(catalog)})
        # grouped on plain columns: a frame's attrs (the catalogue list) are deep-copied into every group otherwise
        pairs = pd.DataFrame({c: holdout[c].to_numpy() for c in ("customer_id", "product_id")})
        relevant = pairs.groupby("customer_id")["product_id"].agg(list)
        names = {
            p: i
            for i, p in enumerate(sorted(set(holdout["product_id"]) | {p for ps in out["product_ids"] for p in ps}))
        }
        ranked = [[names[p] for p in ps] for ps in out["product_ids"]]
        rel = [[names[p] for p in relevant[c]] for c in requests["customer_id"]]
        return metric_value(gate.metric, ranked, rel)

    return score


def describe(result: TrainingResult) -> str:
    return json.dumps(result.to_dict(), indent=2, sort_keys=True, default=str)


def score_recommendation_day(day: dt.date, k: int = 10) -> Path | None:
    """Top-``k`` products of ``recommendation@champion`` for every registered customer with a session on ``day``.

    ``<lake>/scores/recommendation/dt=<day>/scores.parquet``: one row per (customer, rank) with the product, its
    score, the source (personal or popular) and the model version; ranked over the catalogue snapshot of ``day``
    and the customer's most used device that day (what tomorrow's e-mail would show). None without a champion.
    """
    from feature_repo.contract import lake
    from feature_repo.contract.schema import TABLES
    from training.shared.registry import champion, load_model, model_version_uri
    from training.shared.scoring import scores_path

    version = champion(MODEL_NAME)
    if version is None:
        logger.warning("scoring recommendation %s: skipped, no champion yet", day)
        return None
    settings = get_settings()
    sessions = (
        lake.read_table(settings.raw_root, TABLES["sessions"], [day]).select(["customer_id", "device"]).to_pandas()
    )
    sessions = sessions.dropna(subset=["customer_id"])
    requests = main_device(sessions)
    catalog = lake.read_table(settings.raw_root, TABLES["catalog"], [day]).column("product_id").to_pylist()
    model = load_model(model_version_uri(MODEL_NAME, version.version))
    out = model.predict(requests, params={"k": k, "catalog": catalog})
    rows = out.explode(["product_ids", "scores"]).dropna(subset=["product_ids"])
    rows = rows.rename(columns={"product_ids": "product_id", "scores": "score"})
    rows["rank"] = rows.groupby("customer_id").cumcount() + 1
    rows = rows.assign(model_name=MODEL_NAME, model_version=str(version.version))[
        ["customer_id", "rank", "product_id", "score", "source", "model_name", "model_version"]
    ].astype({"score": "float64", "rank": "int64"})
    path = scores_path(MODEL_NAME, day)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    rows.to_parquet(tmp, index=False)
    tmp.replace(path)
    logger.info(
        "recommended %d products to %d customers of %s with %s v%s -> %s",
        len(rows),
        len(requests),
        day,
        MODEL_NAME,
        version.version,
        path,
    )
    return path
