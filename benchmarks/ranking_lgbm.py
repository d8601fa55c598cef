"""Our LambdaRank MLP against LightGBM ``lambdarank``, same features and split, trained in the same run.

Two datasets:

* **the simulated shop**: a ranking training set as the nightly stage builds it (Spark ``product_ranking``,
  Feast point-in-time join). ``--training-set PATH`` uses one that exists (e.g.
  ``var/lake/training_sets/ranking/dt=2026-04-30/training_set.parquet`` after ``make demo``); without it a demo
  shop is simulated into a temporary folder and the real stages build one for a 14-day window (a few minutes).
  Both models get the same transformed features (``RankingPreprocessor``) and the same train / validation /
  holdout days. Printed per model: NDCG@10 counterfactual (observed gains / propensity, self-normalised: what
  the gate uses), NDCG@10 on the raw logged labels (biased towards the logged order), NDCG@10 against the
  planted relevance (the simulator's truth), and training seconds. LightGBM gets no propensities (it has no
  pairwise inverse-propensity weighting); our model is shown with and without them.
* **the graded LTR sample** ``../shared/data/lightgbm_lambdarank_graded`` (LightGBM's own examples/lambdarank
  rank.train / rank.test, libsvm, labels 0..4, 300 features, no price so no NDCP): the last 20% of the training
  queries are the validation set both models stop on; NDCG@10 on rank.test, as the mean over queries with a
  positive label (ours) and the same for LightGBM's predictions.

    python benchmarks/ranking_lgbm.py [--training-set PATH] [--shared-data ../shared/data] [--seed 7]
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from training.ranking.metrics import mean_defined, ndcg_at_k, ndcg_with_gains, pad_lists  # noqa: E402

LTR_FOLDER = "lightgbm_lambdarank_graded"
SIM_START, SIM_END = dt.date(2026, 1, 1), dt.date(2026, 2, 14)
SIM_WINDOW, SIM_HOLDOUT = 14, 3


def plain_ndcg(labels: np.ndarray, scores: np.ndarray, groups: np.ndarray, k: int) -> float:
    """Mean NDCG@k over the groups with a positive label (all-zero groups are left out, never counted as 1)."""
    padded = pad_lists(groups)
    value, _, _ = mean_defined(ndcg_at_k(padded.gather(labels), padded.gather(scores), padded.mask, k))
    return value


# --- LightGBM -------------------------------------------------------------------------------------------------------
def _group_sizes(groups: np.ndarray) -> np.ndarray:
    """Consecutive group sizes (LightGBM wants each query's rows together, in order)."""
    change = np.r_[True, groups[1:] != groups[:-1]]
    return np.diff(np.r_[np.flatnonzero(change), len(groups)])


def fit_lightgbm(x: np.ndarray, y: np.ndarray, groups: np.ndarray, xv: np.ndarray, yv: np.ndarray,
                 gv: np.ndarray, seed: int):
    import lightgbm as lgb

    model = lgb.LGBMRanker(objective="lambdarank", n_estimators=500, learning_rate=0.05, num_leaves=31,
                           min_child_samples=20, random_state=seed, verbose=-1, n_jobs=1)
    model.fit(x, y, group=_group_sizes(groups), eval_X=(xv,), eval_y=(yv,), eval_group=[_group_sizes(gv)],
              eval_at=[10], callbacks=[lgb.early_stopping(30, verbose=False)])
    return model


# --- ours -----------------------------------------------------------------------------------------------------------
def fit_ours(x: np.ndarray, y: np.ndarray, groups: np.ndarray, xv: np.ndarray, yv: np.ndarray, gv: np.ndarray,
             hyperparameters: dict, weights: np.ndarray | None = None, weights_v: np.ndarray | None = None):
    from training.ranking.model import padded_list_tensors, train_relevance

    order, order_v = np.arange(len(y)), np.arange(len(yv))
    train = padded_list_tensors(x, y, groups, order, weights)
    validation = padded_list_tensors(xv, yv, gv, order_v, weights_v)
    _, result, _ = train_relevance([hyperparameters], train, validation, torch.device("cpu"), "benchmark")
    return result.model.eval()


def _scores(module: torch.nn.Module, x: np.ndarray) -> np.ndarray:
    from training.ranking.pyfunc import relevance_scores

    return relevance_scores(module, x)


# --- the simulated shop ---------------------------------------------------------------------------------------------
def simulated_training_set(folder: Path, seed: int) -> tuple[Path, dt.date, Path]:
    """Simulate the demo shop and build a ranking training set through the real stages; (path, run date, raw)."""
    import yaml

    from config.models import get_models_config
    from config.settings import get_settings
    from simulator.shop import simulate

    models = yaml.safe_load((REPO / "config" / "models.yaml").read_text())
    models["models"]["ranking"].update(training_window_days=SIM_WINDOW, holdout_days=SIM_HOLDOUT)
    (folder / "models.yaml").write_text(yaml.safe_dump(models))
    os.environ.update(STOREFRONT_VAR_ROOT=str(folder / "var"), STOREFRONT_MODELS_CONFIG=str(folder / "models.yaml"))
    get_settings.cache_clear()
    get_models_config.cache_clear()
    raw = get_settings().raw_root
    simulate(SIM_START, SIM_END, raw, seed=seed, scale="demo")
    from feature_repo import store
    from feature_repo.features.jobs import build_features_for_days
    from training.ranking.data import build_ranking_training_set

    first = SIM_END - dt.timedelta(days=SIM_WINDOW)
    build_features_for_days([first + dt.timedelta(days=i) for i in range(SIM_WINDOW)], ["product_ranking"])
    store.apply()
    return build_ranking_training_set(SIM_END), SIM_END, raw


def bench_shop(training_set: Path | None, seed: int) -> None:
    from config.models import get_models_config
    from config.settings import get_settings
    from simulator.ranking_truth import planted_relevance
    from training.ranking.model import GRADE, LIST_ID, PROPENSITY, HoldoutLists, read_training_set, split_by_date
    from training.ranking.pyfunc import RankingPreprocessor

    with tempfile.TemporaryDirectory(prefix="ranking-bench-") as tmp:
        if training_set is None:
            training_set, day, raw = simulated_training_set(Path(tmp), seed)
        else:
            day = dt.date.fromisoformat(training_set.parent.name.removeprefix("dt="))
            raw = get_settings().raw_root
        cfg = get_models_config().model("ranking")
        frame = read_training_set(training_set)
        split = split_by_date(frame, day, cfg.holdout_days, cfg.ranking.validation_days)
        pre = RankingPreprocessor.fit(split.train)
        parts = {}
        for name in ("train", "validation", "holdout"):
            rows = getattr(split, name).sort_values([LIST_ID, "position"], kind="stable").reset_index(drop=True)
            parts[name] = (rows, pre.transform(rows), rows[GRADE].to_numpy(np.float64), rows[LIST_ID].to_numpy())
        (_, x, y, g), (_, xv, yv, gv), (ho, xh, _, _) = parts["train"], parts["validation"], parts["holdout"]
        ipw = {n: 1.0 / np.clip(p[0][PROPENSITY].to_numpy(), cfg.ranking.propensity_clip, 1.0)
               for n, p in parts.items()}
        hp = {k: (v[0] if isinstance(v, list) and k != "hidden_sizes" else v) for k, v in cfg.hyperparameters.items()}

        results = {}
        began = time.perf_counter()
        lgbm = fit_lightgbm(x, y.astype(int), g, xv, yv.astype(int), gv, seed)
        results["LightGBM lambdarank"] = (lgbm.predict(xh), time.perf_counter() - began)
        began = time.perf_counter()
        ours = fit_ours(x, y, g, xv, yv, gv, hp, ipw["train"], ipw["validation"])
        results["ours (LambdaRank MLP, IPW)"] = (_scores(ours, xh), time.perf_counter() - began)
        began = time.perf_counter()
        plain = fit_ours(x, y, g, xv, yv, gv, hp)
        results["ours without IPW"] = (_scores(plain, xh), time.perf_counter() - began)
        results["logged order"] = (-ho["position"].to_numpy(np.float64), 0.0)

        lists = HoldoutLists.of(ho, cfg.ranking.propensity_clip)
        truth = planted_relevance(ho, raw)
        print(f"\nsimulated shop ({training_set}): train {g.size} rows / {len(set(g))} lists, "
              f"holdout {len(ho)} rows / {ho[LIST_ID].nunique()} lists, {x.shape[1]} features")
        print(f"{'model':32s} {'NDCG@10 cf':>11s} {'NDCG@10 raw':>12s} {'NDCG@10 truth':>14s} {'train s':>8s}")
        for name, (score, seconds) in results.items():
            cf = mean_defined(lists.metric("ndcg@10", score), lists.list_weights("ndcg@10"))[0]
            raw_ndcg = plain_ndcg(ho[GRADE].to_numpy(np.float64), score, ho[LIST_ID].to_numpy(), 10)
            padded = pad_lists(ho[LIST_ID])
            true = mean_defined(ndcg_with_gains(padded.gather(truth), padded.gather(score), padded.mask, 10))[0]
            print(f"{name:32s} {cf:11.4f} {raw_ndcg:12.4f} {true:14.4f} {seconds:8.1f}")


# --- the graded LTR sample ------------------------------------------------------------------------------------------
def _read_letor(folder: Path, name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    from sklearn.datasets import load_svmlight_file

    x, y = load_svmlight_file(str(folder / name), n_features=300)
    sizes = np.loadtxt(folder / f"{name}.query", dtype=np.int64)
    groups = np.repeat(np.arange(len(sizes)), sizes)
    return np.asarray(x.todense(), dtype=np.float32), y.astype(np.float64), groups


def bench_ltr(shared: Path, seed: int) -> None:
    folder = shared / LTR_FOLDER
    if not folder.is_dir():
        print(f"\ngraded LTR sample: skipped, {folder} not found")
        return
    x_all, y_all, g_all = _read_letor(folder, "rank.train")
    xt, yt, gt = _read_letor(folder, "rank.test")
    n_queries = g_all.max() + 1
    cut = int(n_queries * 0.8)  # the last 20% of the training queries: validation for early stopping
    tr, va = g_all < cut, g_all >= cut
    hp = {"hidden_sizes": [64, 32], "learning_rate": 0.001, "weight_decay": 0.0001, "dropout": 0.1,
          "batch_size": 16, "max_epochs": 100, "patience": 10, "sigma": 1.0, "seed": seed}
    began = time.perf_counter()
    lgbm = fit_lightgbm(x_all[tr], y_all[tr].astype(int), g_all[tr], x_all[va], y_all[va].astype(int), g_all[va], seed)
    t_lgbm = time.perf_counter() - began
    began = time.perf_counter()
    ours = fit_ours(x_all[tr], y_all[tr], g_all[tr], x_all[va], y_all[va], g_all[va], hp)
    t_ours = time.perf_counter() - began
    n_lgbm = plain_ndcg(yt, lgbm.predict(xt), gt, 10)
    n_ours = plain_ndcg(yt, _scores(ours, xt), gt, 10)
    print(f"\ngraded LTR sample ({folder}): train {tr.sum()} rows / {cut} queries, validation {va.sum()} rows, "
          f"test {len(yt)} rows / {gt.max() + 1} queries")
    print(f"{'model':32s} {'NDCG@10':>8s} {'train s':>8s}")
    print(f"{'LightGBM lambdarank':32s} {n_lgbm:8.4f} {t_lgbm:8.1f}")
    print(f"{'ours (LambdaRank MLP)':32s} {n_ours:8.4f} {t_ours:8.1f}")
    print(f"difference (ours - LightGBM): {n_ours - n_lgbm:+.4f} NDCG@10; time ratio {t_ours / max(t_lgbm, 1e-9):.1f}x")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--training-set", type=Path, help="an existing ranking training set (parquet)")
    parser.add_argument("--shared-data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--skip-shop", action="store_true", help="only the LTR sample")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    import lightgbm

    print(f"LightGBM {lightgbm.__version__}, torch {torch.__version__}, seed {args.seed}, one CPU thread each")
    bench_ltr(args.shared_data, args.seed)
    if not args.skip_shop:
        bench_shop(args.training_set, args.seed)


if __name__ == "__main__":
    main()
