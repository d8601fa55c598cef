"""Conversion model v1: P(session converts) from the session's performance KPIs, context and customer history.

Input: a training set (parquet) as Feast's ``get_historical_features`` writes it for feature service
``conversion_v1``: ``session_id``, ``customer_id``, ``event_timestamp`` (UTC), the label ``converted``, the
``session_kpis`` features (device, channel, is_anonymous, 25 KPIs) and the ``customer_history`` features (null
when the customer has no history, e.g. anonymous sessions).

The split is by time inside the training window (the ``training_window_days`` days up to the run date):

    [ train ............................ | validation | holdout (last holdout_days) ]

The preprocessing is fitted on train only; a seeded search over the config's grid picks the candidate with the
lowest validation loss (early stopping also watches validation); with ``calibration: platt`` a logistic
recalibration fitted on the validation days is folded into the output layer; the holdout is touched once, for the
metrics, the KPI impact analysis (``training/conversion/kpi_impact.py``, rendered by ``kpi_impact_report.py``, logged
under ``kpi_impact/``) and the promotion gate. The model is logged as a pyfunc (``training/conversion/pyfunc.py``,
models-from-code) and registered as a new version of ``conversion``; promotion is the gate's business, not
this module's.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch
from torch import nn

from config.models import DriftConfig, KpiImpactConfig, ModelConfig, ModelsConfig, get_models_config
from feature_repo.contract.schema import KPI_NAMES, SESSIONS
from feature_repo.features.tables import CUSTOMER_HISTORY, EVENT_TIMESTAMP, SESSION_KPIS
from training.conversion import pyfunc as conversion_pyfunc
from training.conversion.kpi_impact import KpiImpactResult, analyze_kpi_impact
from training.conversion.kpi_impact_report import write_report
from training.conversion.pyfunc import (
    ConversionMLP,
    ConversionPreprocessor,
    _kpi_values,
    _numeric,
    predict_proba,
    save_model_files,
)
from training.shared import nets, publish, registry, results
from training.shared.devices import select_device
from training.shared.metrics import binary_classification_metrics, expected_calibration_error
from training.shared.results import Candidate
from training.shared.trainer import FitResult, LoopConfig, TrainingData, cpu_threads, expand_grid, fit

logger = logging.getLogger(__name__)

MODEL_NAME = "conversion"
LABEL = "converted"
PREDICTION = "p_convert"
ID_COLUMNS = ("session_id", "customer_id", EVENT_TIMESTAMP)
CATEGORICAL_COLUMNS = ("device", "channel")
FLAG_COLUMNS = ("is_anonymous",)
KPI_COLUMNS = KPI_NAMES
COUNT_KPI_COLUMNS = tuple(c.name for c in SESSIONS.columns if c.name in KPI_NAMES and c.unit == "count")
HISTORY_COLUMNS = tuple(CUSTOMER_HISTORY.column_names)
SESSION_FEATURES = tuple(c for c in SESSION_KPIS.column_names if c != "customer_id")
FEATURE_COLUMNS = (*SESSION_FEATURES, *HISTORY_COLUMNS)  # what the pyfunc takes, in the training set's order
NESTED_KEYS = ("hidden_sizes",)
MODEL_KEYS = {
    "hidden_sizes",
    "learning_rate",
    "weight_decay",
    "dropout",
    "batch_size",
    "max_epochs",
    "patience",
    "seed",
}


@dataclass(frozen=True)
class TimeSplit:
    """Rows of the training window cut by event date (UTC); dates are inclusive."""

    train: pd.DataFrame
    validation: pd.DataFrame
    holdout: pd.DataFrame
    window_start: dt.date
    validation_start: dt.date
    holdout_start: dt.date
    window_end: dt.date

    def describe(self) -> str:
        return (
            f"train {self.window_start}..{self.validation_start - dt.timedelta(days=1)} ({len(self.train)} rows), "
            f"validation {self.validation_start}..{self.holdout_start - dt.timedelta(days=1)} "
            f"({len(self.validation)}), holdout {self.holdout_start}..{self.window_end} ({len(self.holdout)})"
        )


@dataclass
class TrainingResult(results.SearchedTrainingResult):
    """What ``train_conversion`` logged and registered; ``to_dict`` travels through XCom."""


# --- data ----------------------------------------------------------------------------------------------------------
def read_training_set(path: Path) -> pd.DataFrame:
    """Read a conversion training set (a parquet file or folder) and check its columns."""
    frame = pd.read_parquet(path)
    required = [*ID_COLUMNS, LABEL, *SESSION_FEATURES]
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise KeyError(f"training set {path} lacks column(s): {', '.join(missing)}")
    for column in HISTORY_COLUMNS:  # a set built without history (or before the first history day) is allowed
        if column not in frame.columns:
            frame[column] = np.nan
    for column in (*FLAG_COLUMNS, *KPI_COLUMNS, *HISTORY_COLUMNS):
        # Feast hands integer features over as nullable Int64, which MLflow's schema enforcement refuses.
        if isinstance(frame[column].dtype, pd.api.extensions.ExtensionDtype):
            frame[column] = pd.to_numeric(frame[column]).astype("float64")
    ts = pd.to_datetime(frame[EVENT_TIMESTAMP], utc=True)
    frame[EVENT_TIMESTAMP] = ts
    if frame[LABEL].isna().any():
        raise ValueError(f"training set {path}: {int(frame[LABEL].isna().sum())} rows have no label")
    frame[LABEL] = frame[LABEL].astype(bool)
    return frame


def split_by_time(
    frame: pd.DataFrame, day: dt.date, window_days: int, holdout_days: int, validation_days: int
) -> TimeSplit:
    """Cut the ``window_days`` days up to ``day`` (inclusive) into train, validation and holdout by event date."""
    if window_days <= holdout_days + validation_days:
        raise ValueError(
            f"a {window_days}-day window leaves no training days after {holdout_days} holdout and "
            f"{validation_days} validation days"
        )
    window_start = day - dt.timedelta(days=window_days - 1)
    holdout_start = day - dt.timedelta(days=holdout_days - 1)
    validation_start = holdout_start - dt.timedelta(days=validation_days)
    dates = frame[EVENT_TIMESTAMP].dt.date
    in_window = (dates >= window_start) & (dates <= day)
    ordered = frame.loc[in_window].sort_values([EVENT_TIMESTAMP, "session_id"], kind="stable")
    odates = ordered[EVENT_TIMESTAMP].dt.date
    split = TimeSplit(
        train=ordered.loc[odates < validation_start].reset_index(drop=True),
        validation=ordered.loc[(odates >= validation_start) & (odates < holdout_start)].reset_index(drop=True),
        holdout=ordered.loc[odates >= holdout_start].reset_index(drop=True),
        window_start=window_start,
        validation_start=validation_start,
        holdout_start=holdout_start,
        window_end=day,
    )
    for part in ("train", "validation", "holdout"):
        rows: pd.DataFrame = getattr(split, part)
        if rows.empty:
            raise ValueError(f"no {part} rows for {day} ({split.describe()}): does the training set cover the window?")
        if rows[LABEL].nunique() < 2:
            raise ValueError(f"the {part} rows for {day} hold one class only ({split.describe()})")
    first = frame[EVENT_TIMESTAMP].min().date()
    if first > window_start:
        logger.warning(
            "the training set starts on %s, after the window start %s: training on fewer days", first, window_start
        )
    return split


# --- model ---------------------------------------------------------------------------------------------------------
def fit_preprocessor(train: pd.DataFrame) -> ConversionPreprocessor:
    return ConversionPreprocessor.fit(
        train,
        list(KPI_COLUMNS),
        list(HISTORY_COLUMNS),
        list(FLAG_COLUMNS),
        list(CATEGORICAL_COLUMNS),
        count_columns=COUNT_KPI_COLUMNS,
    )


def training_data(preprocessor: ConversionPreprocessor, rows: pd.DataFrame) -> TrainingData:
    """Model inputs and 0/1 targets of ``rows`` as CPU tensors."""
    x = torch.from_numpy(preprocessor.transform(rows))
    y = torch.from_numpy(rows[LABEL].to_numpy(dtype=np.float32))
    return TrainingData((x,), y)


def _loop_config(hp: dict[str, Any]) -> LoopConfig:
    return LoopConfig(
        learning_rate=float(hp["learning_rate"]),
        weight_decay=float(hp.get("weight_decay", 0.0)),
        batch_size=int(hp["batch_size"]),
        max_epochs=int(hp["max_epochs"]),
        patience=int(hp["patience"]),
        seed=int(hp["seed"]),
    )


def _build(hp: dict[str, Any], n_features: int) -> Callable[[], ConversionMLP]:
    sizes, dropout = [int(s) for s in hp["hidden_sizes"]], float(hp.get("dropout", 0.0))
    return lambda: ConversionMLP(n_features, sizes, dropout)


def search(
    grid: list[dict[str, Any]], train: TrainingData, validation: TrainingData, device: torch.device
) -> tuple[dict[str, Any], FitResult, list[Candidate]]:
    """Fit every grid point with the same seed; the lowest validation loss wins (the first one on a tie)."""
    loss_fn = nn.BCEWithLogitsLoss()
    n_features = train.inputs[0].shape[1]
    best: tuple[dict[str, Any], FitResult] | None = None
    candidates: list[Candidate] = []
    for i, hp in enumerate(grid, start=1):
        unknown = set(hp) - MODEL_KEYS
        if unknown:
            raise KeyError(f"unknown conversion hyperparameter(s) {sorted(unknown)}; known: {sorted(MODEL_KEYS)}")
        result = fit(
            _build(hp, n_features),
            train,
            validation,
            loss_fn,
            _loop_config(hp),
            device,
            label=f"conversion[{i}/{len(grid)}]",
        )
        candidates.append(Candidate(hp, result.best_val_loss, result.best_epoch, len(result.history), result.seconds))
        logger.info(
            "candidate %d/%d %s: val loss %.5f at epoch %d", i, len(grid), hp, result.best_val_loss, result.best_epoch
        )
        if best is None or result.best_val_loss < best[1].best_val_loss:
            best = (hp, result)
    assert best is not None  # expand_grid never returns an empty grid
    return best[0], best[1], candidates


# --- calibration and model uncertainty ----------------------------------------------------------------------------
@torch.no_grad()
def _logits(module: nn.Module, data: TrainingData) -> np.ndarray:
    module.eval()
    return module(*data.inputs).numpy().astype(np.float64)


def fit_platt(module: ConversionMLP, validation: TrainingData) -> tuple[float, float]:
    """Slope and intercept of ``P = sigmoid(slope * logit + intercept)``, maximum likelihood on the validation rows."""
    from sklearn.linear_model import LogisticRegression

    z, y = _logits(module, validation), validation.target.numpy()
    platt = LogisticRegression(C=1e6).fit(z[:, None], y)  # practically unpenalized: two parameters, 10k rows
    return float(platt.coef_[0, 0]), float(platt.intercept_[0])


def apply_platt(module: ConversionMLP, slope: float, intercept: float) -> ConversionMLP:
    """A copy of ``module`` whose output layer computes ``slope * logit + intercept``: the pyfunc needs no change."""
    calibrated = copy.deepcopy(module)
    last = calibrated.net[-1]
    with torch.no_grad():
        last.weight.mul_(slope)
        last.bias.mul_(slope).add_(intercept)
    return calibrated.eval()


def calibrate(
    module: ConversionMLP, validation: TrainingData, method: Literal["none", "platt"]
) -> tuple[ConversionMLP, tuple[float, float] | None]:
    """The module to serve and the Platt parameters applied (None: served as trained)."""
    if method == "none":
        return module, None
    slope, intercept = fit_platt(module, validation)
    if slope <= 0:  # the validation days rank sessions against the model: recalibrating would invert it
        logger.warning("Platt slope %.3f <= 0 on the validation days: the model is served uncalibrated", slope)
        return module, None
    return apply_platt(module, slope, intercept), (slope, intercept)


def bootstrap_refits(
    hp: dict[str, Any],
    train: TrainingData,
    validation: TrainingData,
    n: int,
    device: torch.device,
    calibration: Literal["none", "platt"],
) -> list[ConversionMLP]:
    """``n`` models with the chosen hyperparameters, each fitted on a bootstrap resample of the training rows.

    Their spread is the model's uncertainty for the KPI impact intervals. Resample ``i`` and its initial weights
    are seeded by ``hp["seed"] + i``; early stopping and calibration use the same validation days; the
    preprocessing (a standardization) stays the one fitted on all training rows, and the search is not redone.
    """
    models = []
    for i in range(1, n + 1):
        seed = int(hp["seed"]) + i
        rows = torch.from_numpy(np.random.default_rng(seed).integers(0, len(train), len(train)))
        resample = TrainingData(tuple(x[rows] for x in train.inputs), train.target[rows])
        result = fit(
            _build(hp, train.inputs[0].shape[1]),
            resample,
            validation,
            nn.BCEWithLogitsLoss(),
            _loop_config({**hp, "seed": seed}),
            device,
            label=f"conversion refit {i}/{n}",
        )
        models.append(calibrate(result.model.to("cpu").eval(), validation, calibration)[0])
    return models


class ConversionPredict:
    """``predict_proba`` of one module as the KPI impact analysis calls it, with a fast path for its scenarios.

    ``predict(frame)`` is :func:`training.conversion.pyfunc.predict_proba`. ``bind(frame)`` (see
    :func:`training.conversion.kpi_impact.bind_rows`) transforms ``frame`` once and, per call, rewrites only the KPI
    columns
    the call replaces, with the preprocessor's own KPI transform (``_kpi_values``, then its standardization); the
    network then scores the patched matrix. The analysis scores one holdout some 300 times per model with one
    KPI changed, and the full pandas transform was most of its time. The KPI block of the bound matrix is checked
    against the full transform once per bind; should they ever differ, every call takes the full transform.
    Torch runs single-threaded here (:func:`training.shared.trainer.cpu_threads`): the network is small.
    """

    def __init__(self, module: ConversionMLP, preprocessor: ConversionPreprocessor) -> None:
        self.module, self.preprocessor = module.eval(), preprocessor

    def __call__(self, frame: pd.DataFrame) -> np.ndarray:
        with cpu_threads(1):
            return predict_proba(self.module, self.preprocessor, frame)

    def bind(self, frame: pd.DataFrame) -> Callable[[dict[str, np.ndarray]], np.ndarray]:
        pre = self.preprocessor
        names = pre.feature_names
        kpis = {  # KPI -> (its index in the KPI block, its column in the matrix)
            c: (i, names.index(c if c in pre.count_columns else f"log1p_{c}")) for i, c in enumerate(pre.kpi_columns)
        }
        x = torch.from_numpy(pre.transform(frame))
        raw = {c: _float_values(frame[c]) for c in kpis}
        exact = all(torch.equal(x[:, j], torch.from_numpy(self._kpi_column(i, raw[c]))) for c, (i, j) in kpis.items())
        if not exact:
            logger.warning("the bound KPI columns differ from the preprocessor's transform: full transform per call")

        def scored(overrides: dict[str, np.ndarray]) -> np.ndarray:
            if overrides and (not exact or any(c not in kpis for c in overrides)):
                return self(frame.assign(**overrides))
            changed = {}
            for column, values in overrides.items():
                values = _float_values(values)
                if not np.array_equal(values, raw[column], equal_nan=True):  # e.g. the 24 unshuffled KPIs
                    changed[column] = values
            saved = {c: x[:, kpis[c][1]].clone() for c in changed}
            try:  # patched in place and put back: a copy of the whole matrix per call cost more than the network
                for column, values in changed.items():
                    i, j = kpis[column]
                    x[:, j] = torch.from_numpy(self._kpi_column(i, values))
                return self._forward(x)
            finally:
                for column, original in saved.items():
                    x[:, kpis[column][1]] = original

        return scored

    def _kpi_column(self, i: int, values: Any) -> np.ndarray:
        """Column ``i`` of the transform's KPI block for raw ``values``: the same operations, on one column."""
        pre, column = self.preprocessor, self.preprocessor.kpi_columns[i]
        kpi = _kpi_values(pd.DataFrame({column: values}), [column], [column] if column in pre.count_columns else [])
        kpi = (kpi - np.asarray(pre.kpi_mean)[i : i + 1]) / np.asarray(pre.kpi_std)[i : i + 1]
        return np.nan_to_num(kpi, nan=0.0).astype(np.float32)[:, 0]

    @torch.no_grad()
    def _forward(self, x: torch.Tensor, batch_size: int = 65536) -> np.ndarray:
        device = next(self.module.parameters()).device
        with cpu_threads(1):
            out = [
                torch.sigmoid(self.module(x[i : i + batch_size].to(device))).cpu() for i in range(0, len(x), batch_size)
            ]
        return torch.cat(out).numpy().astype(np.float64) if out else np.zeros(0)


def _float_values(values: Any) -> np.ndarray:
    """Raw values as float64 (nulls as NaN), read as the preprocessor reads a numeric column."""
    return _numeric(pd.Series(values)).to_numpy()


def kpi_impact_analysis(
    module: ConversionMLP,
    preprocessor: ConversionPreprocessor,
    sessions: pd.DataFrame,
    refits: list[ConversionMLP],
    config: KpiImpactConfig,
    seed: int,
    **options: Any,
) -> KpiImpactResult:
    """The KPI impact analysis of ``module`` on labelled ``sessions`` (the holdout), ``refits`` for model intervals.

    ``options`` go to :func:`training.conversion.kpi_impact.analyze_kpi_impact` (e.g. ``improvements``).
    """
    from threadpoolctl import threadpool_limits

    with cpu_threads(1), threadpool_limits(1):  # small networks and (B x n) @ (n x K) bootstrap products
        return analyze_kpi_impact(
            ConversionPredict(module, preprocessor),
            sessions,
            KPI_COLUMNS,
            label=LABEL,
            n_bootstrap=config.n_bootstrap,
            seed=seed,
            refits=[ConversionPredict(m, preprocessor) for m in refits],
            **options,
        )


# --- the stage -----------------------------------------------------------------------------------------------------
def train_conversion(
    training_set: Path,
    day: dt.date,
    *,
    models_config: ModelsConfig | None = None,
    device: str | None = None,
) -> TrainingResult:
    """Train, evaluate on the holdout, log to MLflow and register a new version of ``conversion``.

    Args:
        training_set: parquet file (or folder) of the conversion training set.
        day: the run date: the last day of the training window.
        models_config: [default: ``config/models.yaml``]; tests pass a copy with fewer epochs.
        device: ``auto``/``cpu``/``cuda``/``hpu`` [default: ``settings.device``].
    """
    started = time.perf_counter()
    config = models_config or get_models_config()
    model_cfg: ModelConfig = config.model(MODEL_NAME)
    drift: DriftConfig = config.drift
    torch_device = select_device(device)

    frame = read_training_set(Path(training_set))
    hyperparameters = dict(model_cfg.hyperparameters)
    # Optional key that shapes the split, not the network (not searched over): 3 validation days for a 7-day holdout.
    validation_days = int(hyperparameters.pop("validation_days", max(1, model_cfg.holdout_days // 2)))
    split = split_by_time(frame, day, model_cfg.training_window_days, model_cfg.holdout_days, validation_days)
    logger.info("conversion %s: %s", day, split.describe())

    preprocessor = fit_preprocessor(split.train)
    train, validation = training_data(preprocessor, split.train), training_data(preprocessor, split.validation)
    grid = expand_grid(hyperparameters, nested=NESTED_KEYS)
    chosen, result, candidates = search(grid, train, validation, torch_device)
    trained = result.model.to("cpu").eval()
    module, platt = calibrate(trained, validation, model_cfg.calibration)

    holdout_y = split.holdout[LABEL].to_numpy()
    holdout_p = predict_proba(module, preprocessor, split.holdout)
    metrics = binary_classification_metrics(holdout_y, holdout_p)
    logger.info("conversion %s holdout: %s", day, ", ".join(f"{k} {v:.4f}" for k, v in metrics.items()))
    curves = {"served": (holdout_y, holdout_p)}
    if platt is not None:
        curves = {
            "before Platt scaling": (holdout_y, predict_proba(trained, preprocessor, split.holdout)),
            "served (Platt-scaled)": curves["served"],
        }

    seed = int(chosen["seed"])
    impact: KpiImpactResult | None = None
    impact_seconds = 0.0
    impact_cfg = model_cfg.kpi_impact
    if impact_cfg.enabled:
        impact_started = time.perf_counter()
        refits = bootstrap_refits(
            chosen, train, validation, impact_cfg.model_refits, torch_device, model_cfg.calibration
        )
        impact = kpi_impact_analysis(module, preprocessor, split.holdout, refits, impact_cfg, seed)
        impact_seconds = time.perf_counter() - impact_started
        logger.info("conversion %s KPI impact (%d refits) in %.1f s", day, len(refits), impact_seconds)
    reference = split.train.sample(n=min(drift.reference_sample_rows, len(split.train)), random_state=seed)
    reference = reference.sort_index()
    reference = reference[[EVENT_TIMESTAMP, *FEATURE_COLUMNS, LABEL]].assign(
        **{PREDICTION: predict_proba(module, preprocessor, reference)}
    )
    holdout = split.holdout[[*ID_COLUMNS, LABEL, *FEATURE_COLUMNS]]

    def log_extra(run: registry.TrainingRun, folder: Path) -> None:
        run.log_metrics({"val_loss": result.best_val_loss})
        run.log_params({"calibration": model_cfg.calibration if platt else "none"})
        if platt is not None:
            run.log_params({"calibration.slope": round(platt[0], 6), "calibration.intercept": round(platt[1], 6)})
            raw_y, raw_p = curves["before Platt scaling"]
            run.log_metrics({"uncalibrated_ece": expected_calibration_error(raw_y, raw_p)})
        if impact is not None:
            report = write_report(
                impact, folder / "kpi_impact", f"KPI impact of the conversion model, {day}", calibration=curves
            )
            for path in report.values():
                run.log_artifact(path, "kpi_impact")
            run.set_tags({f"kpi_impact.top_{i}": kpi for i, kpi in enumerate(impact.ranking[:3], start=1)})
            run.log_metrics(
                {f"what_if_5pct.{k}": impact.what_if_for(k, 0.05).delta_conversion_rate for k in KPI_COLUMNS}
            )
            run.log_metrics({"kpi_impact_seconds": impact_seconds})
        for record in result.history:
            run.log_metrics(
                {"epoch_train_loss": record.train_loss, "epoch_val_loss": record.val_loss}, step=record.epoch
            )
        run.log_dict({"candidates": [asdict(c) for c in candidates]}, "search/candidates.json")

    published = publish.log_and_register(publish.TrainingRecord(
        model=MODEL_NAME,
        day=day,
        config=model_cfg,
        window_start=split.window_start,
        training_set=training_set,
        device=str(torch_device),
        hyperparameters=chosen,
        params={
            "grid_size": len(grid),
            "validation_days": validation_days,
            "rows_train": len(split.train),
            "rows_validation": len(split.validation),
            "rows_holdout": len(split.holdout),
            "best_epoch": result.best_epoch,
            "n_features": len(preprocessor.feature_names),
        },
        metrics=metrics,
        holdout=holdout,
        reference=reference,
        log_extra=log_extra,
        package=publish.ModelPackage(
            python_model=Path(conversion_pyfunc.__file__),
            write_files=lambda folder: save_model_files(
                folder, preprocessor, module, [int(s) for s in chosen["hidden_sizes"]],
                float(chosen.get("dropout", 0.0)),
            ),
            signature=registry.tabular_signature(
                string_columns=list(CATEGORICAL_COLUMNS),
                numeric_columns=[*FLAG_COLUMNS, *KPI_COLUMNS, *HISTORY_COLUMNS],
                optional_columns=list(HISTORY_COLUMNS),
                output_name=PREDICTION,
            ),
            requirements=("torch", "pandas", "numpy"),
            input_example=holdout[list(FEATURE_COLUMNS)].head(3),
            code_paths=(nets.CODE_PATH,),
            version_tags={"holdout_roc_auc": f"{metrics['roc_auc']:.6f}"},
        ),
    ))
    seconds = time.perf_counter() - started
    logger.info("conversion %s: run %s, %s v%s, %.1f s", day, published.run_id, MODEL_NAME, published.version, seconds)
    return TrainingResult(
        run_id=published.run_id,
        model_name=MODEL_NAME,
        model_version=published.version,
        model_uri=published.model_uri,
        holdout_path=published.holdout_path,
        holdout_uri=published.holdout_uri,
        reference_uri=published.reference_uri,
        metrics=metrics,
        hyperparameters=chosen,
        device=str(torch_device),
        seconds=seconds,
        candidates=candidates,
    )


def read_holdout(path: Path) -> pd.DataFrame:
    """A holdout written by :func:`train_conversion` (the gate scores challenger and champion on it)."""
    return pd.read_parquet(path)


def describe(result: TrainingResult) -> str:
    return json.dumps(result.to_dict(), indent=2, sort_keys=True, default=str)
