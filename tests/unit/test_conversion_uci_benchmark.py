"""The UCI conversion benchmark's core on a small stratified sample of the real file: structure and a sane AUC.

Four epochs and one grid point per model, so it runs in seconds; the full benchmark is
``benchmarks/conversion_uci.py``. Skips where ``../shared/data`` (or the UCI file in it) is absent.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pandas as pd
import pytest
import torch

from training.shared.metrics import BINARY_METRICS

BENCHMARK = Path(__file__).resolve().parents[2] / "benchmarks" / "conversion_uci.py"
UCI_FILE = Path("uci_online_shoppers_intention") / "online_shoppers_intention.csv"


def _load_benchmark() -> ModuleType:
    """``benchmarks/`` is a folder of scripts, not a package: load the module from its file."""
    spec = importlib.util.spec_from_file_location("conversion_uci_benchmark", BENCHMARK)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the file executes
    spec.loader.exec_module(module)
    return module


bench = _load_benchmark()


@pytest.fixture(scope="module")
def sessions(shared_data: Path) -> pd.DataFrame:
    """3,000 sessions sampled within each Revenue class (seed 7), original row order."""
    path = shared_data / UCI_FILE
    if not path.is_file():
        pytest.skip(f"the UCI Online Shoppers file is not at {path}")
    frame = bench.load_sessions(path)
    sample = frame.groupby(bench.LABEL, group_keys=False).sample(frac=3000 / len(frame), random_state=7)
    return sample.sort_index()


MLP_GRID = {
    **bench.MLP_GRID,
    "hidden_sizes": [[32, 16]],
    "learning_rate": 1e-2,
    "batch_size": 64,
    "max_epochs": 4,
    "patience": 2,
}
LIGHTGBM_GRID = {
    **bench.LIGHTGBM_GRID,
    "feature_set": "all",
    "engineered": True,
    "num_leaves": 7,
    "min_child_samples": 20,
    "num_boost_round": 60,
    "early_stopping_rounds": 10,
}


@pytest.fixture(scope="module")
def run(sessions: pd.DataFrame) -> tuple:
    return bench.run_benchmark(
        sessions,
        device=torch.device("cpu"),
        mlp_grid=MLP_GRID,
        lightgbm_grid=LIGHTGBM_GRID,
        inference_rows=2000,
        timing_seconds=0.05,
        bootstrap_resamples=200,
    )


def test_split_is_stratified_and_disjoint(sessions: pd.DataFrame) -> None:
    split = bench.split_sessions(sessions, seed=7)
    parts = (split.train, split.validation, split.test)
    assert sum(len(p) for p in parts) == len(sessions)
    assert not set(split.train.index) & set(split.test.index)
    assert not set(split.validation.index) & set(split.test.index)
    rate = sessions[bench.LABEL].mean()
    for part in parts:
        assert abs(part[bench.LABEL].mean() - rate) < 0.01
    again = bench.split_sessions(sessions, seed=7)
    assert again.test.index.equals(split.test.index)


def test_both_models_rank_sessions_well(run: tuple) -> None:
    result, split, mlp, gbm = run
    for name in ("mlp", "lightgbm"):
        assert set(result.metrics[name]) == set(BINARY_METRICS)
        assert result.metrics[name]["roc_auc"] > 0.8, (name, result.metrics[name])
        assert result.metrics[name]["base_rate"] == pytest.approx(split.test[bench.LABEL].mean())
    for model in (mlp, gbm):
        p = model.predict_proba(split.test)
        assert p.shape == (len(split.test),) and np.isfinite(p).all() and ((p >= 0) & (p <= 1)).all()


def test_result_structure(run: tuple) -> None:
    result, split, _, _ = run
    assert result.device == "cpu"
    for name in ("mlp", "lightgbm"):
        stats = result.fit[name]
        assert stats.rows == len(split.train) and stats.passes >= 1 and stats.seconds > 0
        assert stats.samples_per_second >= stats.rows_per_second > 0
        assert stats.seconds_per_pass == pytest.approx(stats.seconds / stats.passes)
        assert len(result.candidates[name]) == 1 and result.search_seconds[name] > 0
    assert result.fit["mlp"].passes <= 4  # at most four epochs
    assert set(result.inference_rows_per_second) == {
        "mlp_end_to_end_cpu",
        "mlp_model_only_cpu",
        "lightgbm_end_to_end_cpu",
        "lightgbm_model_only_cpu",
    }
    assert all(v > 0 for v in result.inference_rows_per_second.values())
    assert result.roc_auc_gap == pytest.approx(result.metrics["mlp"]["roc_auc"] - result.metrics["lightgbm"]["roc_auc"])
    low, high = result.intervals["mlp_roc_auc"]
    assert low < result.metrics["mlp"]["roc_auc"] < high and high - low < 0.2
    low, high = result.intervals["roc_auc_gap"]
    assert low < result.roc_auc_gap < high
    text = "\n".join(bench.format_result(result) + bench.format_candidates(result))
    assert "ROC-AUC" in text and "majority accuracy" in text and "rows / s" in text and "bootstrap" in text
    assert "s per epoch" in text
    assert result.to_dict()["fit"]["mlp"]["samples_per_second"] > 0


def test_the_mlp_is_what_the_nightlys_search_and_calibration_give(run: tuple) -> None:
    """The benchmarked model is the nightly's: ``training.conversion.model.search`` + ``calibrate``, same rows."""
    from training.conversion import model as conversion
    from training.shared.trainer import expand_grid

    _, split, mlp, _ = run
    preprocessor = bench.fit_mlp_preprocessor(split.train)
    train = bench._tensors(preprocessor, split.train)
    validation = bench._tensors(preprocessor, split.validation)
    grid = expand_grid(MLP_GRID, nested=conversion.NESTED_KEYS)
    _, result, _ = conversion.search(grid, train, validation, torch.device("cpu"))
    module, platt = conversion.calibrate(result.model.eval(), validation, "platt")
    assert platt is not None and mlp.platt == pytest.approx(platt)
    expected = conversion.predict_proba(module, preprocessor, split.test)
    assert mlp.predict_proba(split.test) == pytest.approx(expected, abs=1e-7)
    assert mlp.predict_matrix(mlp.matrix(split.test)) == pytest.approx(expected, abs=1e-7)


def test_repeated_splits_judge_the_mean_and_the_paired_gap(sessions: pd.DataFrame) -> None:
    repeated = bench.repeat_splits(
        sessions, (201, 202, 203), torch.device("cpu"), 1, mlp_grid=MLP_GRID, lightgbm_grid=LIGHTGBM_GRID
    )
    assert repeated.seeds == (201, 202, 203) and len(repeated.mlp) == len(repeated.lightgbm) == 3
    assert ((repeated.mlp > 0.7) & (repeated.lightgbm > 0.7)).all()
    low, high = repeated.gap_interval
    assert low <= repeated.gap.mean() <= high
    assert repeated.target_met == (repeated.mlp.mean() >= 0.93 and repeated.gap.mean() >= -0.005)
    text = "\n".join(repeated.lines())
    assert all(str(seed) in text for seed in repeated.seeds) and "bootstrap interval" in text
    assert repeated.to_dict()["mean_gap"] == pytest.approx(float(repeated.gap.mean()))


def test_engineered_columns_follow_the_raw_columns(sessions: pd.DataFrame) -> None:
    """LightGBM's ratios and totals are derived at prediction time (a what-if moves them), and a zero denominator
    gives 0, not inf; the nightly MLP's inputs are the raw columns only."""
    rows = sessions.head(3).assign(PageValues=30.0, ProductRelated=[0, 1, 10], ProductRelated_Duration=-1.0)
    derived = bench._derive(rows)
    assert derived["PageValues_per_product_page"].tolist() == [30.0, 30.0, 3.0]
    assert (derived["ProductRelated_seconds_per_page"] == 0).all()  # the file's -1 durations count as 0
    pages = rows["Administrative"] + rows["Informational"] + rows["ProductRelated"]
    assert derived["Pages_total"].tolist() == pages.astype(float).tolist()

    model = bench.LightGBMModel(None, ("Month",), {"Month": ["Nov"]}, 1, bench._numeric_columns(True))
    matrix = model.matrix(rows)
    assert matrix["PageValues_per_product_page"].tolist() == [30.0, 30.0, 3.0]
    assert set(bench.ENGINEERED_COLUMNS) <= set(matrix.columns)
    names = "".join(bench.fit_mlp_preprocessor(sessions).feature_names)
    assert not any(c in names for c in bench.ENGINEERED_COLUMNS)


def test_rank_roc_auc_is_sklearns() -> None:
    """The batched AUC behind the bootstrap intervals agrees with scikit-learn, ties included, row by row."""
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(3)
    y = (rng.random((4, 300)) < 0.2).astype(int)
    score = np.round(rng.random((4, 300)) + 0.3 * y, 1)  # rounded: many ties
    expected = [roc_auc_score(y[i], score[i]) for i in range(4)]
    assert bench.rank_roc_auc(y, score) == pytest.approx(expected, abs=1e-12)


def test_kpi_impact_reports_for_both_models(run: tuple, tmp_path: Path) -> None:
    _, split, mlp, gbm = run
    lines = bench.run_kpi_impact({"MLP": mlp.predict_proba, "LightGBM": gbm.predict_proba}, split.test, tmp_path)
    text = "\n".join(lines)
    for name in ("mlp", "lightgbm"):
        assert (tmp_path / f"kpi_impact_{name}" / "report.md").is_file()
    assert all(kpi in text for kpi in bench.KPI_COLUMNS)
