"""Ranking metrics, the LambdaRank loss, the re-rankers and the propensity estimator, on small hand-made lists."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from feature_repo.features.position_bias import estimate_propensities
from training.ranking.metrics import (
    avg_price_at_k,
    ecdf,
    ecdf_area,
    mean_defined,
    ndcg_at_k,
    ndcp_at_k,
    pad_lists,
)
from training.ranking.model import lambdarank_loss
from training.ranking.pyfunc import hybrid_sort_key, price_relative_to_list, rank_within_lists


def test_ndcg_matches_a_hand_computation_and_an_all_zero_list_is_undefined() -> None:
    labels = np.array([[0, 2, 1], [0, 0, 0]], dtype=float)
    mask = np.ones_like(labels, dtype=bool)
    keys = np.array([[3.0, 2.0, 1.0], [3.0, 2.0, 1.0]])  # shows items in the layout order
    ndcg = ndcg_at_k(labels, keys, mask, k=3)
    dcg = 0 / np.log2(2) + 3 / np.log2(3) + 1 / np.log2(4)
    ideal = 3 / np.log2(2) + 1 / np.log2(3)
    assert ndcg[0] == pytest.approx(dcg / ideal)
    assert np.isnan(ndcg[1]), "an all-zero list has no ideal DCG: undefined, never 1"
    mean, counted, left_out = mean_defined(ndcg)
    assert (counted, left_out) == (1, 1) and mean == pytest.approx(dcg / ideal)
    assert ndcg_at_k(labels[:1], np.array([[1.0, 3.0, 2.0]]), mask[:1], k=3)[0] == pytest.approx(1.0)


def test_ndcp_uses_price_of_purchases_and_avg_price_the_top_k() -> None:
    labels = np.array([[4, 1, 4, 0]], dtype=float)
    price = np.array([[10.0, 99.0, 30.0, 5.0]])
    mask = np.array([[True, True, True, False]])  # the 4th slot is padding
    keys = np.array([[3.0, 2.0, 1.0, 9.0]])
    ndcp = ndcp_at_k(labels, price, keys, mask, k=2)[0]
    assert ndcp == pytest.approx((10.0 + 0.0) / (30.0 + 10.0 / np.log2(3)))
    assert avg_price_at_k(price, keys, mask, k=2)[0] == pytest.approx((10.0 + 99.0) / 2)
    assert avg_price_at_k(price, keys, mask, k=20)[0] == pytest.approx((10.0 + 99.0 + 30.0) / 3)
    assert np.isnan(ndcp_at_k(np.array([[1.0, 2.0]]), price[:, :2], keys[:, :2], mask[:, :2], k=2)[0])


def test_ecdf_area_is_range_minus_mean_and_weights_self_normalise() -> None:
    values = np.array([0.2, 0.4, np.nan, 1.0])
    assert ecdf_area(values, 0.0, 1.0) == pytest.approx(1.0 - np.mean([0.2, 0.4, 1.0]))
    assert np.isnan(ecdf_area(np.array([np.nan]), 0.0, 1.0))
    weights = np.array([1.0, 3.0, 5.0, 0.0])
    assert ecdf_area(values, 0.0, 1.0, weights) == pytest.approx(1.0 - (0.2 + 1.2) / 4)
    x, f = ecdf(values, weights)
    assert x.tolist() == [0.2, 0.4, 1.0] and f.tolist() == [0.25, 1.0, 1.0]
    # NDCG values weighted by their ideal DCGs average to sum(DCG) / sum(ideal DCG)
    dcg, ideal = np.array([1.0, 0.5, 2.0]), np.array([2.0, 1.0, 2.0])
    assert mean_defined(dcg / ideal, ideal)[0] == pytest.approx(dcg.sum() / ideal.sum())


def test_pad_lists_keeps_first_seen_list_order_and_sorts_items() -> None:
    padded = pad_lists(np.array(["b", "a", "b", "a", "b"]), np.array([3, 2, 1, 1, 2]))
    assert list(padded.list_ids) == ["b", "a"]
    assert padded.rows.tolist() == [[2, 4, 0], [3, 1, -1]]
    assert padded.mask.tolist() == [[True, True, True], [True, True, False]]


def _loop_lambdarank(scores: np.ndarray, labels: np.ndarray, weights: np.ndarray, mask: np.ndarray, sigma: float):
    """The LambdaRank loss written pair by pair, the reference the vectorised version must equal."""
    total, counted = 0.0, 0
    for s, y, w, m in zip(scores, labels, weights, mask, strict=True):
        n = int(m.sum())
        s, y, w = s[:n], y[:n], w[:n]
        gains = 2.0**y - 1
        ranks = np.empty(n, int)
        ranks[np.argsort(-s, kind="stable")] = np.arange(n)
        disc = 1 / np.log2(ranks + 2)
        ideal = (np.sort(gains)[::-1] / np.log2(np.arange(n) + 2)).sum()
        if ideal == 0:
            continue
        counted += 1
        for i in range(n):
            for j in range(n):
                if y[i] > y[j]:
                    delta = abs(gains[i] - gains[j]) * abs(disc[i] - disc[j]) / ideal
                    total += w[i] * delta * np.log1p(np.exp(-sigma * (s[i] - s[j])))
    return total / max(counted, 1)


def test_lambdarank_loss_equals_the_pairwise_definition_and_skips_lists_without_positives() -> None:
    rng = np.random.default_rng(3)
    n_lists, length = 6, 7
    scores = rng.normal(size=(n_lists, length))
    labels = rng.integers(0, 5, size=(n_lists, length)).astype(float)
    labels[2] = 0  # no positive item
    weights = rng.uniform(1, 5, size=(n_lists, length))
    mask = np.ones((n_lists, length), bool)
    mask[1, 4:] = False
    mask[4, 2:] = False
    labels[~mask] = 3  # padding labels must not matter
    target = torch.tensor(np.stack([labels, weights, mask.astype(float)], -1), dtype=torch.float64)
    loss = lambdarank_loss(torch.tensor(scores), target, sigma=1.5)
    assert float(loss) == pytest.approx(_loop_lambdarank(scores, labels, weights, mask, 1.5), rel=1e-9)


def test_a_gradient_step_on_the_lambdarank_loss_raises_ndcg() -> None:
    labels = np.array([[0.0, 1.0, 4.0, 0.0, 2.0]])
    scores = torch.tensor([[2.0, 1.5, -1.0, 0.5, 0.0]], requires_grad=True)
    target = torch.tensor(np.stack([labels, np.ones_like(labels), np.ones_like(labels)], -1), dtype=torch.float32)
    mask = np.ones_like(labels, bool)
    before = ndcg_at_k(labels, scores.detach().numpy(), mask, 5)[0]
    lambdarank_loss(scores, target).backward()
    after = ndcg_at_k(labels, (scores - 2.0 * scores.grad).detach().numpy(), mask, 5)[0]
    assert scores.grad[0, 2] < 0, "the purchased item must be pushed up"
    assert after > before


def test_hybrid_is_relevance_at_alpha_1_and_price_at_alpha_0() -> None:
    codes = np.array([0, 0, 0, 0, 1, 1])
    relevance = np.array([0.9, 0.1, 0.5, 0.3, 0.2, 0.8])
    price = np.array([5.0, 50.0, 20.0, 10.0, 7.0, 3.0])
    assert rank_within_lists(codes, relevance).tolist() == [1, 4, 2, 3, 2, 1]
    by_relevance = rank_within_lists(codes, hybrid_sort_key(codes, relevance, price, 1.0))
    by_price = rank_within_lists(codes, hybrid_sort_key(codes, relevance, price, 0.0))
    assert by_relevance.tolist() == rank_within_lists(codes, relevance).tolist()
    assert by_price.tolist() == rank_within_lists(codes, price).tolist()
    half = rank_within_lists(codes, hybrid_sort_key(codes, relevance, price, 0.5))
    # products of ranks: 1*4=4, 4*1=4, 2*2=4, 3*3=9 -> ties broken by relevance: 0.9, 0.5, 0.1, then 0.3
    assert half[:4].tolist() == [1, 3, 2, 4]
    with pytest.raises(ValueError):
        hybrid_sort_key(codes, relevance, price, 1.5)


def test_price_relative_to_list_centres_log_price_per_list() -> None:
    rel = price_relative_to_list(np.array(["a", "a", "b"]), np.array([10.0, 40.0, 3.0]))
    assert rel == pytest.approx([np.log(10 / 20), np.log(40 / 20), 0.0])


def test_propensities_recover_a_planted_curve_from_randomized_counts() -> None:
    rng = np.random.default_rng(5)
    positions = np.arange(1, 17)
    planted = positions ** -0.8
    impressions = np.where(positions <= 8, 20_000, 8_000)
    clicks = rng.binomial(impressions, 0.25 * planted)
    estimate = estimate_propensities(positions, impressions, clicks)
    assert estimate.theta[0] == 1.0
    assert np.all(np.diff(estimate.theta) <= 0), "isotonic: never increasing with the position"
    assert np.max(np.abs(estimate.theta / planted - 1)) < 0.1
    assert estimate.at(np.array([1, 16, 40])).tolist() == [1.0, estimate.theta[15], estimate.theta[15]]
    with pytest.raises(ValueError):
        estimate_propensities(np.array([1, 2]), np.array([10, 10]), np.array([0, 3]))


def test_graded_label_is_the_furthest_step() -> None:
    from training.ranking.data import graded_label

    frame = pd.DataFrame({
        "clicked": [False, True, True, True, True],
        "added_to_cart": [False, False, True, True, True],
        "checked_out": [False, False, False, True, True],
        "purchased": [False, False, False, False, True],
    })
    assert graded_label(frame).tolist() == [0, 1, 2, 3, 4]
