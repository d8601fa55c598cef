"""The conversion training set from Feast: every session of the window, joined point-in-time with ``conversion_v1``."""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path

import pandas as pd
import pyarrow.compute as pc

from config import get_settings
from config.models import get_models_config
from feature_repo.contract import lake
from feature_repo.contract.schema import TABLES
from feature_repo.features.tables import ANONYMOUS_CUSTOMER, EVENT_TIMESTAMP
from training.shared.datasets import training_window

log = logging.getLogger(__name__)


BASKET = "added_to_cart"  # the session added at least one product to the cart: the funnel's first stage


def session_baskets(raw_root: Path, days: list[dt.date]) -> pd.DataFrame:
    """``session_id`` and ``added_to_cart`` (any impression of the session added to the cart) for ``days``."""
    impressions = lake.read_table(raw_root, TABLES["impressions"], days, columns=["session_id", "added_to_cart"])
    grouped = impressions.group_by("session_id").aggregate([("added_to_cart", "any")])
    return grouped.rename_columns(["session_id", BASKET]).to_pandas()


def conversion_entity_rows(day: dt.date, window_days: int) -> pd.DataFrame:
    """One row per session of the window: keys, the session start as event time, the label ``converted`` and the
    funnel's first stage ``added_to_cart`` (from the impressions: labels, not features, so they ride with the keys).

    Sessions of a day whose impressions partition is missing have no basket label; they are left out, with a
    warning that names the days.
    """
    raw_root = get_settings().raw_root
    available = set(lake.list_partitions(raw_root, "sessions"))
    days = [d for d in training_window(day, window_days) if d in available]
    if day not in available:
        raise FileNotFoundError(f"no raw sessions partition for {day} under {raw_root / 'sessions'}")
    with_impressions = set(lake.list_partitions(raw_root, "impressions"))
    missing = [d for d in days if d not in with_impressions]
    if missing:
        log.warning("no impressions partition for %s: their sessions have no basket label and are left out",
                    ", ".join(map(str, missing)))
        days = [d for d in days if d in with_impressions]
        if day not in days:
            raise FileNotFoundError(f"no raw impressions partition for {day} under {raw_root / 'impressions'}")
    sessions = lake.read_table(raw_root, TABLES["sessions"], days).select(
        ["session_id", "customer_id", "started_at", "converted"]
    )
    frame = sessions.to_pandas().merge(session_baskets(raw_root, days), on="session_id", how="left")
    frame[BASKET] = frame[BASKET].fillna(False).astype(bool)  # a session without an impression has no basket
    frame["customer_id"] = frame["customer_id"].fillna(ANONYMOUS_CUSTOMER)
    frame = frame.rename(columns={"started_at": EVENT_TIMESTAMP})
    log.info(
        "conversion entity rows: %d sessions over %d days (%s..%s), base rate %.4f, basket rate %.4f",
        len(frame),
        len(days),
        days[0],
        days[-1],
        float(pc.mean(sessions["converted"].cast("int8")).as_py() or 0.0),
        float(frame[BASKET].mean()),
    )
    return frame


def build_conversion_training_set(day: dt.date) -> Path:
    """Write the conversion training set of ``day`` and return its path.

    ``<lake>/training_sets/conversion/dt=<day>/training_set.parquet``: every session of the training window
    with the ``conversion_v1`` features as they were known at the session's start (point-in-time correct).
    """
    from feature_repo.store import historical_features

    config = get_models_config().model("conversion")
    entity_rows = conversion_entity_rows(day, config.training_window_days)
    frame = historical_features(entity_rows, config.feature_service)
    if len(frame) != len(entity_rows):
        raise RuntimeError(f"feature retrieval returned {len(frame)} rows for {len(entity_rows)} sessions")
    out = get_settings().training_sets_root / "conversion" / f"dt={day.isoformat()}" / "training_set.parquet"
    out.parent.mkdir(parents=True, exist_ok=True)
    frame = frame.sort_values([EVENT_TIMESTAMP, "session_id"], kind="stable").reset_index(drop=True)
    frame.to_parquet(out, index=False, coerce_timestamps="us", allow_truncated_timestamps=False)
    log.info("conversion training set for %s: %d rows, %d columns -> %s", day, len(frame), frame.shape[1], out)
    return out
