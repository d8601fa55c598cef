"""The planted relevance of shown items, for checking a ranking model against the simulator's truth.

``_truth/segment_relevance.parquet`` holds the true relevance (click probability when examined) per customer
segment and product; ``_truth/customers.parquet`` the segment of each registered customer. Anonymous sessions
belong to ``world.ANONYMOUS_SEGMENT``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from feature_repo.contract import lake
from feature_repo.contract.schema import TABLES
from simulator import world as w


def planted_relevance(items: pd.DataFrame, raw_root: Path) -> np.ndarray:
    """True relevance per row of ``items`` (columns ``session_id``, ``product_id``, ``shown_at``), float64."""
    truth = Path(raw_root) / "_truth"
    relevance = pd.read_parquet(truth / "segment_relevance.parquet")
    segments = pd.read_parquet(truth / "customers.parquet", columns=["customer_id", "segment"])
    days = sorted({d for d in pd.to_datetime(items["shown_at"], utc=True).dt.date})
    sessions = lake.read_table(Path(raw_root), TABLES["sessions"], days).select(["session_id", "customer_id"])
    frame = items[["session_id", "product_id"]].merge(sessions.to_pandas(), on="session_id", how="left")
    frame = frame.merge(segments, on="customer_id", how="left")
    frame["segment"] = frame["segment"].fillna(w.ANONYMOUS_SEGMENT)
    frame = frame.merge(relevance, on=["segment", "product_id"], how="left")
    if frame["relevance"].isna().any():
        raise KeyError(f"{int(frame['relevance'].isna().sum())} items have no planted relevance")
    return frame["relevance"].to_numpy(np.float64)


def planted_position_bias(raw_root: Path) -> np.ndarray:
    """The planted examination probability by 1-based position (``truth.json`` ranking.position_bias)."""
    truth = json.loads((Path(raw_root) / "_truth" / "truth.json").read_text())
    return np.asarray(truth["ranking"]["position_bias"]["values"], dtype=np.float64)


__all__ = ["planted_position_bias", "planted_relevance"]
