"""Ranking metrics per list, vectorised over padded lists: NDCG@k, NDCP@k, AvgPrice@k, and ECDF areas.

Lists are padded arrays ``(n_lists, max_len)`` with a boolean ``mask`` of real items; an ordering is given as
a sort key per item (higher = shown earlier). Conventions:

* NDCG@k: gain ``2^label - 1`` (graded labels 0..4), discount ``1 / log2(rank + 1)`` for 1-based ranks, divided
  by the DCG@k of the ideal order of the same list. A list whose labels are all 0 has no ideal DCG: its NDCG is
  **NaN** (undefined), never 1, and :func:`mean_defined` reports how many lists were left out.
* NDCP@k: the same with price as the gain of a purchased item (label 4) and 0 otherwise; lists without a
  purchase are NaN for the same reason.
* Counterfactual (inverse-propensity) gains: with ``weights = 1 / theta(logged position)`` each observed gain
  counts as much as it would have had every item been examined, so the logged order is no longer favoured
  for having put the clicked items where they got clicked (Joachims et al. 2017). The evaluation uses them.
* Lists are weighted by their ideal DCG when NDCG/NDCP are averaged or their ECDF drawn (see
  :func:`mean_defined`); AvgPrice lists weigh 1.
* AvgPrice@k: the mean price of the first ``min(k, list length)`` items; defined for every list.
* Area under the ECDF of a metric across lists, on a fixed range ``[lo, hi]``: ``hi - mean(clip(x, lo, hi))``
  (the integral of the step function). For metrics where higher is better a smaller area is better, so the
  change of area against the logged order is read as a reduction.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

PURCHASE_GRADE = 4


@dataclass(frozen=True)
class PaddedLists:
    """Items of many lists in a padded layout; ``rows[i, j]`` is the frame row of item j of list i (-1: padding)."""

    list_ids: np.ndarray  # (n_lists,)
    rows: np.ndarray  # (n_lists, max_len) int64
    mask: np.ndarray  # (n_lists, max_len) bool

    @property
    def shape(self) -> tuple[int, int]:
        return self.rows.shape  # type: ignore[return-value]

    def gather(self, values: np.ndarray, fill: float = 0.0) -> np.ndarray:
        """``values`` (one per frame row) in the padded layout; padding gets ``fill``."""
        out = np.full(self.rows.shape, fill, dtype=np.float64)
        out[self.mask] = np.asarray(values)[self.rows[self.mask]]
        return out


def pad_lists(list_ids: np.ndarray | pd.Series, order: np.ndarray | pd.Series | None = None) -> PaddedLists:
    """Group frame rows by list, keeping lists in first-seen order and items by ``order`` (e.g. position)."""
    codes, uniques = pd.factorize(pd.Series(np.asarray(list_ids)), sort=False)
    order_values = np.arange(len(codes)) if order is None else np.asarray(order)
    idx = np.lexsort((order_values, codes))
    sorted_codes = codes[idx]
    counts = np.bincount(codes, minlength=len(uniques))
    starts = np.r_[0, np.cumsum(counts)[:-1]]
    slot = np.arange(len(idx)) - starts[sorted_codes]
    rows = np.full((len(uniques), int(counts.max()) if len(counts) else 0), -1, dtype=np.int64)
    rows[sorted_codes, slot] = idx
    return PaddedLists(np.asarray(uniques), rows, rows >= 0)


def _ranked(gains: np.ndarray, keys: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Gains in the order of ``keys`` descending per list (padding last; ties keep the layout's order)."""
    k = np.where(mask, keys, -np.inf)
    order = np.argsort(-k, axis=1, kind="stable")
    return np.take_along_axis(np.where(mask, gains, 0.0), order, axis=1)


def _dcg(ranked_gains: np.ndarray, k: int) -> np.ndarray:
    top = ranked_gains[:, :k]
    discount = 1.0 / np.log2(np.arange(2, top.shape[1] + 2))
    return (top * discount).sum(axis=1)


def ideal_dcg(gains: np.ndarray, mask: np.ndarray, k: int) -> np.ndarray:
    """DCG@k of each list in its best order (gains descending): the NDCG denominator, and the list's weight."""
    return _dcg(-np.sort(-np.where(mask, gains, 0.0), axis=1), k)


def ndcg_with_gains(gains: np.ndarray, keys: np.ndarray, mask: np.ndarray, k: int) -> np.ndarray:
    """NDCG@k per list for arbitrary non-negative gains; NaN where the ideal DCG is 0 (no positive item)."""
    ideal = ideal_dcg(gains, mask, k)
    dcg = _dcg(_ranked(gains, keys, mask), k)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(ideal > 0, dcg / np.where(ideal > 0, ideal, 1.0), np.nan)


def ndcg_at_k(
    labels: np.ndarray, keys: np.ndarray, mask: np.ndarray, k: int, weights: np.ndarray | None = None
) -> np.ndarray:
    """NDCG@k per list with graded gains ``2^label - 1`` (times ``weights``); NaN for lists with no positive."""
    gains = np.power(2.0, labels) - 1.0
    return ndcg_with_gains(gains if weights is None else gains * weights, keys, mask, k)


def ndcp_at_k(
    labels: np.ndarray, price: np.ndarray, keys: np.ndarray, mask: np.ndarray, k: int,
    weights: np.ndarray | None = None,
) -> np.ndarray:
    """NDCP@k per list: price (times ``weights``) as the gain of purchased items; NaN for lists without one."""
    gains = np.where(labels >= PURCHASE_GRADE, price, 0.0)
    return ndcg_with_gains(gains if weights is None else gains * weights, keys, mask, k)


def avg_price_at_k(price: np.ndarray, keys: np.ndarray, mask: np.ndarray, k: int) -> np.ndarray:
    """Mean price of the first ``min(k, length)`` items per list, in the order of ``keys``."""
    top = _ranked(price, keys, mask)[:, :k]
    n = np.minimum(mask.sum(axis=1), k)
    return top.sum(axis=1) / np.maximum(n, 1)


def _defined(values: np.ndarray, weights: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    keep = ~np.isnan(values)
    w = np.ones(len(values)) if weights is None else np.asarray(weights, dtype=np.float64)
    return values[keep], w[keep]


def mean_defined(values: np.ndarray, weights: np.ndarray | None = None) -> tuple[float, int, int]:
    """(Weighted) mean over the defined (non-NaN) values, how many were defined, and how many were left out.

    With NDCG values and their lists' ideal DCGs as weights this is ``sum(DCG) / sum(ideal DCG)``, the
    self-normalised estimator that stays consistent under counterfactual gains (a plain mean of per-list ratios
    does not: in a list with one click the propensity cancels out of the ratio).
    """
    x, w = _defined(values, weights)
    n = len(x)
    mean = float(np.average(x, weights=w)) if n and w.sum() > 0 else float("nan")
    return mean, n, int(len(values) - n)


def ecdf(values: np.ndarray, weights: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The (weighted) ECDF of the defined values as step points ``(x sorted, F(x))``."""
    x, w = _defined(values, weights)
    order = np.argsort(x, kind="stable")
    cumulative = np.cumsum(w[order])
    return x[order], cumulative / max(float(cumulative[-1]) if len(cumulative) else 1.0, 1e-300)


def ecdf_area(values: np.ndarray, lo: float, hi: float, weights: np.ndarray | None = None) -> float:
    """Area under the (weighted) ECDF of the defined values on ``[lo, hi]``: ``hi - mean(clip(x, lo, hi))``."""
    x, w = _defined(values, weights)
    if len(x) == 0 or hi <= lo or w.sum() <= 0:
        return float("nan")
    return float(hi - np.average(np.clip(x, lo, hi), weights=w))


# --- the orderings a holdout is evaluated in, and the evaluation -----------------------------------------------------
LOGGED = "logged"  # the order the shop showed
RELEVANCE = "relevance"  # the bias-corrected model's relevance alone
UNCORRECTED = "relevance_uncorrected"  # the same network trained without inverse-propensity weights


def hybrid_name(alpha: float) -> str:
    return f"hybrid alpha={alpha:.1f}"


@dataclass
class Evaluation:
    """Metrics of every ordering on the holdout: means (``table``), per-list values at k=20, ECDF areas."""

    table: pd.DataFrame  # index: ordering; columns: ndcg@5 .. avg_price@20, plus lists counted per metric
    per_list: dict[str, dict[str, np.ndarray]]  # ordering -> metric@k -> value per list (NaN: undefined)
    weights: dict[str, np.ndarray]  # metric@k -> weight per list (its ideal DCG; 1 for AvgPrice), any ordering
    areas: pd.DataFrame  # ordering x metric@k: area under the ECDF and its change against the logged order
    lists: int
    lists_without_positive: int
    lists_without_purchase: int
