"""Top-k recommendation metrics over the full catalogue: Recall@k and NDCG@k with binary relevance.

Each user has a ranked list of recommended item indices (best first, already filtered: nothing excluded and
nothing outside the catalogue) and a set of relevant items (what the user interacted with in the test period).
Users without relevant items are not scored; a user whose list is shorter than k simply has fewer chances.

* ``recall@k = |top k ∩ relevant| / |relevant|`` (RecBole's and implicit's definition; it cannot reach 1 when a
  user has more than k relevant items, the same for every model compared);
* ``ndcg@k = DCG@k / IDCG@k`` with ``DCG@k = sum_{r <= k, item_r relevant} 1 / log2(r + 1)`` and IDCG@k the DCG
  of ``min(k, |relevant|)`` hits at the top.

Metrics are means over the scored users. ``tests/unit/test_recommendation_metrics.py`` checks NDCG against
scikit-learn's ``ndcg_score``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np

DEFAULT_KS = (10, 20)


def _as_sets(relevant: Iterable[Iterable[int]]) -> list[set[int]]:
    return [set(int(i) for i in items) for items in relevant]


def per_user_metrics(
    recommended: Sequence[Sequence[int]], relevant: Sequence[Iterable[int]], k: int
) -> tuple[np.ndarray, np.ndarray]:
    """Recall@k and NDCG@k of each user (arrays in the users' order); users without relevant items get NaN."""
    if len(recommended) != len(relevant):
        raise ValueError(f"{len(recommended)} recommendation lists for {len(relevant)} users")
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    ideal = np.cumsum(discounts)
    recall = np.full(len(relevant), np.nan)
    ndcg = np.full(len(relevant), np.nan)
    for u, (ranked, rel) in enumerate(zip(recommended, _as_sets(relevant), strict=True)):
        if not rel:
            continue
        top = list(ranked)[:k]
        if len(set(top)) != len(top):
            raise ValueError(f"user {u}: the recommendation list repeats an item")
        hits = np.fromiter((int(i) in rel for i in top), dtype=bool, count=len(top))
        recall[u] = hits.sum() / len(rel)
        ndcg[u] = float(discounts[: len(top)][hits].sum() / ideal[min(k, len(rel)) - 1])
    return recall, ndcg


def ranking_metrics(
    recommended: Sequence[Sequence[int]], relevant: Sequence[Iterable[int]], ks: Sequence[int] = DEFAULT_KS
) -> dict[str, float]:
    """``recall@k`` and ``ndcg@k`` for each k, means over users with at least one relevant item, plus ``users``."""
    out: dict[str, float] = {}
    scored = 0
    for k in ks:
        recall, ndcg = per_user_metrics(recommended, relevant, k)
        scored = int(np.isfinite(recall).sum())
        if scored == 0:
            raise ValueError("no user has a relevant item: the metrics are undefined")
        out[f"recall@{k}"] = float(np.nanmean(recall))
        out[f"ndcg@{k}"] = float(np.nanmean(ndcg))
    out["users"] = float(scored)
    return out


def metric_value(name: str, recommended: Sequence[Sequence[int]], relevant: Sequence[Iterable[int]]) -> float:
    """One metric by name, ``ndcg_at_10`` / ``recall_at_20`` (config spelling) or ``ndcg@10``."""
    family, _, k = name.replace("_at_", "@").partition("@")
    if family not in ("ndcg", "recall") or not k.isdigit():
        raise KeyError(f"no ranking metric {name!r}; use ndcg_at_K or recall_at_K")
    return ranking_metrics(recommended, relevant, (int(k),))[f"{family}@{k}"]


def format_metrics(metrics: Mapping[str, float]) -> str:
    return ", ".join(f"{k} {v:.4f}" for k, v in metrics.items() if k != "users")
