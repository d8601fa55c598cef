"""A conversion training set built straight from raw sessions with pandas, standing in for Feast in model tests.

Columns as ``get_historical_features`` returns them for ``conversion_v1``: ids, ``event_timestamp``
(= started_at), the label and the basket stage (``added_to_cart``, from the impressions), the ``session_kpis``
features and the ``customer_history`` columns. A few history columns are derived from the customer's sessions
of earlier days (so the null/non-null path of the preprocessing is exercised); the
rest stay null, as for a customer without history.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from config.models import ModelsConfig, read_models_config
from feature_repo.contract.lake import read_table
from feature_repo.contract.schema import IMPRESSIONS, KPI_NAMES, SESSIONS
from feature_repo.features.tables import ANONYMOUS_CUSTOMER, CUSTOMER_HISTORY


def conversion_training_set(raw_root: Path) -> pd.DataFrame:
    sessions = read_table(raw_root, SESSIONS).to_pandas()
    anonymous = sessions["customer_id"].isna()
    frame = pd.DataFrame(
        {
            "session_id": sessions["session_id"],
            "customer_id": sessions["customer_id"].fillna(ANONYMOUS_CUSTOMER),
            "event_timestamp": sessions["started_at"],
            "converted": sessions["converted"].astype(bool),
            "device": sessions["device"],
            "channel": sessions["channel"],
            "is_anonymous": anonymous.astype("int64"),
            **{k: sessions[k].astype("float64") for k in KPI_NAMES},
        }
    )
    impressions = read_table(raw_root, IMPRESSIONS, columns=["session_id", "added_to_cart"]).to_pandas()
    baskets = impressions.groupby("session_id")["added_to_cart"].any()
    frame["added_to_cart"] = frame["session_id"].map(baskets).fillna(False).astype(bool)
    for column in CUSTOMER_HISTORY.columns:
        frame[column.name] = None if column.dtype == "string" else np.nan

    # History up to the previous day: per customer and day, cumulative sessions and orders of the days before.
    known = frame.loc[~anonymous, ["customer_id", "event_timestamp", "converted"]].copy()
    known["day"] = known["event_timestamp"].dt.floor("D")
    daily = known.groupby(["customer_id", "day"]).agg(sessions=("converted", "size"), orders=("converted", "sum"))
    daily = daily.sort_index()
    prior = daily.groupby(level="customer_id").cumsum() - daily  # strictly before the day
    prior = prior.reset_index()
    history = known.reset_index().merge(prior, on=["customer_id", "day"], how="left").set_index("index")
    frame.loc[history.index, "sessions_30d"] = history["sessions"].astype("float64")
    frame.loc[history.index, "orders_total"] = history["orders"].astype("float64")
    rate = history["orders"] / history["sessions"].where(history["sessions"] > 0)
    frame.loc[history.index, "conversion_rate_30d"] = rate
    return frame.sort_values(["event_timestamp", "session_id"]).reset_index(drop=True)


def write_conversion_training_set(raw_root: Path, out: Path) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    conversion_training_set(raw_root).to_parquet(out, index=False)
    return out


def small_models_config() -> ModelsConfig:
    """The versioned config with a quick search (two architectures, few epochs) and a small reference sample."""
    config = read_models_config()
    conversion = config.model("conversion")
    hyperparameters = {
        **conversion.hyperparameters,
        "hidden_sizes": [[32, 16], [16]],
        "learning_rate": 0.003,
        "batch_size": 256,
        "max_epochs": 8,
        "patience": 2,
    }
    return config.model_copy(
        update={
            "models": {
                **config.models,
                "conversion": conversion.model_copy(update={"hyperparameters": hyperparameters}),
            },
            "drift": config.drift.model_copy(update={"reference_sample_rows": 500}),
        }
    )
