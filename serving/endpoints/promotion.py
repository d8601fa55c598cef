"""``GET /v1/promotions/{customer_id}``: the coupon to offer the customer now, or none, with the reason.

The promotion champion (``training/promotion/pyfunc.py``) estimates each coupon's incremental 10-week profit over
no coupon from the customer's history (one online read of ``customer_history``) and picks one by its policy (the
cheapest of the coupons near the best lower bound, none when no bound clears the minimum). Budgets and
per-customer limits need the offer history and stay with the nightly policy (``training/promotion/policy.py``).

Fallbacks: no coupon (``coupon: null``) with the reason for a customer without history in the online store, and
when the store is down (``fallback: online_store_unavailable``): a coupon is money, never given blind.
"""

from __future__ import annotations

from typing import Annotated

import pandas as pd
from fastapi import APIRouter, Path, Response

from serving.context import ServingContext, Timings, new_request_id
from serving.features import customer_history, history_inputs
from serving.schemas import ID_PATTERN, PREDICTION_ERRORS, ModelRef, PromotionResponse

MODEL = "promotion"
ENDPOINT = "/v1/promotions/{customer_id}"
NO_COUPON = "none"


def router(ctx: ServingContext) -> APIRouter:
    api = APIRouter(tags=["promotions"])

    @api.get(ENDPOINT, response_model=PromotionResponse, responses=PREDICTION_ERRORS,
             summary="The best coupon for a customer, or none with the reason")
    def best_promotion(customer_id: Annotated[str, Path(pattern=ID_PATTERN)]) -> Response:
        from training.shared.registry import model_input

        timings = Timings()
        loaded = ctx.champions[MODEL].require()
        request_id = new_request_id()
        status, history, seconds, fallback = customer_history(ctx.features, customer_id)
        timings.add("feature_read", seconds)
        coupon, profit, uplifts = None, 0.0, {}
        if status == "found":
            frame = pd.DataFrame([history_inputs(history)])
            with timings.stage("model"):
                out = loaded.pyfunc.predict(model_input(loaded.pyfunc, frame))
            row = out.iloc[0]
            uplifts = {c.removeprefix("uplift_"): float(row[c]) for c in out.columns if c.startswith("uplift_")}
            chosen = str(row["best_coupon"])
            coupon = None if chosen == NO_COUPON else chosen
            profit = float(row["expected_incremental_profit"]) if coupon else 0.0
            if coupon:
                reason = f"{coupon} adds {profit:.2f} EUR of 10-week profit over no coupon (expected)"
            else:
                best = max(uplifts.items(), key=lambda kv: kv[1]) if uplifts else None
                reason = "no coupon pays enough for this customer under the policy" + (
                    f" (best: {best[0]}, {best[1]:.2f} EUR expected)" if best else "")
        elif status == "unavailable":
            reason = "the online store is unavailable: no history to judge a coupon by, so none is offered"
        else:
            reason = "no history for this customer in the online store (new, anonymous or unknown): none offered"
        body = PromotionResponse(
            request_id=request_id, model=ModelRef(name=MODEL, version=loaded.version), fallback=fallback,
            customer_id=customer_id, coupon=coupon, expected_incremental_profit=profit, reason=reason,
            uplift_by_coupon=uplifts,
        )
        return ctx.answer(
            ENDPOINT, body, timings, loaded, request_id=request_id, fallback=fallback,
            features={"customer_id": customer_id, "customer_history": status,
                      **{k: None if v is None else v if isinstance(v, str) else float(v)
                         for k, v in history.items()}},
            outputs={"coupon": coupon or NO_COUPON, "expected_incremental_profit": profit},
        )

    return api
