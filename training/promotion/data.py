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
import hashlib
import json
import logging
import os
from pathlib import Path

import pandas as pd

from config import get_settings
from config.models import PromotionConfig, get_models_config
from feature_repo.contract import lake
from feature_repo.contract.schema import CATALOG, ORDERS, PROMOTION_OFFERS
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
    """The offers complete on ``day`` with their outcomes, computed by the Spark job, one offer date at a time cached.

    An offer's outcome depends only on its own raw partition and the ``outcome_window_days`` of orders and catalog
    after it, all in the past once its window has closed; so the outcomes of each offer date are kept under
    ``<training_sets>/promotion/outcomes/offer_dt=<d>/`` with a fingerprint of what they were computed from (the
    files of those raw partitions, the window, the Spark job's source) and reused while it matches. Spark (one
    session, stopped after) only runs for offer dates without a valid entry: the shop's campaigns are weekly, so
    most nights reuse every date and start no Spark at all. The rows are those of one Spark run over the whole
    range (an offer date's rows do not depend on which run dates or other offer dates the job covered).
    """
    from feature_repo.features.promotion_outcomes import offer_outcomes, outcome_days
    from training.shared.results import NothingToTrain

    model = get_models_config().model(MODEL_NAME)
    config = promotion_config()
    raw_root = raw_root or get_settings().raw_root
    window = config.outcome_window_days
    offers_from = offers_window_start(day, model.training_window_days, window)
    try:
        days = outcome_days(raw_root, day, window, offers_from)  # before Spark starts
    except ValueError as err:
        raise NothingToTrain(f"promotion {day}: {err}") from None
    offer_dates = sorted(set(lake.list_partitions(raw_root, PROMOTION_OFFERS.name)) & set(days[PROMOTION_OFFERS.name]))
    cache = get_settings().training_sets_root / MODEL_NAME / "outcomes"
    keys = {d: _outcome_key(raw_root, d, window) for d in offer_dates}
    frames = {d: _cached_outcomes(cache, d, keys[d]) for d in offer_dates}
    template = next((f.iloc[:0] for f in frames.values() if f is not None), None)
    for d in [d for d, frame in frames.items() if frame is None and template is not None]:
        if _offer_rows(raw_root, d) == 0:  # a day without a campaign: nothing to label, no Spark needed
            frames[d] = template
            _store_outcomes(cache, d, keys[d], template)
    missing = [d for d, frame in frames.items() if frame is None]
    if missing:
        from feature_repo.features.spark_session import spark_session

        # one job from the first to the last missing offer date; its window closes on the last one's run date
        last = max(missing) + dt.timedelta(days=window)
        with spark_session(f"promotion-outcomes-{day}") as spark:
            computed = offer_outcomes(spark, raw_root, last, window, min(missing)).toPandas()
        computed = _typed(computed)
        by_date = computed["offered_at"].dt.date  # the partition of an offer is the UTC date of offered_at
        for d in missing:
            frames[d] = computed.loc[by_date == d].reset_index(drop=True)
            _store_outcomes(cache, d, keys[d], frames[d])
        log.info("promotion outcomes %s: %d offer dates computed by Spark, %d reused", day, len(missing),
                 len(offer_dates) - len(missing))
    else:
        log.info("promotion outcomes %s: all %d offer dates reused (no Spark)", day, len(offer_dates))
    frame = pd.concat([frames[d] for d in offer_dates], ignore_index=True)
    return frame.sort_values(["offered_at", "offer_id"], kind="stable").reset_index(drop=True)


def _typed(frame: pd.DataFrame) -> pd.DataFrame:
    frame["offered_at"] = pd.to_datetime(frame["offered_at"], utc=True)
    frame["expires_at"] = pd.to_datetime(frame["expires_at"], utc=True)
    return frame


def _outcome_key(raw_root: Path, offer_date: dt.date, window_days: int) -> str:
    """Fingerprint of what the outcomes of ``offer_date`` are computed from: the raw files (name, size, mtime) of
    its offers partition and of the orders and catalog partitions of its window, the window, the job's source."""
    import feature_repo.features.promotion_outcomes as job

    digest = hashlib.sha256(f"window={window_days}\n".encode())
    digest.update(Path(job.__file__).read_bytes())
    window = [offer_date + dt.timedelta(days=i) for i in range(window_days + 1)]
    folders = [lake.partition_dir(raw_root, PROMOTION_OFFERS.name, offer_date)]
    folders += [lake.partition_dir(raw_root, t.name, d) for t in (ORDERS, CATALOG) for d in window]
    for folder in folders:
        files = sorted(folder.iterdir()) if folder.is_dir() else []
        digest.update(f"{folder.parent.name}/{folder.name}:".encode())
        for f in files:
            stat = f.stat()
            digest.update(f"{f.name},{stat.st_size},{stat.st_mtime_ns};".encode())
    return digest.hexdigest()


def _offer_rows(raw_root: Path, offer_date: dt.date) -> int:
    """Rows of a promotion_offers partition, from its parquet footers."""
    import pyarrow.parquet as pq

    folder = lake.partition_dir(raw_root, PROMOTION_OFFERS.name, offer_date)
    files = [f for f in folder.iterdir() if f.suffix == ".parquet" and not f.name.startswith(("_", "."))]
    return sum(pq.read_metadata(f).num_rows for f in files)


def _cached_outcomes(cache: Path, offer_date: dt.date, key: str) -> pd.DataFrame | None:
    folder = cache / f"offer_dt={offer_date.isoformat()}"
    try:
        if json.loads((folder / "key.json").read_text())["key"] != key:
            return None
        return _typed(pd.read_parquet(folder / "outcomes.parquet"))
    except (OSError, ValueError, KeyError):
        return None


def _store_outcomes(cache: Path, offer_date: dt.date, key: str, frame: pd.DataFrame) -> None:
    folder = cache / f"offer_dt={offer_date.isoformat()}"
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f"outcomes.parquet.{os.getpid()}.tmp"  # parallel nights write whole files, never half ones
    frame.to_parquet(tmp, index=False)
    tmp.replace(folder / "outcomes.parquet")
    tmp_key = folder / f"key.json.{os.getpid()}.tmp"
    tmp_key.write_text(json.dumps({"key": key, "offers": len(frame)}) + "\n")
    tmp_key.replace(folder / "key.json")


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
