"""The recommender's large-catalogue path: the sampled softmax, the item-kNN baseline and ranking in chunks.

A catalogue of 20k products (the ``large`` shop) cannot afford the exact softmax per pair, the dense item-item
matrix or the dense (customers x catalogue) scores; these tests hold the cheaper forms to what they replace.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch
from sklearn.preprocessing import normalize

from training.recommendation import model as rec
from training.shared.trainer import expand_grid

N_ITEMS = 600
TASTE = 0.7  # taste and popularity both matter: a sampled softmax without its logQ correction ranks worse


def _module(negatives: int, exact_up_to: int = 0) -> rec.SoftmaxMF:
    return rec.SoftmaxMF(50, N_ITEMS, 8, negatives=negatives, exact_up_to=exact_up_to, proposal=np.arange(N_ITEMS))


def test_training_scores_the_positive_against_sampled_products_and_evaluation_the_whole_catalogue() -> None:
    module = _module(negatives=64)
    users, items = torch.arange(10), torch.arange(10)
    module.train()
    assert module(users, items).shape == (10, 65)  # the positive in column 0, the samples after it
    module.eval()
    assert module(users, items).shape == (10, N_ITEMS)  # validation loss and scores: the exact softmax


def test_a_sampled_product_that_is_the_rows_own_positive_does_not_count_against_it() -> None:
    module = _module(negatives=400)  # 400 draws from 600 products: the positives are drawn too
    module.train()
    items = torch.arange(0, 500, 10)
    logits = module(torch.arange(50), items)
    drawn = torch.multinomial(module.proposal, 400, replacement=True, generator=torch.Generator().manual_seed(0))
    hits = drawn.unsqueeze(0) == items.unsqueeze(1)  # the same draws: the module's sampler is seeded with 0
    assert hits.any(dim=1).sum() > 10
    assert torch.equal(torch.isinf(logits[:, 1:]), hits)
    assert torch.isfinite(logits[:, 0]).all()
    loss = rec.weighted_softmax_loss(N_ITEMS)(logits, torch.stack([items.float(), torch.ones(50)], dim=1))
    assert torch.isfinite(loss)


@pytest.mark.parametrize(("negatives", "exact_up_to"), [(0, 0), (64, 1000), (N_ITEMS - 1, 0)])
def test_the_exact_softmax_where_sampling_is_off_the_catalogue_is_small_or_the_samples_would_cover_it(
    negatives: int, exact_up_to: int
) -> None:
    module = _module(negatives, exact_up_to)
    module.train()
    assert module(torch.arange(5), torch.arange(5)).shape == (5, N_ITEMS)


def _planted(seed: int = 0) -> tuple[rec.Interactions, sp.csr_matrix]:
    """2,000 customers, 600 products, taste of rank 4 and a Zipf popularity; 12 training and 3 held-out picks each
    drawn from the customer's planted softmax."""
    rng = np.random.default_rng(seed)
    users, dim = 2000, 4
    u, v = rng.normal(size=(users, dim)), rng.normal(size=(N_ITEMS, dim))
    logits = TASTE * u @ v.T + np.log(rng.zipf(1.6, N_ITEMS).clip(max=50))
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    picks = np.stack([rng.choice(N_ITEMS, size=15, p=row) for row in p])

    def matrix(cols: np.ndarray) -> sp.csr_matrix:
        rows = np.repeat(np.arange(users), cols.shape[1])
        m = sp.csr_matrix((np.ones(rows.size), (rows, cols.ravel())), shape=(users, N_ITEMS))
        m.data[:] = 1.0  # a repeated pick is one pair
        return m

    train = matrix(picks[:, :12])
    ids = np.array([f"C{i}" for i in range(users)], dtype=object)
    items = np.array([f"P{i}" for i in range(N_ITEMS)], dtype=object)
    return rec.Interactions(ids, items, train, sp.csr_matrix(train.shape)), matrix(picks[:, 12:])


def test_the_sampled_softmax_learns_the_planted_taste_nearly_as_well_as_the_exact_one() -> None:
    train, validation = _planted()
    hp = {"dim": 16, "learning_rate": 0.01, "weight_decay": 1.0, "strength_power": 1.0, "batch_size": 512,
          "max_epochs": 20, "patience": 2, "seed": 7}
    exact = rec.fit_recommender(train, validation, expand_grid(hp), torch.device("cpu"))
    sampled = rec.fit_recommender(
        train, validation, expand_grid({**hp, "negatives": 60, "exact_softmax_up_to": 0}), torch.device("cpu")
    )
    popularity = np.asarray(train.matrix.sum(axis=0)).ravel()
    rows = np.arange(len(train.users))
    relevant = [validation.indices[validation.indptr[r] : validation.indptr[r + 1]] for r in rows]
    from training.recommendation.metrics import ranking_metrics

    pop = ranking_metrics(rec.rank_scores(np.tile(popularity, (len(rows), 1)), train.matrix, 10), relevant)
    exact_ndcg = exact.candidates[0].val_metrics["ndcg@10"]
    sampled_ndcg = sampled.candidates[0].val_metrics["ndcg@10"]
    # 60 of 600 products per minibatch, the ratio 2,048 of 19k has at the large shop
    assert sampled_ndcg > 1.5 * pop["ndcg@10"], (sampled_ndcg, pop)
    # measured: 0.2998 against 0.3049 exact (98%); without the logQ correction 0.2883 (95%)
    assert sampled_ndcg > 0.97 * exact_ndcg, (sampled_ndcg, exact_ndcg)


def test_item_knn_built_in_chunks_is_the_dense_top_k_similarity() -> None:
    rng = np.random.default_rng(1)
    train = sp.random(300, 90, density=0.05, random_state=rng, format="csr") * 4
    columns = normalize(train.T.tocsr().astype(np.float32), norm="l2", axis=1)
    dense = (columns @ columns.T).toarray()
    np.fill_diagonal(dense, 0.0)
    cut = np.argpartition(-dense, 9, axis=1)[:, 10:]
    np.put_along_axis(dense, cut, 0.0, axis=1)
    chunked = rec.item_knn_similarity(train, neighbors=10, chunk=7)
    np.testing.assert_allclose(chunked.toarray(), dense, rtol=1e-6, atol=1e-7)
    rows = np.array([3, 0, 299])
    np.testing.assert_allclose(
        rec.item_knn_scores(train, chunked, rows), np.asarray(train[rows].astype(np.float32) @ dense), rtol=1e-5
    )


def test_ranking_in_chunks_is_ranking_at_once() -> None:
    rng = np.random.default_rng(2)
    scores = rng.normal(size=(50, 40)).astype(np.float32)
    excluded = sp.random(50, 40, density=0.2, random_state=rng, format="csr")
    rows = np.array([49, 3, 3, 17, 0, 8, 22])
    at_once = rec.rank_scores(scores[rows], excluded[rows], 5)
    chunked = rec.rank_rows(lambda r: scores[r], rows, excluded, 5, chunk=3)
    assert [a.tolist() for a in chunked] == [a.tolist() for a in at_once]
    assert pd.Series([len(a) for a in chunked]).eq(5).all()
