"""Online features for serving: one Feast online read per request, through ``feature_repo.store`` (our Feast door).

The read never raises to an endpoint: when the online store fails (Redis down, SQLite file gone) the result says
so (``available=False``, with the error) and the endpoint answers from its documented fallback, flags it in the
response and counts it in ``storefront_serving_fallbacks_total``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from feature_repo.features.tables import ANONYMOUS_CUSTOMER, CUSTOMER_HISTORY, PRODUCT_RANKING
from serving.metrics import ServingMetrics

log = logging.getLogger(__name__)

CUSTOMER_HISTORY_REFS: tuple[str, ...] = tuple(f"{CUSTOMER_HISTORY.name}:{c}" for c in CUSTOMER_HISTORY.column_names)
PRODUCT_RANKING_REFS: tuple[str, ...] = tuple(f"{PRODUCT_RANKING.name}:{c}" for c in PRODUCT_RANKING.column_names)
ONLINE_STORE_DOWN = "online_store_unavailable"


@dataclass(frozen=True)
class OnlineRead:
    """The answer of one online read: a frame (one row per entity row, in order) or the reason there is none."""

    frame: pd.DataFrame | None
    seconds: float
    error: str | None = None

    @property
    def available(self) -> bool:
        return self.frame is not None


class OnlineFeatures:
    """Reads the Feast online store of the current profile (SQLite embedded, Redis in production)."""

    def __init__(self, metrics: ServingMetrics, probe_ttl_seconds: float = 1.0) -> None:
        self._metrics = metrics
        self._probe_ttl = probe_ttl_seconds
        self._probe: tuple[float, str | None] | None = None
        self._probe_lock = threading.Lock()

    def read(self, refs: Sequence[str], entity_rows: Sequence[Mapping[str, Any]]) -> OnlineRead:
        """One online read of the features ``refs`` for every entity row (the rows may mix entities' keys)."""
        from feature_repo.store import online_features

        began = time.perf_counter()
        try:
            frame = online_features(list(refs), list(entity_rows))
        except Exception as err:  # any store failure becomes a fallback, never a 500
            self._metrics.online_store_errors.labels(type(err).__name__).inc()
            log.warning("online store read failed: %s: %s", type(err).__name__, err)
            return OnlineRead(None, time.perf_counter() - began, f"{type(err).__name__}: {err}")
        return OnlineRead(frame, time.perf_counter() - began)

    def probe(self) -> str | None:
        """None when the online store answers a one-row read, else the error; cached for ``probe_ttl_seconds``."""
        with self._probe_lock:
            now = time.monotonic()
            if self._probe is not None and now - self._probe[0] < self._probe_ttl:
                return self._probe[1]
            result = self.read(CUSTOMER_HISTORY_REFS[:1], [{CUSTOMER_HISTORY.key: ANONYMOUS_CUSTOMER}])
            self._probe = (time.monotonic(), result.error)
            return result.error

    def warm_up(self) -> None:
        """Build the Feast store and its registry cache now, so that the first request does not pay for it."""
        error = self.probe()
        if error:
            log.warning("online store not reachable at start-up: %s", error)


def known_rows(frame: pd.DataFrame, feature_columns: Sequence[str]) -> pd.Series:
    """True for the rows where the online store holds any of ``feature_columns`` (an entity it knows)."""
    return frame[list(feature_columns)].notna().any(axis=1)


def customer_history(
    features: OnlineFeatures, customer_id: str | None
) -> tuple[str, dict[str, Any], float, str | None]:
    """The customer's ``customer_history`` row from one online read.

    Returns (status, values, seconds, fallback): status ``found``, ``unknown_customer`` (no row: scored as a
    customer without history), ``anonymous`` (no read) or ``unavailable`` (the store failed; fallback set);
    values map every history column to its value or None.
    """
    values: dict[str, Any] = dict.fromkeys(CUSTOMER_HISTORY.column_names)
    if customer_id is None or customer_id == ANONYMOUS_CUSTOMER:
        return "anonymous", values, 0.0, None
    read = features.read(CUSTOMER_HISTORY_REFS, [{CUSTOMER_HISTORY.key: customer_id}])
    if read.frame is None:
        return "unavailable", values, read.seconds, ONLINE_STORE_DOWN
    if not bool(known_rows(read.frame, CUSTOMER_HISTORY.column_names).iloc[0]):
        return "unknown_customer", values, read.seconds, None
    row = read.frame.iloc[0]
    return "found", {c: None if pd.isna(row[c]) else row[c] for c in CUSTOMER_HISTORY.column_names}, read.seconds, None


_HISTORY_STRINGS = frozenset(c.name for c in CUSTOMER_HISTORY.columns if c.dtype == "string")


def history_inputs(values: dict[str, Any]) -> dict[str, Any]:
    """A ``customer_history`` row as model input: numbers as float (NaN when missing), strings as str or None."""
    return {
        c: (None if v is None else str(v)) if c in _HISTORY_STRINGS else (np.nan if v is None else float(v))
        for c, v in values.items()
    }
