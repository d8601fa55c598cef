"""The nightly's conversion trainer on real sessions: UCI Online Shoppers Purchasing Intention, next to LightGBM.

**The model benchmarked is the model the nightly ships**: the MLP is trained by the functions ``train_conversion``
runs, ``training.conversion.model.search`` (every grid point with the same seed through the shared loop, the lowest
validation loss wins), ``calibrate`` (Platt scaling on the validation part, folded into the output layer),
``ConversionPreprocessor`` and ``predict_proba``, with this file's columns and a grid in the config's form
(:data:`MLP_GRID`, what a shop would put in ``config/models.yaml``). No ensemble, no class weight, no engineered
columns: the nightly has none. The UCI file has no basket stage, so the model runs as one stage. LightGBM, the
baseline, searches more (:data:`LIGHTGBM_GRID`: categorical sets, engineered ratio and total columns).

Protocol (issue 17, decision 1): stratified 70/15/15 train/validation/test splits; every choice is made on the
validation part by log loss and the test rows are scored once. The target is judged on :data:`JUDGED_SPLIT_SEEDS`
(10 seeds that no tuning choice has looked at): the MLP's mean test ROC-AUC >= 0.93 and the mean paired gap to
LightGBM (same splits, same run) >= -0.005, with a bootstrap interval over the splits. The fixed split (seed 7, the
one earlier choices were made on) is printed beside them with bootstrap intervals over its test rows, training and
inference speed, and per model the KPI impact ranking on its test sessions (reports under
``<reports>/benchmarks/conversion_uci/kpi_impact_<model>/``).

    python benchmarks/conversion_uci.py                        # device auto; the fixed split + the 10 judged splits
    python benchmarks/conversion_uci.py --device cpu --threads 2
    python benchmarks/conversion_uci.py --repeat-splits 0 --no-kpi-impact   # the fixed split only

Class imbalance (15.5% positive): the split is stratified so every part has the base rate; the nightly trains on
the plain log loss and Platt scaling keeps its probabilities calibrated; models are compared by ROC-AUC, log loss,
PR-AUC and accuracy beside always-"no", never by accuracy alone.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from scipy.stats import bootstrap, rankdata
from sklearn.metrics import log_loss
from sklearn.model_selection import train_test_split

from config.settings import REPO_ROOT, get_settings
from training.conversion import model as conversion
from training.conversion.pyfunc import ConversionMLP, ConversionPreprocessor, predict_matrix, predict_proba
from training.shared.devices import select_device
from training.shared.metrics import binary_classification_metrics
from training.shared.trainer import TrainingData, expand_grid

logger = logging.getLogger(__name__)

DATA_FILE = REPO_ROOT.parent / "shared" / "data" / "uci_online_shoppers_intention" / "online_shoppers_intention.csv"
LABEL = "Revenue"
# Page counts and durations (seconds; the file keeps -1 in 33 duration cells, clipped to 0 by log1p), rates in
# [0, 0.2], PageValues (mean value of the pages seen before a transaction, 0 for 78% of sessions) and SpecialDay.
NUMERIC_COLUMNS = (
    "Administrative",
    "Administrative_Duration",
    "Informational",
    "Informational_Duration",
    "ProductRelated",
    "ProductRelated_Duration",
    "BounceRates",
    "ExitRates",
    "PageValues",
    "SpecialDay",
)
CATEGORICAL_COLUMNS = ("Month", "OperatingSystems", "Browser", "Region", "TrafficType", "VisitorType")
FLAG_COLUMNS = ("Weekend",)
# Derived numeric columns a practitioner adds on this file, offered to LightGBM when its search's ``engineered`` is
# true (the nightly MLP has none; in 5-fold CV they gained neither model anything). A ratio is numerator /
# max(denominator, 1) with negatives (the -1 durations) clipped to 0, so a session without pages of a kind gets 0;
# a total is the sum over the three page kinds.
RATIO_COLUMNS: dict[str, tuple[str, str]] = {
    "PageValues_per_product_page": ("PageValues", "ProductRelated"),  # page value spread over the product pages
    "Administrative_seconds_per_page": ("Administrative_Duration", "Administrative"),
    "Informational_seconds_per_page": ("Informational_Duration", "Informational"),
    "ProductRelated_seconds_per_page": ("ProductRelated_Duration", "ProductRelated"),
}
TOTAL_COLUMNS: dict[str, tuple[str, ...]] = {
    "Pages_total": ("Administrative", "Informational", "ProductRelated"),
    "Seconds_total": ("Administrative_Duration", "Informational_Duration", "ProductRelated_Duration"),
}
ENGINEERED_COLUMNS = (*RATIO_COLUMNS, *TOTAL_COLUMNS)
# The categoricals a model may use; the search picks the set. "engagement" drops the technical ones (browser,
# operating system, region): up to 13 one-hot levels each, many with a handful of sessions; "visit" keeps the
# month (seasonality: November converts 25%, February 2%) and new/returning visitor only.
FEATURE_SETS: dict[str, tuple[str, ...]] = {
    "all": CATEGORICAL_COLUMNS,
    "engagement": ("Month", "TrafficType", "VisitorType"),
    "visit": ("Month", "VisitorType"),
}
# Engagement KPIs standing in for performance KPIs in the impact analysis, and which way is better for each.
KPI_COLUMNS = (
    "ProductRelated_Duration",
    "PageValues",
    "BounceRates",
    "ExitRates",
    "Administrative_Duration",
    "Informational_Duration",
)
IMPROVE = {kpi: "decrease" if kpi in ("BounceRates", "ExitRates") else "increase" for kpi in KPI_COLUMNS}

# The MLP's inputs: the numeric columns, the weekend flag and the "visit" categoricals (Month, VisitorType), the
# best set in 5-fold CV inside the seed-7 train+validation (docs/conversion_uci.md), as a shop chooses its feature
# service. Its grid, in config/models.yaml's form, narrowed on the seed-7 validation part and that CV only: the
# demo shop's grid (32 units, batch 1024, 40 epochs) stops at its last epoch on 8,600 training rows.
MLP_CATEGORICALS = FEATURE_SETS["visit"]
MLP_GRID: dict[str, Any] = {
    "hidden_sizes": [[64, 32], [128, 64]],
    "dropout": 0.4,
    "weight_decay": 1e-2,
    "learning_rate": 1e-3,
    "batch_size": 128,
    "max_epochs": 80,
    "patience": 8,
    "seed": 7,
}
# num_leaves 31 never reached the best five by validation log loss in the earlier grid: its slot went to the inputs.
LIGHTGBM_GRID: dict[str, Any] = {
    "feature_set": ["all", "engagement", "visit"],
    "engineered": [False, True],
    "num_leaves": [7, 15],
    "min_child_samples": [20, 50],
    "learning_rate": 0.03,
    "feature_fraction": 0.8,
    "bagging_fraction": 0.8,
    "bagging_freq": 1,
    "num_boost_round": 3000,
    "early_stopping_rounds": 100,
}
FIXED_SPLIT_SEED = 7  # the split earlier choices were made on: printed beside the judged ones, never judged
# Ten split seeds no choice has looked at (101-105 were printed by an earlier version of this benchmark).
JUDGED_SPLIT_SEEDS = tuple(range(201, 211))
TARGET_ROC_AUC = 0.93  # mean test ROC-AUC over the judged splits
TARGET_GAP = 0.005  # mean paired MLP - LightGBM gap over the judged splits >= -TARGET_GAP
INFERENCE_ROWS = 100_000  # the test rows tiled to this many for the throughput measurements
BOOTSTRAP_RESAMPLES = 1000  # test-set resamples behind the ROC-AUC intervals


# --- data ----------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Split:
    """The three stratified parts of the sessions (original row order kept within each)."""

    train: pd.DataFrame
    validation: pd.DataFrame
    test: pd.DataFrame
    seed: int

    def describe(self) -> str:
        parts = {"train": self.train, "validation": self.validation, "test": self.test}
        sizes = ", ".join(f"{k} {len(v)} ({v[LABEL].mean():.1%} positive)" for k, v in parts.items())
        return f"stratified, seed {self.seed}: {sizes}"


def load_sessions(path: Path = DATA_FILE) -> pd.DataFrame:
    """The UCI sessions as the file holds them, with ``Revenue`` and ``Weekend`` as bool; checks the columns."""
    frame = pd.read_csv(path)
    missing = [c for c in (*NUMERIC_COLUMNS, *CATEGORICAL_COLUMNS, *FLAG_COLUMNS, LABEL) if c not in frame.columns]
    if missing:
        raise KeyError(f"{path} lacks column(s) {', '.join(missing)}: is it the original UCI file?")
    for column in (LABEL, *FLAG_COLUMNS):
        frame[column] = frame[column].astype(bool)
    return frame


def split_sessions(frame: pd.DataFrame, seed: int = 7, validation: float = 0.15, test: float = 0.15) -> Split:
    """Stratified train/validation/test split by ``Revenue`` (scikit-learn's ``train_test_split``, seeded)."""
    rest, test_rows = train_test_split(frame, test_size=test, stratify=frame[LABEL], random_state=seed)
    train_rows, val_rows = train_test_split(
        rest, test_size=validation / (1.0 - test), stratify=rest[LABEL], random_state=seed
    )
    return Split(train_rows.sort_index(), val_rows.sort_index(), test_rows.sort_index(), seed)


def _labels(frame: pd.DataFrame) -> np.ndarray:
    return frame[LABEL].to_numpy(dtype=np.int64)


# --- the nightly's MLP ---------------------------------------------------------------------------------------------
@dataclass
class NightlyMLP:
    """What the nightly ships: the fitted preprocessing and the Platt-scaled network (``ConversionMLP``)."""

    preprocessor: ConversionPreprocessor
    module: ConversionMLP
    platt: tuple[float, float] | None  # slope, intercept folded into the output layer (None: served uncalibrated)

    def matrix(self, frame: pd.DataFrame) -> np.ndarray:
        return self.preprocessor.transform(frame)

    def predict_matrix(self, x: np.ndarray) -> np.ndarray:
        """P(convert) per row of a feature matrix (:meth:`matrix`), on the module's device: the pyfunc's."""
        return predict_matrix(self.module, x)

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        """P(convert) per session of ``frame`` (raw UCI columns): the pyfunc's ``predict_proba``."""
        return predict_proba(self.module, self.preprocessor, frame)

    def to(self, device: torch.device | str) -> NightlyMLP:
        self.module.to(device)
        return self


@dataclass
class FitStats:
    """What fitting the chosen model took."""

    seconds: float  # wall time of its fit (the MLP: the trainer's epochs, validation passes included)
    rows: int  # training rows
    passes: int  # MLP: epochs run; LightGBM: boosting rounds built

    @property
    def rows_per_second(self) -> float:
        """Training rows per second of fitting, end to end."""
        return self.rows / self.seconds

    @property
    def samples_per_second(self) -> float:
        """Rows processed per second: rows x epochs (MLP) or rows x boosting rounds (LightGBM)."""
        return self.rows * self.passes / self.seconds

    @property
    def seconds_per_pass(self) -> float:
        """Seconds per epoch (MLP) or per boosting round (LightGBM)."""
        return self.seconds / self.passes


@dataclass(frozen=True)
class Candidate:
    """One point of a search grid and how it did on validation."""

    hyperparameters: dict[str, Any]
    val_log_loss: float
    best_iteration: int  # MLP: best epoch; LightGBM: best boosting round
    seconds: float


def fit_mlp_preprocessor(train: pd.DataFrame) -> ConversionPreprocessor:
    """The conversion preprocessing with UCI's columns: numerics log1p'd and standardized, flags, one-hots."""
    return ConversionPreprocessor.fit(train, list(NUMERIC_COLUMNS), [], list(FLAG_COLUMNS), list(MLP_CATEGORICALS))


def _tensors(preprocessor: ConversionPreprocessor, frame: pd.DataFrame) -> TrainingData:
    return TrainingData(
        (torch.from_numpy(preprocessor.transform(frame)),), torch.from_numpy(_labels(frame).astype(np.float32))
    )


def train_mlp(
    split: Split, grid: list[dict[str, Any]], device: torch.device
) -> tuple[NightlyMLP, dict[str, Any], list[Candidate], FitStats, float]:
    """The nightly's search and calibration on ``split`` (:func:`training.conversion.model.search`, ``calibrate``).

    Returns the model (on the CPU), the chosen hyperparameters, every candidate (validation log loss before
    calibration, as the search judges), the chosen candidate's fit statistics and the search's seconds.
    """
    preprocessor = fit_mlp_preprocessor(split.train)
    train, validation = _tensors(preprocessor, split.train), _tensors(preprocessor, split.validation)
    chosen, result, searched = conversion.search(grid, train, validation, device)
    module, platt = conversion.calibrate(result.model.to("cpu").eval(), validation, "platt")
    candidates = [Candidate(c.hyperparameters, c.val_loss, c.best_epoch, c.seconds) for c in searched]
    stats = FitStats(result.seconds, len(split.train), len(result.history))
    return NightlyMLP(preprocessor, module, platt), chosen, candidates, stats, sum(c.seconds for c in searched)


def _numeric_columns(engineered: bool) -> tuple[str, ...]:
    return (*NUMERIC_COLUMNS, *ENGINEERED_COLUMNS) if engineered else NUMERIC_COLUMNS


def _derive(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with the engineered columns added (missing inputs give NaN)."""

    def number(column: str) -> pd.Series:
        return pd.to_numeric(frame[column], errors="coerce").clip(lower=0.0)

    derived = {}
    for name, (numerator, denominator) in RATIO_COLUMNS.items():
        derived[name] = number(numerator) / number(denominator).clip(lower=1.0)
    for name, columns in TOTAL_COLUMNS.items():
        derived[name] = sum((number(c) for c in columns), start=pd.Series(0.0, index=frame.index))
    return frame.assign(**derived)


# --- LightGBM ------------------------------------------------------------------------------------------------------
@dataclass
class LightGBMModel:
    """A LightGBM booster with the category levels of its training rows (unseen levels become missing)."""

    booster: Any  # lightgbm.Booster (imported lazily: the module is an optional, dev-only dependency)
    categorical_columns: tuple[str, ...]
    categories: dict[str, list[Any]]
    threads: int = 1
    numeric_columns: tuple[str, ...] = NUMERIC_COLUMNS  # with the engineered columns when the search chose them

    @property
    def columns(self) -> list[str]:
        return [*self.numeric_columns, *self.categorical_columns, *FLAG_COLUMNS]

    def matrix(self, frame: pd.DataFrame) -> pd.DataFrame:
        x = _derive(frame)[self.columns].copy()
        for column in self.categorical_columns:
            x[column] = pd.Categorical(x[column], categories=self.categories[column])
        for column in FLAG_COLUMNS:
            x[column] = x[column].astype(np.float64)
        return x

    def predict_matrix(self, x: pd.DataFrame) -> np.ndarray:
        best = self.booster.best_iteration or None
        return np.asarray(self.booster.predict(x, num_iteration=best, num_threads=self.threads), dtype=np.float64)

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        return self.predict_matrix(self.matrix(frame))


def train_lightgbm(
    split: Split, grid: list[dict[str, Any]], seed: int = 7, threads: int = 1
) -> tuple[LightGBMModel, dict[str, Any], list[Candidate], FitStats, float]:
    """Search ``grid`` with early stopping on validation log loss; the lowest validation log loss wins.

    Returns the chosen model, its hyperparameters, every candidate, the chosen model's fit statistics and the
    search's wall time in seconds.
    """
    import lightgbm as lgb

    val_y = _labels(split.validation)
    candidates: list[Candidate] = []
    best: tuple[float, dict[str, Any], LightGBMModel, FitStats] | None = None
    search_seconds = 0.0
    for hp in grid:
        categorical = FEATURE_SETS[hp["feature_set"]]
        categories = {c: sorted(split.train[c].dropna().unique().tolist()) for c in categorical}
        numeric = _numeric_columns(bool(hp.get("engineered", False)))
        model = LightGBMModel(None, categorical, categories, threads, numeric)
        params = {
            "objective": "binary",
            "metric": "binary_logloss",
            "learning_rate": float(hp["learning_rate"]),
            "num_leaves": int(hp["num_leaves"]),
            "min_child_samples": int(hp["min_child_samples"]),
            "feature_fraction": float(hp["feature_fraction"]),
            "bagging_fraction": float(hp["bagging_fraction"]),
            "bagging_freq": int(hp["bagging_freq"]),
            "seed": seed,
            "deterministic": True,
            "force_row_wise": True,  # with deterministic: the same trees on every run
            "num_threads": threads,
            "verbosity": -1,
        }
        rounds = [0]  # boosting rounds built, early-stopped ones included (the booster keeps only the best)

        def count_rounds(env: Any, rounds: list[int] = rounds) -> None:
            rounds[0] = env.iteration + 1

        started = time.perf_counter()
        train_set = lgb.Dataset(model.matrix(split.train), _labels(split.train), categorical_feature=list(categorical))
        val_set = lgb.Dataset(model.matrix(split.validation), val_y, reference=train_set)
        model.booster = lgb.train(
            params,
            train_set,
            num_boost_round=int(hp["num_boost_round"]),
            valid_sets=[val_set],
            callbacks=[lgb.early_stopping(int(hp["early_stopping_rounds"]), verbose=False), count_rounds],
        )
        seconds = time.perf_counter() - started
        search_seconds += seconds
        p_val = model.predict_proba(split.validation)
        loss = float(log_loss(val_y, np.clip(p_val, 1e-15, 1 - 1e-15), labels=[0, 1]))
        candidates.append(Candidate(hp, loss, int(model.booster.best_iteration), seconds))
        logger.info("lightgbm candidate %s: val log loss %.5f at round %d", hp, loss, model.booster.best_iteration)
        if best is None or loss < best[0]:
            stats = FitStats(seconds, len(split.train), rounds[0])
            best = (loss, hp, model, stats)
    assert best is not None
    _, chosen, model, stats = best
    return model, chosen, candidates, stats, search_seconds


# --- speed ---------------------------------------------------------------------------------------------------------
def rows_per_second(predict: Callable[[], Any], rows: int, min_seconds: float = 1.0, min_runs: int = 5) -> float:
    """Rows per second of ``predict()`` over ``rows`` rows: its fastest run of at least ``min_runs`` runs and
    ``min_seconds`` seconds, after one warm-up (the fastest, because other work on the machine only slows runs).
    """
    predict()
    times: list[float] = []
    began = time.perf_counter()
    while len(times) < min_runs or time.perf_counter() - began < min_seconds:
        started = time.perf_counter()
        predict()
        times.append(time.perf_counter() - started)
    return rows / min(times)


def inference_speed(
    mlp: NightlyMLP,
    lightgbm: LightGBMModel,
    frame: pd.DataFrame,
    threads: int,
    device: torch.device,
    min_seconds: float = 1.0,
) -> dict[str, float]:
    """CPU batch-inference rows/s for both models, end to end (DataFrame in) and model only (features ready).

    With a GPU device the MLP's model-only figure on it is added (the matrix is moved per call, as in serving).
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        mlp.to("cpu")
        x_mlp, x_lgb = mlp.matrix(frame), lightgbm.matrix(frame)
        n = len(frame)
        speeds = {
            "mlp_end_to_end_cpu": rows_per_second(lambda: mlp.predict_proba(frame), n, min_seconds),
            "mlp_model_only_cpu": rows_per_second(lambda: mlp.predict_matrix(x_mlp), n, min_seconds),
            "lightgbm_end_to_end_cpu": rows_per_second(lambda: lightgbm.predict_proba(frame), n, min_seconds),
            "lightgbm_model_only_cpu": rows_per_second(lambda: lightgbm.predict_matrix(x_lgb), n, min_seconds),
        }
        if device.type == "cuda":
            mlp.to(device)

            def on_gpu() -> None:
                mlp.predict_matrix(x_mlp)
                torch.cuda.synchronize(device)

            speeds[f"mlp_model_only_{device.type}"] = rows_per_second(on_gpu, n, min_seconds)
            mlp.to("cpu")
        return speeds
    finally:
        torch.set_num_threads(previous)


def rank_roc_auc(y: np.ndarray, score: np.ndarray, axis: int = -1) -> np.ndarray:
    """ROC-AUC along ``axis`` by the Mann-Whitney identity (average ranks, so ties count half): the same value as
    ``sklearn.metrics.roc_auc_score``, but for a whole batch of bootstrap resamples at once."""
    positive = np.asarray(y) == 1
    n_pos = positive.sum(axis=axis)
    n_neg = positive.shape[axis] - n_pos
    rank_sum = (rankdata(score, axis=axis) * positive).sum(axis=axis)
    return (rank_sum - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


def roc_auc_intervals(
    y: np.ndarray, p_mlp: np.ndarray, p_lightgbm: np.ndarray, resamples: int, level: float = 0.95, seed: int = 7
) -> dict[str, tuple[float, float]]:
    """Percentile bootstrap intervals (scipy) of the MLP's test ROC-AUC and of MLP minus LightGBM ROC-AUC.

    The test sessions are resampled with both models' scores attached (paired), so the gap's interval reflects
    only what the models disagree on. How far 1,850 test rows can move a ROC-AUC of ~0.93, next to the target.
    """

    def mlp(y: np.ndarray, a: np.ndarray, b: np.ndarray, axis: int = -1) -> np.ndarray:
        return rank_roc_auc(y, a, axis)

    def gap(y: np.ndarray, a: np.ndarray, b: np.ndarray, axis: int = -1) -> np.ndarray:
        return rank_roc_auc(y, a, axis) - rank_roc_auc(y, b, axis)

    intervals = {}
    for name, statistic in (("mlp_roc_auc", mlp), ("roc_auc_gap", gap)):
        result = bootstrap(
            (y, p_mlp, p_lightgbm),
            statistic,
            n_resamples=resamples,
            confidence_level=level,
            method="percentile",
            paired=True,
            vectorized=True,
            random_state=np.random.default_rng(seed),  # the same resamples for both statistics
        )
        interval = result.confidence_interval
        intervals[name] = (float(interval.low), float(interval.high))
    return intervals


# --- the benchmark -------------------------------------------------------------------------------------------------
@dataclass
class BenchmarkResult:
    """Everything the benchmark prints; ``metrics`` maps model name to the test metrics."""

    split: str
    device: str
    threads: int
    metrics: dict[str, dict[str, float]]
    hyperparameters: dict[str, dict[str, Any]]
    fit: dict[str, FitStats]
    search_seconds: dict[str, float]
    candidates: dict[str, list[Candidate]]
    inference_rows_per_second: dict[str, float] = field(default_factory=dict)
    inference_rows: int = 0  # rows each inference figure was timed on
    # 95% percentile bootstrap intervals over the test rows: "mlp_roc_auc" and "roc_auc_gap" (MLP - LightGBM)
    intervals: dict[str, tuple[float, float]] = field(default_factory=dict)

    @property
    def roc_auc_gap(self) -> float:
        """MLP minus LightGBM test ROC-AUC."""
        return self.metrics["mlp"]["roc_auc"] - self.metrics["lightgbm"]["roc_auc"]

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for name, stats in self.fit.items():
            data["fit"][name].update(
                rows_per_second=stats.rows_per_second,
                samples_per_second=stats.samples_per_second,
                seconds_per_pass=stats.seconds_per_pass,
            )
        data.update(roc_auc_gap=self.roc_auc_gap)
        return data


def run_benchmark(
    frame: pd.DataFrame,
    *,
    seed: int = FIXED_SPLIT_SEED,
    device: torch.device | None = None,
    threads: int = 1,
    mlp_grid: dict[str, Any] | None = None,
    lightgbm_grid: dict[str, Any] | None = None,
    inference_rows: int | None = INFERENCE_ROWS,
    timing_seconds: float = 1.0,
    bootstrap_resamples: int = BOOTSTRAP_RESAMPLES,
) -> tuple[BenchmarkResult, Split, NightlyMLP, LightGBMModel]:
    """Split, search and train both models, score the test rows once, and time inference.

    Args:
        frame: the sessions (:func:`load_sessions`).
        seed: the split's seed (the models' own seeds: the grid's ``seed``, 7 for LightGBM).
        device: where the MLP trains [default: :func:`training.shared.devices.select_device`]; LightGBM trains on CPU.
        threads: CPU threads for LightGBM's training and both models' inference (the nightly's loop trains on 1).
        mlp_grid, lightgbm_grid: search grids in :func:`training.shared.trainer.expand_grid` form [default: the
        module's].
        inference_rows: rows (the test rows tiled) to time inference on; ``None`` skips the timing.
        timing_seconds: the least time spent timing each inference figure.
        bootstrap_resamples: test-set resamples for the ROC-AUC intervals; 0 skips them.
    """
    device = device or select_device()
    split = split_sessions(frame, seed=seed)
    mlp, mlp_hp, mlp_candidates, mlp_fit, mlp_search = train_mlp(
        split, expand_grid(mlp_grid or MLP_GRID, nested=conversion.NESTED_KEYS), device
    )
    gbm, gbm_hp, gbm_candidates, gbm_fit, gbm_search = train_lightgbm(
        split, expand_grid(lightgbm_grid or LIGHTGBM_GRID), seed=7, threads=threads
    )
    y_test = _labels(split.test)
    p_mlp, p_gbm = mlp.predict_proba(split.test), gbm.predict_proba(split.test)
    result = BenchmarkResult(
        split=split.describe(),
        device=str(device),
        threads=threads,
        metrics={
            "mlp": binary_classification_metrics(y_test, p_mlp),
            "lightgbm": binary_classification_metrics(y_test, p_gbm),
        },
        hyperparameters={"mlp": mlp_hp, "lightgbm": gbm_hp},
        fit={"mlp": mlp_fit, "lightgbm": gbm_fit},
        search_seconds={"mlp": mlp_search, "lightgbm": gbm_search},
        candidates={"mlp": mlp_candidates, "lightgbm": gbm_candidates},
    )
    if bootstrap_resamples:
        result.intervals = roc_auc_intervals(y_test, p_mlp, p_gbm, bootstrap_resamples)
    if inference_rows:
        tiled = split.test.iloc[np.arange(inference_rows) % len(split.test)].reset_index(drop=True)
        result.inference_rows = len(tiled)
        result.inference_rows_per_second = inference_speed(mlp, gbm, tiled, threads, device, timing_seconds)
    return result, split, mlp, gbm


# --- KPI impact ----------------------------------------------------------------------------------------------------
def run_kpi_impact(
    predictors: dict[str, Callable[[pd.DataFrame], np.ndarray]], test: pd.DataFrame, out_dir: Path
) -> list[str]:
    """The KPI impact analysis of each model on the test sessions, one report per model under ``out_dir``.

    Every report's reliability plot shows all the models. Returns printable lines.
    """
    from training.conversion.kpi_impact import analyze_kpi_impact
    from training.conversion.kpi_impact_report import write_report

    holdout = test[[*NUMERIC_COLUMNS, *CATEGORICAL_COLUMNS, *FLAG_COLUMNS, LABEL]].reset_index(drop=True)
    y = _labels(holdout)
    curves = {name: (y, predict(holdout)) for name, predict in predictors.items()}
    lines: list[str] = []
    for name, predict in predictors.items():
        result = analyze_kpi_impact(predict, holdout, list(KPI_COLUMNS), label=LABEL, improve=dict(IMPROVE))
        folder = out_dir / f"kpi_impact_{name.lower()}"
        title = f"KPI impact on UCI Online Shoppers: {name}, {len(holdout)} test sessions"
        paths = write_report(result, folder, title=title, calibration=curves)
        table = result.ranking_table().to_string(index=False, float_format=lambda v: f"{v:.4g}").splitlines()
        lines += ["", f"KPI impact ranking, {name} (report: {paths['html']}):", *table]
    return lines[1:]


# --- printing ------------------------------------------------------------------------------------------------------
METRIC_LABELS = {
    "roc_auc": "ROC-AUC",
    "pr_auc": "PR-AUC",
    "log_loss": "log loss",
    "brier": "Brier",
    "ece": "ECE (10 bins)",
    "base_rate": "base rate",
    "accuracy": "accuracy @0.5",
    "majority_accuracy": "majority accuracy",
}


def format_result(result: BenchmarkResult) -> list[str]:
    m, g = result.metrics["mlp"], result.metrics["lightgbm"]
    lines = [
        f"split: {result.split}",
        f"MLP device: {result.device} (the nightly's loop: 1 CPU thread); LightGBM and inference: {result.threads}",
        f"MLP chosen (the nightly's search, Platt-scaled): {_short(result.hyperparameters['mlp'])}",
        f"LightGBM chosen: {_short(result.hyperparameters['lightgbm'])}",
        "",
        f"{'test metric':<20}{'MLP':>10}{'LightGBM':>10}{'MLP - LGBM':>12}",
    ]
    for key, label in METRIC_LABELS.items():
        lines.append(f"{label:<20}{m[key]:>10.4f}{g[key]:>10.4f}{m[key] - g[key]:>+12.4f}")
    mf, gf = result.fit["mlp"], result.fit["lightgbm"]
    ms, gs = result.search_seconds["mlp"], result.search_seconds["lightgbm"]
    lines += [
        "",
        f"{'training':<34}{'MLP':>14}{'LightGBM':>14}",
        f"{'final model fit, s':<34}{mf.seconds:>14.2f}{gf.seconds:>14.2f}",
        f"{'search (all candidates), s':<34}{ms:>14.2f}{gs:>14.2f}",
        f"{'train rows / s of final fit':<34}{mf.rows_per_second:>14,.0f}{gf.rows_per_second:>14,.0f}",
        f"{'samples / s (rows x epochs|rounds)':<34}{mf.samples_per_second:>14,.0f}{gf.samples_per_second:>14,.0f}",
        f"{'epochs | rounds':<34}{mf.passes:>14}{gf.passes:>14}",
        f"{'s per epoch | per round':<34}{mf.seconds_per_pass:>14.4f}{gf.seconds_per_pass:>14.4f}",
    ]
    speeds = result.inference_rows_per_second
    if speeds:
        lines += ["", f"batch inference, rows / s (the test rows tiled to {result.inference_rows:,}):"]
        lines += [f"  {name:<34}{value:>14,.0f}" for name, value in speeds.items()]
    if result.intervals:
        (a, b), (c, d) = result.intervals["mlp_roc_auc"], result.intervals["roc_auc_gap"]
        lines += [
            "",
            f"fixed split: MLP ROC-AUC {m['roc_auc']:.4f} [{a:.4f}, {b:.4f}], MLP - LightGBM {result.roc_auc_gap:+.4f} "
            f"[{c:+.4f}, {d:+.4f}] (95% bootstrap over its test rows; not judged: earlier choices were made on it)",
        ]
    return lines


def _short(hp: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in hp.items())


def format_candidates(result: BenchmarkResult, top: int = 5) -> list[str]:
    lines = []
    for name, candidates in result.candidates.items():
        ranked = sorted(candidates, key=lambda c: c.val_log_loss)
        lines.append(f"{name} search: {len(candidates)} candidates, best {top} by validation log loss:")
        fixed = {k for k in ranked[0].hyperparameters if len({str(c.hyperparameters[k]) for c in candidates}) == 1}
        for c in ranked[:top]:
            varied = {k: v for k, v in c.hyperparameters.items() if k not in fixed}
            lines.append(f"  {c.val_log_loss:.5f}  best at {c.best_iteration:>4}  {_short(varied)}")
    return lines


@dataclass(frozen=True)
class RepeatedSplits:
    """Test ROC-AUC of both models on each split seed, trained in the same run on the same rows."""

    seeds: tuple[int, ...]
    mlp: np.ndarray
    lightgbm: np.ndarray
    gap_interval: tuple[float, float]  # 95% percentile bootstrap of the mean gap, resampling splits (paired)

    @property
    def gap(self) -> np.ndarray:
        return self.mlp - self.lightgbm

    @property
    def target_met(self) -> bool:
        return float(self.mlp.mean()) >= TARGET_ROC_AUC and float(self.gap.mean()) >= -TARGET_GAP

    def lines(self) -> list[str]:
        sd = (lambda a: a.std(ddof=1)) if len(self.seeds) > 1 else (lambda a: 0.0)
        out = [f"{'split seed':<12}{'MLP ROC-AUC':>13}{'LGBM ROC-AUC':>14}{'gap':>9}"]
        rows = zip(self.seeds, self.mlp, self.lightgbm, strict=True)
        out += [f"{s:<12}{a:>13.4f}{b:>14.4f}{a - b:>+9.4f}" for s, a, b in rows]
        low, high = self.gap_interval
        out += [
            f"{'mean (sd)':<12}{self.mlp.mean():>7.4f} ({sd(self.mlp):.4f}){self.lightgbm.mean():>8.4f} "
            f"({sd(self.lightgbm):.4f}){self.gap.mean():>+9.4f}",
            f"mean gap 95% bootstrap interval over the {len(self.seeds)} splits: [{low:+.4f}, {high:+.4f}]",
            f"target: mean MLP ROC-AUC >= {TARGET_ROC_AUC} and mean gap >= -{TARGET_GAP} -> "
            f"{self.mlp.mean():.4f}, {self.gap.mean():+.4f}: {'MET' if self.target_met else 'NOT MET'}",
        ]
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "seeds": list(self.seeds),
            "mlp_roc_auc": self.mlp.tolist(),
            "lightgbm_roc_auc": self.lightgbm.tolist(),
            "mean_mlp_roc_auc": float(self.mlp.mean()),
            "mean_lightgbm_roc_auc": float(self.lightgbm.mean()),
            "mean_gap": float(self.gap.mean()),
            "mean_gap_interval": list(self.gap_interval),
            "target_met": self.target_met,
        }


def repeat_splits(
    frame: pd.DataFrame,
    seeds: Sequence[int],
    device: torch.device,
    threads: int,
    *,
    mlp_grid: dict[str, Any] | None = None,
    lightgbm_grid: dict[str, Any] | None = None,
) -> RepeatedSplits:
    """The whole protocol on each split seed: both models searched, trained and scored on its test rows."""
    mlp, gbm = [], []
    for seed in seeds:
        started = time.perf_counter()
        result, *_ = run_benchmark(
            frame,
            seed=seed,
            device=device,
            threads=threads,
            mlp_grid=mlp_grid,
            lightgbm_grid=lightgbm_grid,
            inference_rows=None,
            bootstrap_resamples=0,
        )
        mlp.append(result.metrics["mlp"]["roc_auc"])
        gbm.append(result.metrics["lightgbm"]["roc_auc"])
        logger.warning(
            "split seed %d: MLP %.4f, LightGBM %.4f (%.0f s)", seed, mlp[-1], gbm[-1], time.perf_counter() - started
        )
    a, b = np.array(mlp), np.array(gbm)
    if len(seeds) > 1:
        ci = bootstrap(
            (a - b,), np.mean, n_resamples=10_000, method="percentile", random_state=np.random.default_rng(7)
        ).confidence_interval
        interval = (float(ci.low), float(ci.high))
    else:
        interval = (float("nan"), float("nan"))
    return RepeatedSplits(tuple(seeds), a, b, interval)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DATA_FILE, help="online_shoppers_intention.csv")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto", help="where the MLP trains")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads per model (training and inference)")
    parser.add_argument(
        "--repeat-splits",
        type=int,
        default=len(JUDGED_SPLIT_SEEDS),
        metavar="N",
        help=f"judge on the first N of the split seeds {JUDGED_SPLIT_SEEDS[0]}..{JUDGED_SPLIT_SEEDS[-1]} (0: none)",
    )
    parser.add_argument("--out", type=Path, default=None, help="report folder [<reports>/benchmarks/conversion_uci]")
    parser.add_argument("--no-kpi-impact", action="store_true", help="skip the KPI impact analysis")
    parser.add_argument("-v", "--verbose", action="store_true", help="log every epoch and candidate")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    if not args.data.is_file():
        print(f"data file not found: {args.data} (the shared datasets live in ../shared/data)", file=sys.stderr)
        return 2

    import lightgbm

    device = select_device(args.device)
    frame = load_sessions(args.data)
    print(f"UCI Online Shoppers: {len(frame)} sessions, {frame[LABEL].mean():.1%} converted ({args.data})")
    print(f"torch {torch.__version__}, lightgbm {lightgbm.__version__}")
    if device.type == "cuda":
        print(f"GPU: {torch.cuda.get_device_name(device)}")
    print(f"\n== the fixed split (seed {FIXED_SPLIT_SEED})")
    result, split, mlp, gbm = run_benchmark(frame, device=device, threads=args.threads)
    print("\n".join(format_result(result)))
    print()
    print("\n".join(format_candidates(result)))

    out_dir = args.out or get_settings().reports / "benchmarks" / "conversion_uci"
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "benchmark.json").write_text(json.dumps(result.to_dict(), indent=2, default=str))
    print(f"\nfigures: {out_dir / 'benchmark.json'}")
    if not args.no_kpi_impact:
        print()
        predictors = {"MLP": mlp.predict_proba, "LightGBM": gbm.predict_proba}
        print("\n".join(run_kpi_impact(predictors, split.test, out_dir)))
    if args.repeat_splits:
        seeds = JUDGED_SPLIT_SEEDS[: args.repeat_splits]
        print(f"\n== the judged splits: the same protocol on {len(seeds)} split seeds no choice has looked at")
        repeated = repeat_splits(frame, seeds, device, args.threads)
        print("\n".join(repeated.lines()))
        print(f"fixed split (seed {FIXED_SPLIT_SEED}) beside them: MLP {result.metrics['mlp']['roc_auc']:.4f}, "
              f"LightGBM {result.metrics['lightgbm']['roc_auc']:.4f}, gap {result.roc_auc_gap:+.4f}")
        (out_dir / "repeated_splits.json").write_text(json.dumps(repeated.to_dict(), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
