"""The recommender on real data: MovieLens-100K and the UCI Online Retail sample, next to popularity, item-kNN
and the ``implicit`` library's ALS and BPR, trained in the same run on the same temporal split.

Protocol, per dataset (the one the nightly model follows, on real interactions):

* interactions: MovieLens, every rating (implicit feedback: the user watched and rated it); Online Retail, every
  purchase line of a known customer (cancellations, returns and guest lines dropped);
* split by time: the last 20% of the time range is the test period; of the rest, the last 10% picks each
  method's hyperparameters (validation NDCG@10) and the chosen configuration is refitted on all of it;
* ranking over the full catalogue (every item of the dataset, no sampled negatives) for the users with history
  and at least one test interaction; items the user already has are excluded, except repeat-purchase items
  (Online Retail: ``training.recommendation.model.repeat_purchase_items`` read from the training period; MovieLens has
  none) - the same filter for every method;
* Recall@k and NDCG@k (``training/recommendation/metrics.py``), k = 10, 20; fit time in seconds.

"ours" is the nightly model (``training.recommendation.model``: softmax matrix factorisation in the shared trainer).
Target (issue 6): ours >= the better of implicit ALS/BPR on NDCG@10.

    python benchmarks/recommendation_real.py [--data ../shared/data] [--datasets movielens retail] [--threads 1]
"""

from __future__ import annotations

import argparse
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch
from threadpoolctl import threadpool_limits

from training.recommendation import model as rec
from training.recommendation.metrics import ranking_metrics
from training.shared.trainer import expand_grid

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
TEST_SHARE, VALIDATION_SHARE = 0.2, 0.1
# The nightly model's architecture, loss and trainer; the grid is searched per dataset, as the libraries' are.
OURS_GRID = {
    "dim": 128,
    "learning_rate": 0.003,
    "weight_decay": [1.0, 3.0],
    "strength_power": 1.0,
    "batch_size": 1024,
    "max_epochs": 40,
    "patience": 3,
    "seed": 7,
}
ALS_GRID = {"factors": [64, 128], "regularization": [0.01, 0.1, 1.0], "alpha": [1.0, 10.0], "iterations": 15}
BPR_GRID = {"factors": [64, 128], "learning_rate": [0.01, 0.05], "regularization": [0.001, 0.01], "iterations": 100}
KS = (10, 20)


# --- data ----------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Dataset:
    """Interactions in the recommender's frame (customer_id, product_id, strength, purchases, date, ts) + items."""

    name: str
    frame: pd.DataFrame
    items: np.ndarray
    repeat_items: bool  # whether bought items may come back (retail) or never (films)
    per_user_split: bool  # see assign_parts


def load_movielens(folder: Path) -> Dataset:
    """``ml-100k.inter`` (RecBole atomic TSV): 100,000 ratings of 1,682 films by 943 users."""
    inter = pd.read_csv(folder / "ml-100k.inter", sep="\t")
    inter.columns = [c.split(":")[0] for c in inter.columns]
    items = pd.read_csv(folder / "ml-100k.item", sep="\t")
    frame = pd.DataFrame(
        {
            "customer_id": inter["user_id"].astype(str),
            "product_id": inter["item_id"].astype(str),
            "strength": 1.0,
            "purchases": 0,
            "ts": pd.to_datetime(inter["timestamp"], unit="s", utc=True),
        }
    )
    items = items.iloc[:, 0].astype(str).to_numpy(dtype=object)
    return Dataset("MovieLens-100K", _dated(frame), items, repeat_items=False, per_user_split=True)


def load_online_retail(folder: Path) -> Dataset:
    """``online_retail_sample40k.csv``: purchase lines of known customers (no cancellations or returns)."""
    raw = pd.read_csv(folder / "online_retail_sample40k.csv", dtype={"InvoiceNo": str, "StockCode": str})
    kept = raw[raw["CustomerID"].notna() & (raw["Quantity"] > 0) & ~raw["InvoiceNo"].str.startswith("C")]
    frame = pd.DataFrame(
        {
            "customer_id": kept["CustomerID"].astype("int64").astype(str).to_numpy(),
            "product_id": kept["StockCode"].str.strip().str.upper().to_numpy(),
            "strength": 1.0,
            "purchases": 1,
            "ts": pd.to_datetime(kept["InvoiceDate"]).dt.tz_localize("UTC").to_numpy(),
        }
    )
    items = np.array(sorted(frame["product_id"].unique()), dtype=object)
    return Dataset("UCI Online Retail (40k sample)", _dated(frame), items, repeat_items=True, per_user_split=False)


def _dated(frame: pd.DataFrame) -> pd.DataFrame:
    frame[rec.DATE] = frame["ts"].dt.date
    return frame.sort_values(["ts", "customer_id", "product_id"], kind="stable").reset_index(drop=True)


def time_cut(frame: pd.DataFrame, share: float) -> pd.Timestamp:
    """The instant after which the last ``share`` of the time range lies."""
    first, last = frame["ts"].min(), frame["ts"].max()
    return first + (last - first) * (1.0 - share)


SELECTION, VALIDATION, TEST = 0, 1, 2


def assign_parts(frame: pd.DataFrame, per_user: bool) -> tuple[np.ndarray, str]:
    """The part of each interaction (selection train, validation, test) and a line that says how it was cut.

    Global: the last ``TEST_SHARE`` of the time range is the test period, the last ``VALIDATION_SHARE`` of what
    is left the validation period. Per user: each user's own last 20% of interactions (by time) are the test, the
    10% before them the validation (for data whose users arrive in cohorts, where a global cut leaves almost no
    test user with a history).
    """
    part = np.full(len(frame), SELECTION)
    if not per_user:
        test_cut = time_cut(frame, TEST_SHARE)
        validation_cut = time_cut(frame[frame["ts"] < test_cut], VALIDATION_SHARE)
        part[(frame["ts"] >= validation_cut).to_numpy()] = VALIDATION
        part[(frame["ts"] >= test_cut).to_numpy()] = TEST
        return (
            part,
            f"global time split: validation from {validation_cut:%Y-%m-%d %H:%M}, test from {test_cut:%Y-%m-%d %H:%M}",
        )
    rank = frame.groupby("customer_id").cumcount().to_numpy()  # frame is sorted by time
    n = frame.groupby("customer_id")["ts"].transform("size").to_numpy()
    n_test = np.ceil(TEST_SHARE * n).astype(int)
    n_validation = np.ceil(VALIDATION_SHARE * n).astype(int)
    part[rank >= n - n_test - n_validation] = VALIDATION
    part[rank >= n - n_test] = TEST
    return part, "per-user time split: each user's last 20% of interactions are the test, the 10% before validation"


@dataclass
class Split:
    """Matrices of one dataset's temporal split (users of ``history`` are the evaluated users' axis)."""

    selection_train: rec.Interactions
    selection_validation: sp.csr_matrix
    history: rec.Interactions
    test: sp.csr_matrix
    excluded_selection: sp.csr_matrix
    excluded: sp.csr_matrix
    description: str


def split(data: Dataset) -> Split:
    part, description = assign_parts(data.frame, data.per_user_split)
    history_rows = data.frame[part < TEST]
    selection_rows = data.frame[part == SELECTION]
    selection = rec.interaction_matrix(selection_rows, data.items)
    history = rec.interaction_matrix(history_rows, data.items)
    if data.repeat_items:
        repeat = np.isin(data.items, list(rec.repeat_purchase_items(history_rows)))
    else:
        repeat = np.zeros(len(data.items), bool)

    def seen(m: rec.Interactions) -> sp.csr_matrix:
        # what a user already has: bought (retail, repeat items exempt) or rated (films)
        had = m.purchased if data.repeat_items else (m.matrix > 0).astype(np.float64).tocsr()
        return rec.exclusion_mask(had, repeat)

    return Split(
        selection_train=selection,
        selection_validation=rec.interaction_matrix(
            data.frame[part == VALIDATION], data.items, users=selection.users
        ).matrix,
        history=history,
        test=rec.interaction_matrix(data.frame[part == TEST], data.items, users=history.users).matrix,
        excluded_selection=seen(selection),
        excluded=seen(history),
        description=description,
    )


# --- methods -------------------------------------------------------------------------------------------------------
def _relevant(matrix: sp.csr_matrix, rows: np.ndarray) -> list[np.ndarray]:
    return [matrix.indices[matrix.indptr[r] : matrix.indptr[r + 1]] for r in rows]


def evaluate(scores: np.ndarray, s: Split, rows: np.ndarray) -> dict[str, float]:
    ranked = rec.rank_scores(scores, s.excluded[rows], max(KS))
    return ranking_metrics(ranked, _relevant(s.test, rows), KS)


def fit_ours(s: Split, threads: int) -> tuple[Callable[[np.ndarray], np.ndarray], dict[str, Any]]:
    fitted = rec.fit_recommender(
        s.selection_train,
        s.selection_validation,
        expand_grid(OURS_GRID),
        torch.device("cpu"),
        excluded=s.excluded_selection,
        refit_on=s.history,
        label="ours",
    )
    return rec.scorer(fitted.module), {**fitted.hyperparameters, "epochs": fitted.best_epoch}


def _implicit_scores(model: Any) -> Callable[[np.ndarray], np.ndarray]:
    u, v = np.asarray(model.user_factors), np.asarray(model.item_factors)
    return lambda rows: u[rows] @ v.T


def fit_implicit(kind: str, s: Split, threads: int) -> tuple[Callable[[np.ndarray], np.ndarray], dict[str, Any]]:
    """implicit's ALS or BPR: the grid point with the best validation NDCG@10, refitted on the whole history."""
    from implicit.cpu.als import AlternatingLeastSquares
    from implicit.cpu.bpr import BayesianPersonalizedRanking

    def build(hp: dict[str, Any]) -> Any:
        if kind == "als":
            return AlternatingLeastSquares(**hp, num_threads=threads, random_state=7)
        return BayesianPersonalizedRanking(**hp, num_threads=threads, random_state=7)

    val = s.selection_validation
    rows = np.flatnonzero(np.diff(val.indptr) > 0)
    best: tuple[float, dict[str, Any]] | None = None
    for hp in expand_grid(ALS_GRID if kind == "als" else BPR_GRID):
        model = build(hp)
        model.fit(s.selection_train.matrix.astype(np.float32), show_progress=False)
        ranked = rec.rank_scores(_implicit_scores(model)(rows), s.excluded_selection[rows], 10)
        ndcg = ranking_metrics(ranked, _relevant(val, rows), (10,))["ndcg@10"]
        if best is None or ndcg > best[0]:
            best = (ndcg, hp)
    assert best is not None
    model = build(best[1])
    model.fit(s.history.matrix.astype(np.float32), show_progress=False)
    return _implicit_scores(model), best[1]


def fit_item_knn(s: Split, neighbors: int = 100) -> tuple[Callable[[np.ndarray], np.ndarray], dict[str, Any]]:
    similarity = rec.item_knn_similarity(s.history.matrix, neighbors)
    return (lambda rows: rec.item_knn_scores(s.history.matrix, similarity, rows)), {"neighbors": neighbors}


def run(data: Dataset, threads: int) -> dict[str, dict[str, float]]:
    s = split(data)
    rows = np.flatnonzero(np.diff(s.test.indptr) > 0)
    print(
        f"\n== {data.name}: {len(data.frame):,} interactions, {data.frame['customer_id'].nunique():,} users, "
        f"{len(data.items):,} items (the full catalogue ranked)"
    )
    print(f"   {s.description}")
    print(
        f"   {s.history.matrix.nnz:,} training pairs, {len(rows):,} test users with history, "
        f"{int(s.excluded.sum()):,} excluded (user, item) pairs"
    )
    methods: dict[str, Callable[[], tuple[Callable[[np.ndarray], np.ndarray], dict[str, Any]]]] = {
        "ours (softmax MF)": lambda: fit_ours(s, threads),
        "implicit ALS": lambda: fit_implicit("als", s, threads),
        "implicit BPR": lambda: fit_implicit("bpr", s, threads),
        "item-kNN": lambda: fit_item_knn(s),
        "popularity": lambda: (lambda r: rec.popularity_scores(s.history.matrix, len(r)), {}),
    }
    results: dict[str, dict[str, float]] = {}
    header = f"   {'method':<20}" + "".join(f"{m:>11}" for m in ("recall@10", "ndcg@10", "recall@20", "ndcg@20"))
    print(header + f"{'fit s':>8}  chosen")
    for name, method in methods.items():
        began = time.perf_counter()
        score, chosen = method()
        seconds = time.perf_counter() - began
        metrics = evaluate(score(rows), s, rows)
        results[name] = {**metrics, "seconds": seconds}
        print(
            f"   {name:<20}"
            + "".join(f"{metrics[m]:>11.4f}" for m in ("recall@10", "ndcg@10", "recall@20", "ndcg@20"))
            + f"{seconds:>8.1f}  {chosen}"
        )
    library = max(("implicit ALS", "implicit BPR"), key=lambda m: results[m]["ndcg@10"])
    ours = results["ours (softmax MF)"]["ndcg@10"]
    ratio = ours / results[library]["ndcg@10"]
    print(
        f"   ours / best library ({library}) NDCG@10: {ratio:.3f} "
        f"({'meets' if ratio >= 1.0 else 'MISSES'} the target ours >= library)"
    )
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--datasets", nargs="+", choices=["movielens", "retail"], default=["movielens", "retail"])
    parser.add_argument("--threads", type=int, default=1, help="BLAS, torch and implicit threads")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(args.threads)
    loaders = {
        "movielens": lambda: load_movielens(args.data / "movielens_100k_recbole"),
        "retail": lambda: load_online_retail(args.data / "uci_online_retail_sample40k"),
    }
    started = time.perf_counter()
    with threadpool_limits(limits=args.threads):
        for name in args.datasets:
            run(loaders[name](), args.threads)
    print(f"\nran in {time.perf_counter() - started:.0f} s with {args.threads} thread(s)")


if __name__ == "__main__":
    main()
