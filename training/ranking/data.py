"""The ranking training set: the window's lists with graded labels, position propensities and ``ranking_v1`` features.

One row per impression (a product at a position of a list) of the ``training_window_days`` up to the run date:
``list_id``, ``session_id``, ``list_type``, ``ranker``, ``position``, ``product_id``, ``price_shown``,
``shown_at``, the graded label ``grade`` (impression 0, click 1, add to cart 2, checkout 3, purchase 4: the
furthest step reached), ``propensity`` (the examination probability of the row's position, estimated from the
randomized lists of the days before the holdout) and the ``product_ranking`` features as known when the list was
shown (Feast, point in time).

Point in time, cheaply: ``product_ranking`` rows are stamped at the end of their run date, so a list shown at any
moment of date d sees exactly the row of d-1. The entity rows therefore carry ``event_timestamp`` = midnight
(UTC) of the shown date, which makes Feast join the same row while only one lookup per (product, date) is sent
instead of one per impression. ``shown_at`` keeps the real time.

Training and validation days keep at most ``ranking.max_lists_per_day`` lists each (chosen by a seeded hash of
``list_id``, the same on every run); holdout days keep every list.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from config import get_settings
from config.models import ModelConfig, RankingConfig, get_models_config
from feature_repo.contract import lake
from feature_repo.contract.schema import TABLES
from feature_repo.features.position_bias import RANDOMIZED_RANKER, PositionPropensities, estimate_propensities
from feature_repo.features.tables import EVENT_TIMESTAMP
from training.shared.datasets import training_window

log = logging.getLogger(__name__)

MODEL_NAME = "ranking"
GRADE = "grade"
PROPENSITY = "propensity"
STAGES = ("clicked", "added_to_cart", "checked_out", "purchased")  # grades 1..4
IMPRESSION_COLUMNS = [
    "list_id", "session_id", "shown_at", "list_type", "ranker", "product_id", "position", "price_shown", *STAGES,
]
PROPENSITIES_FILE = "propensities.json"


def graded_label(frame: pd.DataFrame) -> np.ndarray:
    """The furthest funnel step reached per impression: 0 (none) .. 4 (purchased)."""
    grade = np.zeros(len(frame), dtype=np.int64)
    for value, column in enumerate(STAGES, start=1):
        grade = np.where(frame[column].to_numpy(dtype=bool), value, grade)
    return grade


def propensities_from_impressions(frame: pd.DataFrame) -> PositionPropensities:
    """Position propensities from the randomized lists among ``frame``'s impressions."""
    randomized = frame.loc[frame["ranker"] == RANDOMIZED_RANKER]
    counts = randomized.groupby("position")["clicked"].agg(["size", "sum"]).reset_index()
    if counts.empty:
        raise ValueError("no randomized list among the impressions: position propensities cannot be estimated")
    return estimate_propensities(counts["position"].to_numpy(), counts["size"].to_numpy(), counts["sum"].to_numpy(),
                                 max_position=int(frame["position"].max()) if len(frame) else None)


def sample_lists(list_ids: pd.Series, max_lists: int, seed: int) -> pd.Series:
    """A boolean mask keeping at most ``max_lists`` distinct lists: those with the smallest seeded hash of the id."""
    unique = pd.Series(list_ids.unique())
    if len(unique) <= max_lists:
        return pd.Series(True, index=list_ids.index)
    key = f"ranking{seed:09d}"[:16]  # hash_pandas_object needs a 16-byte key
    hashes = pd.util.hash_pandas_object(unique, index=False, hash_key=key).to_numpy()
    kept = set(unique.to_numpy()[np.argsort(hashes, kind="stable")[:max_lists]])
    return list_ids.isin(kept)


def shown_day(shown_at: pd.Series) -> pd.Series:
    """The UTC midnight of each ``shown_at`` (datetime64 in UTC): a vectorized ``.dt.date``, compared with
    :func:`midnight` of a date instead of Python date objects row by row."""
    return pd.to_datetime(shown_at, utc=True).dt.floor("D")


def midnight(day: dt.date) -> pd.Timestamp:
    return pd.Timestamp(day).tz_localize("UTC")


def read_impressions(day: dt.date, window_days: int) -> pd.DataFrame:
    """The impressions of the ``window_days`` ending ``day`` with ``grade`` and the Feast ``event_timestamp``."""
    raw_root = get_settings().raw_root
    available = set(lake.list_partitions(raw_root, "impressions"))
    if day not in available:
        raise FileNotFoundError(f"no raw impressions partition for {day} under {raw_root / 'impressions'}")
    days = [d for d in training_window(day, window_days) if d in available]
    frame = lake.read_table(raw_root, TABLES["impressions"], days).select(IMPRESSION_COLUMNS).to_pandas()
    frame[GRADE] = graded_label(frame)
    return frame.assign(**{EVENT_TIMESTAMP: shown_day(frame["shown_at"]).astype("datetime64[ns, UTC]")})


def window_propensities(holdout_start: dt.date, window_days: int) -> PositionPropensities:
    """Propensities from the randomized lists of the ``window_days`` before ``holdout_start`` (as far as the lake goes).

    Every list of those days counts, before any sampling: the deep positions need all the randomized lists.
    """
    raw_root = get_settings().raw_root
    last = holdout_start - dt.timedelta(days=1)
    available = set(lake.list_partitions(raw_root, "impressions"))
    days = [d for d in training_window(last, window_days) if d in available]
    if not days:
        raise FileNotFoundError(f"no raw impressions before {holdout_start} to estimate position propensities from")
    table = lake.read_table(raw_root, TABLES["impressions"], days).select(["ranker", "position", "clicked"])
    frame = table.to_pandas()
    return propensities_from_impressions(frame)


def ranking_entity_rows(day: dt.date, model: ModelConfig) -> tuple[pd.DataFrame, PositionPropensities]:
    """The sampled impressions of the training window ending ``day``, with labels and propensities.

    Propensities are estimated from the randomized lists of the ``ranking.propensity_window_days`` before the
    holdout (:func:`window_propensities`) and attached per row as ``propensity``.
    """
    cfg: RankingConfig = model.ranking or RankingConfig()
    frame = read_impressions(day, model.training_window_days)
    shown_date = frame[EVENT_TIMESTAMP]  # the shown date's UTC midnight
    holdout_start = day - dt.timedelta(days=model.holdout_days - 1)
    before_holdout = (shown_date < midnight(holdout_start)).to_numpy()
    if not before_holdout.any():
        raise ValueError(f"the ranking window of {day} has no day before the holdout (from {holdout_start})")
    propensities = window_propensities(holdout_start, cfg.propensity_window_days)
    frame[PROPENSITY] = propensities.at(frame["position"].to_numpy())
    seed = int(model.hyperparameters.get("seed", 7))
    keep = np.ones(len(frame), dtype=bool)
    for d in shown_date[before_holdout].unique():
        on_day = (shown_date == d).to_numpy()
        keep[on_day] = sample_lists(frame.loc[on_day, "list_id"], cfg.max_lists_per_day, seed).to_numpy()
    frame = frame.loc[keep].drop(columns=list(STAGES[:-1])).reset_index(drop=True)  # grade keeps them
    log.info(
        "ranking entity rows: %d impressions in %d lists (%s..%s), %.1f%% of lists with a positive",
        len(frame), frame["list_id"].nunique(), shown_date.min().date(), day,
        100.0 * frame.groupby("list_id")[GRADE].max().gt(0).mean(),
    )
    return frame, propensities


def build_ranking_training_set(day: dt.date) -> Path:
    """Write the ranking training set of ``day`` (and its propensities beside it); return the parquet path.

    ``<lake>/training_sets/ranking/dt=<day>/training_set.parquet`` and ``propensities.json``.
    """
    from feature_repo.store import historical_features

    model = get_models_config().model(MODEL_NAME)
    entity_rows, propensities = ranking_entity_rows(day, model)
    frame = historical_features(entity_rows, model.feature_service)
    if len(frame) != len(entity_rows):
        raise RuntimeError(f"feature retrieval returned {len(frame)} rows for {len(entity_rows)} impressions")
    out = get_settings().training_sets_root / MODEL_NAME / f"dt={day.isoformat()}" / "training_set.parquet"
    out.parent.mkdir(parents=True, exist_ok=True)
    frame = frame.sort_values(["shown_at", "list_id", "position"], kind="stable").reset_index(drop=True)
    frame.to_parquet(out, index=False, coerce_timestamps="us", allow_truncated_timestamps=False)
    (out.parent / PROPENSITIES_FILE).write_text(json.dumps(propensities.to_dict(), indent=2) + "\n")
    log.info("ranking training set for %s: %d rows, %d columns -> %s", day, len(frame), frame.shape[1], out)
    return out
