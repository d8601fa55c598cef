"""Recall@k / NDCG@k of the recommender and its exact top-k retrieval, checked against independent computations."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import ndcg_score

from training.recommendation.metrics import metric_value, per_user_metrics, ranking_metrics
from training.recommendation.pyfunc import top_k


def test_ndcg_matches_scikit_learn_on_random_rankings() -> None:
    rng = np.random.default_rng(3)
    n_users, n_items, k = 40, 50, 10
    scores = rng.normal(size=(n_users, n_items))
    relevance = (rng.random((n_users, n_items)) < 0.1).astype(float)
    relevance[relevance.sum(axis=1) == 0, 0] = 1.0  # sklearn scores users without relevant items as 0
    ranked = [list(np.argsort(-row, kind="stable")) for row in scores]
    relevant = [np.flatnonzero(r) for r in relevance]
    _, ndcg = per_user_metrics(ranked, relevant, k)
    expected = [ndcg_score(relevance[u : u + 1], scores[u : u + 1], k=k) for u in range(n_users)]
    np.testing.assert_allclose(ndcg, expected, rtol=1e-10)


def test_recall_and_ndcg_by_hand() -> None:
    # user 0: hits at ranks 1 and 3 of 2 relevant; user 1: no hit; user 2: no relevant item (not scored)
    metrics = ranking_metrics([[5, 1, 7], [2, 3, 4], [1, 2, 3]], [[5, 7], [9], []], ks=(3,))
    ideal = 1 + 1 / np.log2(3)
    assert metrics["recall@3"] == pytest.approx((1.0 + 0.0) / 2)
    assert metrics["ndcg@3"] == pytest.approx(((1 + 1 / np.log2(4)) / ideal + 0.0) / 2)
    assert metrics["users"] == 2
    assert metric_value("recall_at_3", [[5, 1, 7]], [[5, 7]]) == pytest.approx(1.0)
    assert metric_value("ndcg@1", [[1, 5]], [[5]]) == 0.0


def test_metrics_refuse_repeated_items_and_empty_relevance() -> None:
    with pytest.raises(ValueError, match="repeats"):
        ranking_metrics([[1, 1]], [[1]])
    with pytest.raises(ValueError, match="no user has a relevant item"):
        ranking_metrics([[1, 2]], [[]])
    with pytest.raises(KeyError):
        metric_value("map_at_10", [[1]], [[1]])


def test_top_k_is_exact_and_drops_nothing_it_should_keep() -> None:
    rng = np.random.default_rng(5)
    scores = rng.normal(size=(20, 1000)).astype(np.float32)
    scores[:, 7] = -np.inf  # excluded everywhere
    idx, val = top_k(scores, 10)
    expected = np.argsort(-scores, axis=1, kind="stable")[:, :10]
    np.testing.assert_array_equal(idx, expected)
    np.testing.assert_array_equal(val, np.take_along_axis(scores, expected, axis=1))
    assert not (idx == 7).any()


def test_top_k_breaks_ties_by_index_and_handles_short_rows() -> None:
    idx, val = top_k(np.array([[1.0, 3.0, 3.0, 0.0]]), 3)
    assert val.tolist() == [[3.0, 3.0, 1.0]]
    assert idx.tolist() == [[1, 2, 0]]
    idx, _ = top_k(np.array([[0.5, 0.2]]), 10)  # k larger than the catalogue
    assert idx.tolist() == [[0, 1]]
