"""Promotion uplift model v1: the incremental 10-week profit of each coupon against none, per customer.

Input: the training set of :mod:`training.promotion.data` (one row per offer with a closed 10-week window, its
outcome and the ``promotion_v1`` features as of the offer). Only **randomized** offers are used: the shop's own
policy is a deterministic function of the customer's history (frequent buyers get 10%, lapsed ones 20%, the rest
5% or free shipping) and never sends "none", so policy offers have no overlap with the control arm and no
propensity weighting could recover the no-coupon outcome for them.

Split: customers, not offers, are held out (a hash of ``customer_id`` against ``promotion.holdout_share``), so a
customer's offers are all on one side; the held-out randomized offers are what the report, the Qini/AUUC figures
and the gate use. Within the training customers a second hash sets a validation share aside for early stopping.

Model: :class:`training.promotion.pyfunc.UpliftNet` (shared trunk, a no-coupon head and one uplift head per
coupon), fitted with the shared loop on the observed arm's profit (standardized; Huber loss, as 10-week profit is
heavy-tailed), an ensemble of ``promotion.ensemble`` seeds averaged. The coupon choice (tolerance, the cheapest
among tied coupons, none when none pays) travels with the model; the cost order is the mean discount per offer of
each coupon in the training offers. Logged as a pyfunc (models-from-code) and registered as ``promotion``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from config.models import GateConfig, ModelConfig, ModelsConfig, PromotionConfig, get_models_config
from feature_repo.features.tables import CUSTOMER_HISTORY, EVENT_TIMESTAMP
from training.promotion import pyfunc as promotion_pyfunc
from training.promotion.data import offers_window_start
from training.promotion.pyfunc import NO_COUPON, CouponChoice, PromotionUpliftModel, UpliftNet, UpliftPreprocessor
from training.promotion.report import evaluate_policy, write_report
from training.shared import nets, publish, registry, results
from training.shared.devices import select_device
from training.shared.trainer import LoopConfig, TrainingData, expand_grid, fit

logger = logging.getLogger(__name__)

MODEL_NAME = "promotion"
OUTCOME = "margin_10w"  # profit after discount cost over the 10 weeks, EUR
ARM = "promotion_id"
ID_COLUMNS = ("offer_id", "customer_id", EVENT_TIMESTAMP)
NUMERIC_FEATURES = tuple(c.name for c in CUSTOMER_HISTORY.columns if c.dtype != "string")
CATEGORICAL_FEATURES = tuple(c.name for c in CUSTOMER_HISTORY.columns if c.dtype == "string")  # acquisition_channel
FEATURE_COLUMNS = (*NUMERIC_FEATURES, *CATEGORICAL_FEATURES)
HOLDOUT_COLUMNS = (*ID_COLUMNS, ARM, "assignment", OUTCOME, "discount_10w", "revenue_10w", "orders_10w",
                   "bought_again_without_coupon", *FEATURE_COLUMNS)
MODEL_KEYS = {"hidden_sizes", "learning_rate", "weight_decay", "dropout", "huber_delta", "batch_size", "max_epochs",
              "patience", "seed"}
VALIDATION_SHARE = 0.2


@dataclass
class PromotionTrainingResult(results.TrainingResult):
    """What ``train_promotion`` logged and registered; ``to_dict`` travels through XCom."""

    hyperparameters: dict[str, Any]
    device: str
    report_files: dict[str, str] = field(default_factory=dict)


# --- data ----------------------------------------------------------------------------------------------------------
def read_training_set(path: Path) -> pd.DataFrame:
    """Read a promotion training set and check its columns; integer features become float64."""
    frame = pd.read_parquet(path)
    missing = [c for c in (*ID_COLUMNS, ARM, "assignment", OUTCOME) if c not in frame.columns]
    if missing:
        raise KeyError(f"promotion training set {path} lacks column(s): {', '.join(missing)}")
    for column in NUMERIC_FEATURES:
        frame[column] = pd.to_numeric(frame[column]).astype("float64") if column in frame else np.nan
    for column in CATEGORICAL_FEATURES:  # a set written before the column existed: the model's unknown bucket
        frame[column] = frame[column].astype(object) if column in frame else None
    frame[EVENT_TIMESTAMP] = pd.to_datetime(frame[EVENT_TIMESTAMP], utc=True)
    return frame


def customer_share(customer_ids: pd.Series, salt: str) -> np.ndarray:
    """A stable pseudo-random number in [0, 1) per customer (sha256 of salt + id): same customer, same side."""
    return np.array(
        [int.from_bytes(hashlib.sha256(f"{salt}:{c}".encode()).digest()[:8], "big") / 2**64 for c in customer_ids]
    )


def randomized_offers(frame: pd.DataFrame, coupons: list[str]) -> pd.DataFrame:
    """The randomized offers of known arms whose customer had a history row at the offer time."""
    rows = frame[(frame["assignment"] == "random") & frame[ARM].isin([NO_COUPON, *coupons])]
    no_history = rows["days_since_signup"].isna()
    if len(rows) and no_history.all():
        raise ValueError(
            f"none of the {len(rows)} randomized offers has a customer_history row at its offer time: the feature "
            "history does not reach back to the offers (load it from the first offer date: history_from)"
        )
    if no_history.any():
        logger.warning("promotion: %d randomized offers without customer history at offer time are left out",
                       int(no_history.sum()))
    return rows.loc[~no_history].reset_index(drop=True)


def split_customers(rows: pd.DataFrame, holdout_share: float) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Train, validation and holdout rows, split by customer (see the module docstring)."""
    holdout = customer_share(rows["customer_id"], "promotion-holdout") < holdout_share
    validation = ~holdout & (customer_share(rows["customer_id"], "promotion-validation") < VALIDATION_SHARE)
    parts = (rows[~holdout & ~validation], rows[validation], rows[holdout])
    for name, part in zip(("train", "validation", "holdout"), parts, strict=True):
        if part[ARM].nunique() < 2 or (part[ARM] == NO_COUPON).sum() == 0:
            raise ValueError(f"the {name} offers hold no control ('none') rows or a single arm: too few offers")
    return tuple(p.reset_index(drop=True) for p in parts)  # type: ignore[return-value]


# --- model ---------------------------------------------------------------------------------------------------------
def arm_index(arms: pd.Series, coupons: list[str]) -> np.ndarray:
    lookup = {NO_COUPON: 0, **{c: i + 1 for i, c in enumerate(coupons)}}
    return arms.map(lookup).to_numpy(np.int64)


def training_data(
    pre: UpliftPreprocessor, rows: pd.DataFrame, coupons: list[str], scale: float, outcome: str = OUTCOME
) -> TrainingData:
    x = torch.from_numpy(pre.transform(rows))
    t = torch.from_numpy(arm_index(rows[ARM], coupons))
    y = torch.from_numpy((rows[outcome].to_numpy(np.float64) / scale).astype(np.float32))
    return TrainingData((x, t), y)


def _loop(hp: dict[str, Any], seed: int) -> LoopConfig:
    return LoopConfig(
        learning_rate=float(hp["learning_rate"]), weight_decay=float(hp.get("weight_decay", 0.0)),
        batch_size=int(hp["batch_size"]), max_epochs=int(hp["max_epochs"]), patience=int(hp["patience"]), seed=seed,
    )


def fit_uplift_model(
    train_rows: pd.DataFrame,
    validation_rows: pd.DataFrame,
    coupons: list[str],
    hyperparameters: dict[str, Any],
    *,
    ensemble: int,
    choice: CouponChoice,
    numeric_columns: list[str],
    categorical_columns: list[str] | None = None,
    outcome: str = OUTCOME,
    device: torch.device | None = None,
) -> tuple[PromotionUpliftModel, dict[str, Any], list[dict[str, Any]]]:
    """Search the grid (first seed), then fit the ensemble with the best point; returns model, choice, candidates.

    Rows carry the features, the randomized arm in ``promotion_id`` and the ``outcome``; generic over both (the
    Hillstrom benchmark fits it to its own columns, spend and conversion).
    """
    device = device or torch.device("cpu")
    pre = UpliftPreprocessor.fit(train_rows, numeric_columns, categorical_columns or [])
    scale = float(np.std(train_rows[outcome].to_numpy(np.float64))) or 1.0
    train = training_data(pre, train_rows, coupons, scale, outcome)
    validation = training_data(pre, validation_rows, coupons, scale, outcome)
    candidates: list[dict[str, Any]] = []
    best: tuple[dict[str, Any], float, nn.Module] | None = None
    grid = expand_grid(hyperparameters, nested=("hidden_sizes",))
    for i, hp in enumerate(grid, start=1):
        unknown = set(hp) - MODEL_KEYS
        if unknown:
            raise KeyError(f"unknown promotion hyperparameter(s) {sorted(unknown)}; known: {sorted(MODEL_KEYS)}")
        sizes, dropout = [int(s) for s in hp["hidden_sizes"]], float(hp.get("dropout", 0.0))
        result = fit(
            lambda sizes=sizes, dropout=dropout: UpliftNet(pre.n_features, len(coupons), sizes, dropout),
            train, validation, nn.HuberLoss(delta=float(hp.get("huber_delta", 1.0))), _loop(hp, int(hp["seed"])),
            device, label=f"promotion[{i}/{len(grid)}]",
        )
        candidates.append({"hyperparameters": hp, "val_loss": result.best_val_loss, "best_epoch": result.best_epoch})
        if best is None or result.best_val_loss < best[1]:
            best = (hp, result.best_val_loss, result.model)
    assert best is not None
    hp, _, first = best
    networks = [first.to("cpu").eval()]
    sizes, dropout = [int(s) for s in hp["hidden_sizes"]], float(hp.get("dropout", 0.0))
    for member in range(1, ensemble):
        # a bootstrap resample of the training offers: the members' spread is the estimate's sampling uncertainty
        resample = torch.from_numpy(np.random.default_rng(int(hp["seed"]) + member).integers(0, len(train), len(train)))
        member_data = TrainingData(tuple(x[resample] for x in train.inputs), train.target[resample])
        result = fit(
            lambda: UpliftNet(pre.n_features, len(coupons), sizes, dropout), member_data, validation,
            nn.HuberLoss(delta=float(hp.get("huber_delta", 1.0))), _loop(hp, int(hp["seed"]) + member), device,
            label=f"promotion ensemble {member + 1}/{ensemble}",
        )
        networks.append(result.model.to("cpu").eval())
    return PromotionUpliftModel(pre, networks, scale, choice), hp, candidates


def cost_order(rows: pd.DataFrame, coupons: list[str]) -> tuple[list[str], dict[str, float]]:
    """Coupons from the cheapest: mean discount given per offer of each coupon (EUR, 10 weeks) in ``rows``."""
    cost = {c: float(rows.loc[rows[ARM] == c, "discount_10w"].mean()) for c in coupons}
    cost = {c: (v if np.isfinite(v) else float("inf")) for c, v in cost.items()}
    return sorted(coupons, key=lambda c: (cost[c], coupons.index(c))), cost


# --- the stage -----------------------------------------------------------------------------------------------------
def train_promotion(
    training_set: Path, day: dt.date, *, models_config: ModelsConfig | None = None, device: str | None = None
) -> PromotionTrainingResult:
    """Train on the randomized offers, evaluate on the held-out customers, log to MLflow, register ``promotion``."""
    started = time.perf_counter()
    config = models_config or get_models_config()
    model_cfg: ModelConfig = config.model(MODEL_NAME)
    promo: PromotionConfig = model_cfg.promotion or PromotionConfig(coupons=[])
    if not promo.coupons:
        raise KeyError(f"config: model {MODEL_NAME!r} needs a promotion block with its coupons")
    coupons = list(promo.coupons)
    torch_device = select_device(device)

    frame = read_training_set(Path(training_set))
    rows = randomized_offers(frame, coupons)
    train_rows, validation_rows, holdout_rows = split_customers(rows, promo.holdout_share)
    order, costs = cost_order(pd.concat([train_rows, validation_rows]), coupons)
    choice = CouponChoice(tuple(coupons), tuple(order), promo.policy.min_incremental_profit, promo.policy.tolerance,
                          promo.policy.confidence_z)
    model, chosen, candidates = fit_uplift_model(
        train_rows, validation_rows, coupons, dict(model_cfg.hyperparameters), ensemble=promo.ensemble,
        choice=choice, numeric_columns=list(NUMERIC_FEATURES), categorical_columns=list(CATEGORICAL_FEATURES),
        device=torch_device,
    )
    popular = most_popular_coupon(frame, coupons)
    evaluation = evaluate_policy(
        model.predict_frame(holdout_rows), holdout_rows[OUTCOME].to_numpy(), holdout_rows[ARM].to_numpy(), coupons,
        popular=popular, n_bootstrap=promo.n_bootstrap, seed=int(chosen["seed"]),
    )
    metrics = evaluation.metrics()
    logger.info("promotion %s holdout (%d offers): %s", day, len(holdout_rows),
                ", ".join(f"{k} {v:.4f}" for k, v in metrics.items()))
    holdout = holdout_rows[[c for c in HOLDOUT_COLUMNS if c in holdout_rows.columns]]
    offered = frame["offered_at"] if "offered_at" in frame else frame[EVENT_TIMESTAMP]

    def log_extra(run: registry.TrainingRun, folder: Path) -> dict[str, str]:
        run.log_metrics({f"mean_discount_per_offer.{c}": v for c, v in costs.items() if np.isfinite(v)})
        run.log_dict({"candidates": candidates}, "search/candidates.json")
        report = write_report(evaluation, folder / "report", f"Promotion uplift model, {day}", coupons=coupons)
        return {name: run.log_artifact(path, "report") for name, path in report.items()}

    hidden_sizes, dropout = [int(s) for s in chosen["hidden_sizes"]], float(chosen.get("dropout", 0.0))
    published = publish.log_and_register(publish.TrainingRecord(
        model=MODEL_NAME,
        day=day,
        config=model_cfg,
        window_start=offers_window_start(day, model_cfg.training_window_days, promo.outcome_window_days),
        training_set=training_set,
        device=str(torch_device),
        hyperparameters=chosen,
        tags={
            "offers_from": offered.min().date().isoformat(),
            "offers_to": offered.max().date().isoformat(),
            "most_popular_coupon": popular,
        },
        params={
            "coupons": coupons, "cost_order": order, "ensemble": promo.ensemble,
            "holdout_share": promo.holdout_share, "outcome_window_days": promo.outcome_window_days,
            "policy": promo.policy.model_dump(), "rows_offers": len(frame), "rows_randomized": len(rows),
            "rows_train": len(train_rows), "rows_validation": len(validation_rows), "rows_holdout": len(holdout_rows),
        },
        metrics=metrics,
        holdout=holdout,
        reference=train_rows[[EVENT_TIMESTAMP, *FEATURE_COLUMNS]],
        log_extra=log_extra,
        package=publish.ModelPackage(
            python_model=Path(promotion_pyfunc.__file__),
            write_files=lambda folder: promotion_pyfunc.save_model_files(folder, model, hidden_sizes, dropout),
            signature=registry.frame_signature(
                numeric_columns=list(NUMERIC_FEATURES),
                string_columns=list(CATEGORICAL_FEATURES),
                optional_columns=[c.name for c in CUSTOMER_HISTORY.columns if c.nullable],
                outputs={**{f"uplift_{c}": "double" for c in coupons}, "best_coupon": "string",
                         "expected_incremental_profit": "double"},
            ),
            requirements=("torch", "pandas", "numpy"),
            input_example=holdout[list(FEATURE_COLUMNS)].head(3),
            code_paths=(nets.CODE_PATH,),
            version_tags={"holdout_policy_auuc": f"{metrics['policy_auuc']:.6f}"},
        ),
    ))
    seconds = time.perf_counter() - started
    logger.info("promotion %s: run %s, %s v%s, %.1f s", day, published.run_id, MODEL_NAME, published.version, seconds)
    return PromotionTrainingResult(
        run_id=published.run_id, model_name=MODEL_NAME, model_version=published.version,
        model_uri=published.model_uri, holdout_uri=published.holdout_uri, holdout_path=published.holdout_path,
        metrics=metrics, hyperparameters=chosen,
        device=str(torch_device), seconds=seconds, report_files=dict(published.extra),
    )


def most_popular_coupon(frame: pd.DataFrame, coupons: list[str]) -> str:
    """The coupon redeemed most often in the training offers (the blanket policy the model is compared with)."""
    if "redeemed" not in frame:
        return coupons[0]
    counts = frame[frame[ARM].isin(coupons)].groupby(ARM)["redeemed"].sum()
    return str(counts.idxmax()) if len(counts) else coupons[0]


def read_holdout(path: Path) -> pd.DataFrame:
    """A holdout written by :func:`train_promotion` (the gate scores challenger and champion on it)."""
    return pd.read_parquet(path)


def gate_scorer(gate: GateConfig) -> registry.Scorer:
    """Score a promotion pyfunc on held-out randomized offers: ``gate.metric`` of :class:`PromotionEvaluation`."""
    config = get_models_config().model(MODEL_NAME).promotion
    coupons = list(config.coupons) if config else []

    def score(model, holdout: pd.DataFrame) -> float:
        predicted = model.predict(registry.model_input(model, holdout))
        evaluation = evaluate_policy(
            pd.DataFrame(predicted), holdout[OUTCOME].to_numpy(), holdout[ARM].to_numpy(), coupons,
            popular=coupons[0], n_bootstrap=0, seed=0,
        )
        return float(evaluation.metrics()[gate.metric])

    return score


# --- by hand -------------------------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> None:
    """``python -m training.promotion.model --date D [--training-set P] [--gate] [--policy]``: the nightly stages
    by hand."""
    import argparse
    import json

    from training.shared import pipeline

    parser = argparse.ArgumentParser(description="Build the promotion training set, train, gate and run the policy.")
    parser.add_argument("--date", required=True, type=dt.date.fromisoformat, help="run date (YYYY-MM-DD)")
    parser.add_argument("--training-set", type=Path, help="an existing training set [default: build it]")
    parser.add_argument("--gate", action="store_true", help="then score challenger and champion and gate")
    parser.add_argument("--policy", action="store_true", help="then run the champion's policy for the date")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    training_set = args.training_set or pipeline.build_training_set(MODEL_NAME, args.date)
    summary: dict[str, Any] = pipeline.train_challenger(MODEL_NAME, training_set, args.date)
    if args.gate:
        summary["gate"] = pipeline.gate_and_promote(MODEL_NAME, summary)
    if args.policy:
        summary["policy_scores"] = pipeline.score_sessions(MODEL_NAME, args.date)
    print(json.dumps(summary, indent=2, sort_keys=True, default=str))


if __name__ == "__main__":
    main()
