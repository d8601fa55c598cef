"""The promotion model's training set: every offer with a closed 10-week window, its outcome, and the customer's
history as Feast knew it when the offer was sent.

``<lake>/training_sets/promotion/dt=<R>/training_set.parquet``, one row per offer (randomized and policy ones;
the model trains on the randomized ones): the columns of :mod:`feature_repo.features.promotion_outcomes`
(built by Spark) plus the ``promotion_v1`` features (``customer_history``) joined point in time at
``offered_at`` (the row of the day before the offer: offers go out in the morning, a day's history row is
stamped at its end). ``event_timestamp`` is ``offered_at``.

Labels lag by the outcome window: on run date R only offers made at least ``outcome_window_days`` (70) days
before R are in the set. On the demo lake (2026-01-01..04-30) the nightly runs of 04-24..04-30 train on the
offers of 2026-01-11 (the first campaign) to 02-13..02-19; the offers after that are still in their window.
"""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path

import pandas as pd

from config import get_settings
from config.models import PromotionConfig, get_models_config
from feature_repo.features.tables import EVENT_TIMESTAMP

log = logging.getLogger(__name__)

MODEL_NAME = "promotion"


def promotion_config() -> PromotionConfig:
    config = get_models_config().model(MODEL_NAME).promotion
    if config is None:
        raise KeyError(f"config/models.yaml: model {MODEL_NAME!r} has no 'promotion' block")
    return config


def offers_window_start(day: dt.date, training_window_days: int, outcome_window_days: int) -> dt.date:
    """First offer date of the training set of ``day``: ``training_window_days`` of offers whose window closed."""
    return day - dt.timedelta(days=outcome_window_days + training_window_days - 1)


def offer_outcome_rows(day: dt.date, *, raw_root: Path | None = None) -> pd.DataFrame:
    """The offers complete on ``day`` with their outcomes, computed by the Spark job (one session, stopped after)."""
    from feature_repo.features.promotion_outcomes import offer_outcomes, outcome_days
    from feature_repo.features.spark_session import spark_session
    from training.pipeline import NothingToTrain

    model = get_models_config().model(MODEL_NAME)
    config = promotion_config()
    raw_root = raw_root or get_settings().raw_root
    offers_from = offers_window_start(day, model.training_window_days, config.outcome_window_days)
    try:
        outcome_days(raw_root, day, config.outcome_window_days, offers_from)  # before Spark starts
    except ValueError as err:
        raise NothingToTrain(f"promotion {day}: {err}") from None
    with spark_session(f"promotion-outcomes-{day}") as spark:
        frame = offer_outcomes(spark, raw_root, day, config.outcome_window_days, offers_from).toPandas()
    frame["offered_at"] = pd.to_datetime(frame["offered_at"], utc=True)
    frame["expires_at"] = pd.to_datetime(frame["expires_at"], utc=True)
    return frame.sort_values(["offered_at", "offer_id"], kind="stable").reset_index(drop=True)


def build_promotion_training_set(day: dt.date) -> Path:
    """Write the promotion training set of ``day`` (see the module docstring) and return its path."""
    from feature_repo.store import historical_features

    model = get_models_config().model(MODEL_NAME)
    outcomes = offer_outcome_rows(day)
    entity_rows = outcomes.assign(**{EVENT_TIMESTAMP: outcomes["offered_at"]})
    frame = historical_features(entity_rows, model.feature_service)
    if len(frame) != len(entity_rows):
        raise RuntimeError(f"feature retrieval returned {len(frame)} rows for {len(entity_rows)} offers")
    missing = int(frame["days_since_signup"].isna().sum())
    if missing:
        # no customer_history row the day before the offer: the features run did not cover that date
        log.warning("promotion %s: %d of %d offers have no customer_history row at their offer time", day, missing,
                    len(frame))
    out = get_settings().training_sets_root / MODEL_NAME / f"dt={day.isoformat()}" / "training_set.parquet"
    out.parent.mkdir(parents=True, exist_ok=True)
    frame = frame.sort_values([EVENT_TIMESTAMP, "offer_id"], kind="stable").reset_index(drop=True)
    frame.to_parquet(out, index=False, coerce_timestamps="us", allow_truncated_timestamps=False)
    counts = frame.groupby("assignment").size().to_dict()
    log.info(
        "promotion training set for %s: %d offers (%s) made %s..%s -> %s",
        day, len(frame), counts, frame["offered_at"].min().date(), frame["offered_at"].max().date(), out,
    )
    return out
