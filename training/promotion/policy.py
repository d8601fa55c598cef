"""The promotion policy run: which coupon each customer gets, under the eligibility and budget rules of the config.

The model (``promotion@champion``) proposes per customer the coupon with the best expected incremental 10-week
profit (none when none pays; the cheapest among near-ties). Then, from ``promotion.policy`` in
``config/models.yaml``:

1. eligibility: a coupon with a minimum spend (``min_spend``) goes only to customers whose average order value
   reaches it (otherwise the next-best eligible coupon that pays); a customer who already got
   ``max_offers_per_customer`` coupons in the last ``offer_window_days`` days gets none;
2. budget: at most ``budget_offers`` coupons per run, the highest expected incremental profit first.

:func:`score_promotion_day` runs it for a date on every registered customer (features as of the end of the date,
for offers sent the next morning) and writes ``<lake>/scores/promotion/dt=<day>/scores.parquet``.
"""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from config import get_settings
from config.models import PromotionPolicyConfig
from feature_repo.contract import lake
from feature_repo.contract.schema import PROMOTION_OFFERS
from feature_repo.features.tables import CUSTOMER_HISTORY, EVENT_TIMESTAMP
from training.promotion.pyfunc import NO_COUPON

log = logging.getLogger(__name__)

def apply_policy(
    predicted: pd.DataFrame,
    coupons: list[str],
    *,
    recent_offers: np.ndarray,
    avg_order_value: np.ndarray,
    policy: PromotionPolicyConfig,
) -> pd.DataFrame:
    """The final coupon per row of the model output ``predicted`` and why (``reason``).

    Args:
        predicted: the model's output (``uplift_<coupon>``, ``best_coupon``, ``expected_incremental_profit``).
        coupons: the coupons in ``predicted``.
        recent_offers: coupons each customer got in the last ``policy.offer_window_days`` days.
        avg_order_value: each customer's average order value, EUR (NaN when never ordered).
        policy: the rules.

    ``reason``: ``model`` (the model's pick), ``not_paying`` (no coupon pays), ``min_spend`` (the pick needs a
    larger average order: the best eligible coupon that pays instead, or none), ``offer_limit``, ``budget``.
    """
    coupon = predicted["best_coupon"].to_numpy(dtype=object).copy()
    value = predicted["expected_incremental_profit"].to_numpy(np.float64).copy()
    reason = np.where(coupon == NO_COUPON, "not_paying", "model").astype(object)
    uplift = predicted[[f"uplift_{c}" for c in coupons]].to_numpy(np.float64)
    aov = np.nan_to_num(np.asarray(avg_order_value, np.float64), nan=0.0)
    eligible = np.column_stack([aov >= policy.min_spend.get(c, 0.0) for c in coupons])
    index = {c: i for i, c in enumerate(coupons)}
    picked = np.array([index.get(c, -1) for c in coupon])
    blocked = (picked >= 0) & ~eligible[np.arange(len(coupon)), np.maximum(picked, 0)]
    if blocked.any():
        masked = np.where(eligible, uplift, -np.inf)[blocked]
        best = masked.argmax(axis=1)
        alt_value = masked[np.arange(len(best)), best]
        alt = np.where(alt_value > policy.min_incremental_profit, np.asarray(coupons, dtype=object)[best], NO_COUPON)
        coupon[blocked] = alt
        value[blocked] = np.where(alt == NO_COUPON, 0.0, alt_value)
        reason[blocked] = "min_spend"
    limited = (coupon != NO_COUPON) & (np.asarray(recent_offers) >= policy.max_offers_per_customer)
    coupon[limited], value[limited], reason[limited] = NO_COUPON, 0.0, "offer_limit"
    if policy.budget_offers is not None:
        offered = np.flatnonzero(coupon != NO_COUPON)
        if len(offered) > policy.budget_offers:
            # stable order: ties keep row order, so the same inputs always give the same cut
            ranked = offered[np.argsort(-value[offered], kind="stable")]
            cut = ranked[policy.budget_offers:]
            coupon[cut], value[cut], reason[cut] = NO_COUPON, 0.0, "budget"
    return pd.DataFrame({"coupon": coupon, "expected_incremental_profit": value, "reason": reason})


def recent_coupon_offers(day: dt.date, window_days: int, customer_ids: pd.Series) -> np.ndarray:
    """Coupons (holdout ``none`` rows excluded) each customer was offered in the ``window_days`` days up to ``day``."""
    raw_root = get_settings().raw_root
    available = set(lake.list_partitions(raw_root, PROMOTION_OFFERS.name))
    days = [day - dt.timedelta(days=i) for i in range(window_days) if day - dt.timedelta(days=i) in available]
    if not days:
        return np.zeros(len(customer_ids), np.int64)
    offers = lake.read_table(raw_root, PROMOTION_OFFERS, sorted(days)).to_pandas()
    counts = offers[offers["promotion_id"] != NO_COUPON].groupby("customer_id").size()
    return customer_ids.map(counts).fillna(0).to_numpy(np.int64)


def score_promotion_day(day: dt.date) -> Path | None:
    """Run the policy with ``promotion@champion`` for every customer of ``day``'s ``customer_history`` partition."""
    from feature_repo.features.partitions import read_feature_partition
    from training.promotion.data import MODEL_NAME, promotion_config
    from training.shared.registry import champion, load_model, model_input, model_version_uri
    from training.shared.scoring import scores_path

    version = champion(MODEL_NAME)
    if version is None:
        log.warning("promotion policy %s: skipped, no champion yet", day)
        return None
    config = promotion_config()
    customers = read_feature_partition(get_settings().features_root, "customer_history", day).to_pandas()
    numeric = [c.name for c in CUSTOMER_HISTORY.columns if c.dtype != "string"]
    for column in numeric:  # the signature says double; MLflow will not widen int64 itself
        customers[column] = customers[column].astype("float64")
    model = load_model(model_version_uri(MODEL_NAME, version.version))
    predicted = pd.DataFrame(model.predict(model_input(model, customers)))
    decided = apply_policy(
        predicted,
        list(config.coupons),
        recent_offers=recent_coupon_offers(day, config.policy.offer_window_days, customers["customer_id"]),
        avg_order_value=customers["avg_order_value"].to_numpy(np.float64),
        policy=config.policy,
    )
    out = pd.concat(
        [customers[["customer_id", EVENT_TIMESTAMP]].reset_index(drop=True), predicted.drop(columns="best_coupon"),
         decided.drop(columns="expected_incremental_profit")],
        axis=1,
    ).assign(model_name=MODEL_NAME, model_version=str(version.version))
    path = scores_path(MODEL_NAME, day)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    out.to_parquet(tmp, index=False, coerce_timestamps="us", allow_truncated_timestamps=False)
    tmp.replace(path)
    shares = out["coupon"].value_counts().to_dict()
    log.info("promotion policy %s with v%s: %d customers, coupons %s -> %s", day, version.version, len(out), shares,
             path)
    return path
