"""Elasticity model v1: price elasticity of demand per category, a demand forecast, and price recommendations.

Input: a training set (parquet) as Feast's ``get_historical_features`` writes it for feature service
``elasticity_v1``: one row per product on sale per day of the training window (``product_id``,
``event_timestamp`` = the end of the day, UTC) with the ``product_demand`` features (units, impressions, prices,
cost, flags, calendar). Demand is units per impression (see ``training/elasticity/estimator.py`` for why and for
the estimator: cross-fitted double ML on a Poisson log link, product effects, season and weekday controls,
cluster-robust intervals).

The split is by time: the last ``holdout_days`` of the window are the out-of-time holdout, never seen by the
estimator; the gate scores the demand forecast there (:func:`demand_scorer`: Poisson deviance relative to a
constant rate per impression, lower is better) after a guardrail that every elasticity is negative. Each run
logs the elasticities, the naive log-log comparison, the report (``training/elasticity/report.py``: demand
curves per category, markdown + HTML + PNG) and the run date's price recommendations
(``training/elasticity/price_recommendation.py``), and registers the pyfunc (``training/elasticity/pyfunc.py``) as a new
version of ``elasticity``. The champion writes each date's recommendations to the scores partition
(:func:`score_elasticity_day`).
"""

from __future__ import annotations

import datetime as dt
import logging
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from config.models import ElasticityConfig, GateConfig, ModelConfig, ModelsConfig, get_models_config
from config.settings import get_settings
from feature_repo.contract import lake
from feature_repo.contract.schema import CATALOG
from feature_repo.features.customer_history import end_of_day
from feature_repo.features.tables import EVENT_TIMESTAMP, PRODUCT_DEMAND
from training.elasticity import pyfunc as elasticity_pyfunc
from training.elasticity.estimator import EstimatorConfig, NoElasticity, estimate_elasticities, naive_loglog
from training.elasticity.price_recommendation import price_recommendations
from training.elasticity.pyfunc import INPUT_COLUMNS, DemandModel, save_demand_model
from training.elasticity.report import write_report
from training.shared import publish, registry, results
from training.shared.datasets import training_window

logger = logging.getLogger(__name__)

MODEL_NAME = "elasticity"
LABEL = "units"
PREDICTION = "expected_units"
FEATURE_COLUMNS = tuple(PRODUCT_DEMAND.column_names)
# What the drift report compares: the calendar columns drift by construction and are left out.
DRIFT_COLUMNS = tuple(c for c in FEATURE_COLUMNS if c not in ("day_of_week", "day_of_year"))
DEFAULT_CONFIG = ElasticityConfig()


# --- the training set ----------------------------------------------------------------------------------------------
def elasticity_entity_rows(day: dt.date, window_days: int) -> pd.DataFrame:
    """One row per product on sale per day of the window (raw catalog snapshots), stamped at the day's end."""
    raw_root = get_settings().raw_root
    available = set(lake.list_partitions(raw_root, CATALOG.name))
    if day not in available:
        raise FileNotFoundError(f"no raw catalog partition for {day} under {raw_root / CATALOG.name}")
    days = [d for d in training_window(day, window_days) if d in available]
    frames = []
    for d in days:
        products = lake.read_table(raw_root, CATALOG, [d]).column("product_id").to_pylist()
        frames.append(pd.DataFrame({"product_id": products, EVENT_TIMESTAMP: end_of_day(d)}))
    rows = pd.concat(frames, ignore_index=True)
    logger.info("elasticity entity rows: %d product-days over %d days (%s..%s)", len(rows), len(days), days[0], day)
    return rows


def training_set_path(day: dt.date) -> Path:
    return get_settings().training_sets_root / MODEL_NAME / f"dt={day.isoformat()}" / "training_set.parquet"


def build_elasticity_training_set(day: dt.date) -> Path:
    """Write the elasticity training set of ``day`` and return its path.

    ``<lake>/training_sets/elasticity/dt=<day>/training_set.parquet``: every product on sale on every day of the
    training window with that day's ``elasticity_v1`` features (point in time: a day's row is known at its end).
    """
    from feature_repo.store import historical_features

    config = get_models_config().model(MODEL_NAME)
    rows = elasticity_entity_rows(day, config.training_window_days)
    frame = historical_features(rows, config.feature_service)
    if len(frame) != len(rows):
        raise RuntimeError(f"feature retrieval returned {len(frame)} rows for {len(rows)} product-days")
    out = training_set_path(day)
    out.parent.mkdir(parents=True, exist_ok=True)
    frame = frame.sort_values([EVENT_TIMESTAMP, "product_id"], kind="stable").reset_index(drop=True)
    frame.to_parquet(out, index=False, coerce_timestamps="us", allow_truncated_timestamps=True)
    logger.info("elasticity training set for %s: %d rows -> %s", day, len(frame), out)
    return out


def read_training_set(path: Path) -> pd.DataFrame:
    """Read an elasticity training set; rows without features (a day whose partition was not built) are dropped.

    Adds ``date`` (the UTC date the row describes). Integer features become float64 (Feast returns nullable Int64).
    """
    frame = pd.read_parquet(path)
    missing = [c for c in ("product_id", EVENT_TIMESTAMP, *FEATURE_COLUMNS) if c not in frame.columns]
    if missing:
        raise KeyError(f"training set {path} lacks column(s): {', '.join(missing)}")
    for column in FEATURE_COLUMNS:
        if isinstance(frame[column].dtype, pd.api.extensions.ExtensionDtype) and column != "category":
            frame[column] = pd.to_numeric(frame[column]).astype("float64")
    frame["category"] = frame["category"].astype(object)
    without = frame["impressions"].isna()
    if without.any():
        logger.warning("training set %s: %d product-days have no features and are left out", path, int(without.sum()))
        frame = frame.loc[~without]
    frame[EVENT_TIMESTAMP] = pd.to_datetime(frame[EVENT_TIMESTAMP], utc=True)
    frame["date"] = frame[EVENT_TIMESTAMP].dt.date
    return frame.reset_index(drop=True)


@dataclass(frozen=True)
class TimeSplit:
    train: pd.DataFrame
    holdout: pd.DataFrame
    window_start: dt.date
    holdout_start: dt.date
    window_end: dt.date

    def describe(self) -> str:
        return (
            f"train {self.window_start}..{self.holdout_start - dt.timedelta(days=1)} ({len(self.train)} rows), "
            f"holdout {self.holdout_start}..{self.window_end} ({len(self.holdout)})"
        )


def split_by_time(frame: pd.DataFrame, day: dt.date, window_days: int, holdout_days: int) -> TimeSplit:
    """The window's rows before the holdout, and the last ``holdout_days`` (the out-of-time holdout)."""
    if window_days <= holdout_days:
        raise ValueError(f"a {window_days}-day window leaves no training days after {holdout_days} holdout days")
    window_start = day - dt.timedelta(days=window_days - 1)
    holdout_start = day - dt.timedelta(days=holdout_days - 1)
    in_window = (frame["date"] >= window_start) & (frame["date"] <= day)
    rows = frame.loc[in_window].sort_values(["date", "product_id"], kind="stable")
    split = TimeSplit(
        rows.loc[rows["date"] < holdout_start].reset_index(drop=True),
        rows.loc[rows["date"] >= holdout_start].reset_index(drop=True),
        window_start,
        holdout_start,
        day,
    )
    if split.train.empty or split.holdout.empty:
        raise ValueError(f"no train or holdout rows for {day} ({split.describe()}): does the set cover the window?")
    return split


# --- the gate ------------------------------------------------------------------------------------------------------
def forecast_metrics(units: np.ndarray, impressions: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    """Out-of-time forecast error of expected units per product-day (lower is better for every figure).

    * ``poisson_deviance_ratio``: mean Poisson deviance of the forecast / that of a constant rate per impression
      fitted on the same rows (1 = no better than the shop-wide rate; below 1 = the model explains demand);
    * ``poisson_deviance``: the mean Poisson deviance itself (units);
    * ``wape``: sum |units - forecast| / sum units;
    * ``total_ratio_error``: |forecast total / actual total - 1|.
    """
    from sklearn.metrics import mean_poisson_deviance

    units = np.asarray(units, dtype=np.float64)
    shown = np.asarray(impressions, dtype=np.float64) > 0
    if units[shown].sum() <= 0:
        raise ValueError("the holdout sold nothing: the forecast cannot be scored")
    y, n, p = units[shown], np.asarray(impressions, np.float64)[shown], np.asarray(predicted, np.float64)[shown]
    null = n * y.sum() / n.sum()
    p = np.where(np.isfinite(p), p, null)  # groups the model has never seen: the constant rate
    p = np.clip(p, 1e-12, None)
    deviance = float(mean_poisson_deviance(y, p))
    return {
        "poisson_deviance_ratio": deviance / float(mean_poisson_deviance(y, null)),
        "poisson_deviance": deviance,
        "wape": float(np.abs(y - p).sum() / y.sum()),
        "total_ratio_error": float(abs(p.sum() / y.sum() - 1.0)),
    }


def sign_violations(model: DemandModel) -> list[str]:
    """The groups whose elasticity is not negative (demand that rises with price), described for a gate reason."""
    return [
        f"{g} {b:+.3f} [{lo:+.3f}, {hi:+.3f}]"
        for g, b, lo, hi in zip(model.groups, model.elasticity, model.ci_low, model.ci_high, strict=True)
        if not b < 0
    ]


def demand_scorer(gate: GateConfig) -> registry.Scorer:
    """The gate's scorer: ``gate.metric`` of :func:`forecast_metrics` on the holdout, after the sign guardrail.

    A model with a non-negative elasticity is refused (``registry.ScoreRefused``) with the groups in the reason.
    """

    def score(model: Any, holdout: pd.DataFrame) -> float:
        demand_model: DemandModel = model.unwrap_python_model().demand_model
        wrong = sign_violations(demand_model)
        if wrong:
            raise registry.ScoreRefused(f"elasticities must be negative; wrong-signed: {'; '.join(wrong)}")
        inputs = holdout_input(holdout, demand_model.group_columns)
        predicted = np.asarray(model.predict(inputs), dtype=np.float64).reshape(-1)
        metrics = forecast_metrics(holdout[LABEL].to_numpy(), holdout["impressions"].to_numpy(), predicted)
        if gate.metric not in metrics:
            raise KeyError(f"unknown elasticity gate metric {gate.metric!r}; known: {', '.join(metrics)}")
        return metrics[gate.metric]

    return score


def holdout_input(frame: pd.DataFrame, group_columns: tuple[str, ...] | list[str] = ("category",)) -> pd.DataFrame:
    """The model's input columns of ``frame`` (``INPUT_COLUMNS`` and the group columns), typed as its signature."""
    out = frame[[*INPUT_COLUMNS, *group_columns]].copy()
    for column in INPUT_COLUMNS[1:]:
        out[column] = pd.to_numeric(out[column]).astype("float64")
    for column in ("product_id", *group_columns):
        out[column] = out[column].astype(str)
    return out


# --- the stage -----------------------------------------------------------------------------------------------------
@dataclass
class TrainingResult(results.TrainingResult):
    """What ``train_elasticity`` logged and registered; ``to_dict`` travels through XCom."""

    elasticities: dict[str, float]


def estimator_config(config: ElasticityConfig) -> EstimatorConfig:
    return EstimatorConfig(
        group_columns=tuple(config.group_columns),
        n_folds=config.n_folds,
        product_penalty=config.product_penalty,
        prior_units=config.prior_units,
        min_units=config.min_units,
        confidence=config.confidence,
    )


def recommendations_for_day(
    model: DemandModel, frame: pd.DataFrame, day: dt.date, config: ElasticityConfig
) -> pd.DataFrame:
    """Price recommendations for the products on sale on ``day`` (their rows of ``frame``), baseline = the
    ``baseline_days`` up to ``day``."""
    current = frame.loc[frame["date"] == day]
    baseline_start = day - dt.timedelta(days=config.baseline_days - 1)
    baseline = frame.loc[(frame["date"] >= baseline_start) & (frame["date"] <= day)]
    out = price_recommendations(
        model,
        current,
        holdout_input(baseline, model.group_columns),
        config.guardrails,
        draws=config.interval_draws,
        seed=config.seed,
    )
    return out.assign(run_date=day)


def train_elasticity(
    training_set: Path,
    day: dt.date,
    *,
    models_config: ModelsConfig | None = None,
    truth: dict[str, float] | None = None,
) -> TrainingResult:
    """Estimate, evaluate out of time, report, log to MLflow and register a new version of ``elasticity``.

    Args:
        training_set: parquet file of the elasticity training set.
        day: the run date: the last day of the training window.
        models_config: [default: ``config/models.yaml``].
        truth: planted elasticity per group, shown in the report when known (simulated data).
    """
    started = time.perf_counter()
    config = models_config or get_models_config()
    model_cfg: ModelConfig = config.model(MODEL_NAME)
    cfg = model_cfg.elasticity or DEFAULT_CONFIG
    frame = read_training_set(Path(training_set))
    split = split_by_time(frame, day, model_cfg.training_window_days, model_cfg.holdout_days)
    logger.info("elasticity %s: %s", day, split.describe())

    try:
        estimate = estimate_elasticities(split.train, estimator_config(cfg))
    except NoElasticity as err:  # too little demand in the window (a new or tiny shop): skip, keep the champion
        from training.shared.results import NothingToTrain

        raise NothingToTrain(f"elasticity {day}: {err}") from None
    model = estimate.model
    naive = naive_loglog(split.train, tuple(cfg.group_columns), cfg.confidence)
    groups = list(cfg.group_columns)
    holdout = split.holdout[list(dict.fromkeys([*INPUT_COLUMNS, "category", *groups, LABEL, "date"]))].copy()
    metrics = forecast_metrics(
        holdout[LABEL].to_numpy(),
        holdout["impressions"].to_numpy(),
        model.predict_units(holdout_input(holdout, groups)),
    )
    logger.info("elasticity %s holdout: %s", day, ", ".join(f"{k} {v:.4f}" for k, v in metrics.items()))
    recommendations = recommendations_for_day(model, frame, day, cfg)
    wrong = sign_violations(model)
    if wrong:
        logger.warning("elasticity %s: wrong-signed elasticities (the gate will refuse this model): %s", day, wrong)

    reference = split.train.sample(n=min(config.drift.reference_sample_rows, len(split.train)), random_state=cfg.seed)
    reference = reference.sort_index()[[EVENT_TIMESTAMP, *FEATURE_COLUMNS]]

    def log_extra(run: registry.TrainingRun, folder: Path) -> None:
        run.log_metrics({"estimation_seconds": estimate.seconds, "wrong_signed_groups": len(wrong)})
        for g, b, se in zip(model.groups, model.elasticity, model.std_error, strict=True):
            run.log_metrics({f"elasticity.{g}": b, f"elasticity_se.{g}": se})
        for row in naive.itertuples(index=False):
            run.log_metrics({f"naive_elasticity.{row.group}": row.elasticity})
        report = write_report(
            folder / "report",
            f"Price elasticity and price recommendations, {day}",
            model,
            naive,
            recommendations,
            metrics,
            truth=truth,
            data_note=f"Estimated on {split.describe()}.",
        )
        for path in report.values():
            run.log_artifact(path, "report")
        recommendations_file = folder / "price_recommendations.parquet"
        recommendations.to_parquet(recommendations_file, index=False)
        run.log_artifact(recommendations_file, "recommendations")

    published = publish.log_and_register(publish.TrainingRecord(
        model=MODEL_NAME,
        day=day,
        config=model_cfg,
        window_start=split.window_start,
        training_set=training_set,
        device="cpu",  # a closed-form estimator (cross-fitted regressions), no network
        hyperparameters=None,
        params={
            "group_columns": cfg.group_columns,
            "n_folds": cfg.n_folds,
            "product_penalty": cfg.product_penalty,
            "prior_units": cfg.prior_units,
            "confidence": cfg.confidence,
            "guardrails": cfg.guardrails.model_dump(),
            "rows_train": len(split.train),
            "rows_estimated": estimate.rows,
            "rows_holdout": len(split.holdout),
        },
        metrics={f"holdout_{k}": v for k, v in metrics.items()},
        holdout=holdout,
        reference=reference,
        log_extra=log_extra,
        package=publish.ModelPackage(
            python_model=Path(elasticity_pyfunc.__file__),
            write_files=lambda folder: save_demand_model(folder, model),
            signature=registry.tabular_signature(
                string_columns=["product_id", *groups],
                numeric_columns=list(INPUT_COLUMNS[1:]),
                optional_columns=[],
                output_name=PREDICTION,
            ),
            requirements=("pandas", "numpy"),
            input_example=holdout_input(holdout, groups).head(3),
            version_tags={
                "elasticities": ", ".join(f"{g} {b:+.3f}" for g, b in zip(model.groups, model.elasticity, strict=True)),
            },
        ),
    ))
    seconds = time.perf_counter() - started
    logger.info("elasticity %s: run %s, %s v%s, %.1f s", day, published.run_id, MODEL_NAME, published.version, seconds)
    return TrainingResult(
        run_id=published.run_id,
        model_name=MODEL_NAME,
        model_version=published.version,
        model_uri=published.model_uri,
        holdout_uri=published.holdout_uri,
        holdout_path=published.holdout_path,
        metrics=metrics,
        elasticities=dict(zip(model.groups, model.elasticity, strict=True)),
        seconds=seconds,
    )


# --- batch price recommendations ---------------------------------------------------------------------------------
def score_elasticity_day(day: dt.date) -> Path | None:
    """The champion's price recommendations for the products on sale on ``day``; None without a champion.

    The baseline days come from the night's training set when it was built (same Feast rows), else from Feast.

    ``<lake>/scores/elasticity/dt=<day>/scores.parquet``, one row per product (see
    :func:`training.elasticity.price_recommendation.price_recommendations`) plus ``model_name`` and ``model_version``.
    """
    from feature_repo.store import historical_features
    from training.shared.registry import champion, load_model, model_version_uri
    from training.shared.scoring import scores_path

    version = champion(MODEL_NAME)
    if version is None:
        logger.warning("price recommendations %s: skipped, no elasticity champion yet", day)
        return None
    model_cfg = get_models_config().model(MODEL_NAME)
    cfg = model_cfg.elasticity or DEFAULT_CONFIG
    night = training_set_path(day)
    if night.is_file() and model_cfg.training_window_days >= cfg.baseline_days:
        frame = read_training_set(night)  # the night's training set holds the baseline days: no second retrieval
    else:
        features = historical_features(elasticity_entity_rows(day, cfg.baseline_days), model_cfg.feature_service)
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "rows.parquet"
            features.to_parquet(path, index=False, coerce_timestamps="us", allow_truncated_timestamps=True)
            frame = read_training_set(path)
    model = load_model(model_version_uri(MODEL_NAME, version.version)).unwrap_python_model().demand_model
    out = recommendations_for_day(model, frame, day, cfg).assign(
        model_name=MODEL_NAME, model_version=str(version.version)
    )
    target = scores_path(MODEL_NAME, day)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp_target = target.with_suffix(".tmp")
    out.to_parquet(tmp_target, index=False)
    tmp_target.replace(target)
    logger.info(
        "price recommendations for %d products of %s with elasticity v%s (expected profit change %+.0f EUR/day) -> %s",
        len(out),
        day,
        version.version,
        float(out["profit_change"].sum()),
        target,
    )
    return target
