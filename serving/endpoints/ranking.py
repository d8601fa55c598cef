"""``POST /v1/rankings``: the products of a list in the order to show them, by the objective the page asks for.

One online read of ``product_ranking`` for every product of the list. The objectives:

* ``relevance``: the ranking champion's relevance score f(x) alone;
* ``hybrid``: ``rank(rank(f)^alpha * rank(price)^(1 - alpha))`` with the request's alpha (default: the alpha the
  model was promoted with, which is what its ``predict`` serves);
* ``expected_revenue``: ``p * g(price)``, p = the product's position-debiased purchase rate from the online store
  (the ranking model's purchase classifier is not part of the logged model), g = identity or ln.

Relevance and the re-rankers are ``training/ranking/pyfunc.py``'s functions, the ones training evaluates with,
applied to the logged model's state (its network, preprocessor and alpha, through ``unwrap_python_model()``): one
implementation for serving and training, and no reach into the module MLflow executed on load.

Fallbacks: products the online store does not know (no features) keep their request order after the known ones
(``known: false``); when the store is down the list keeps the request order (``fallback: online_store_unavailable``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from fastapi import APIRouter, Response

from feature_repo.features.tables import PRODUCT_RANKING
from serving.champions import NoChampion
from serving.context import ServingContext, Timings, invalid_field, new_request_id
from serving.features import ONLINE_STORE_DOWN, PRODUCT_RANKING_REFS, known_rows
from serving.schemas import PREDICTION_ERRORS, ModelRef, RankedProduct, RankingRequest, RankingResponse

if TYPE_CHECKING:
    from training.shared.registry import PyFuncModel  # MLflow's type, through the one door

MODEL = "ranking"
ENDPOINT = "/v1/rankings"
LIST_ID, PRICE = "list_id", "price_shown"
P_PURCHASE = "purchase_rate_debiased"


def prepare_ranking(model: PyFuncModel, run_id: str) -> Mapping[str, Any]:
    """The ranking code and the loaded version's state it scores with (code None: the version does not expose its
    network and preprocessor, so only its own ``predict`` can serve it)."""
    from training.ranking import pyfunc as ranking_code

    inner = model.unwrap_python_model()
    if not all(hasattr(inner, state) for state in ("module", "preprocessor", "alpha")):
        return {"code": None, "alpha": getattr(inner, "alpha", None)}
    return {"code": ranking_code, "inner": inner, "alpha": float(inner.alpha)}


def router(ctx: ServingContext) -> APIRouter:
    api = APIRouter(tags=["ranking"])

    @api.post(ENDPOINT, response_model=RankingResponse, responses=PREDICTION_ERRORS,
              summary="Order the products of a list by relevance, a relevance/price hybrid or expected revenue")
    def rank(request: RankingRequest) -> Response:
        timings = Timings()
        loaded = ctx.champions[MODEL].require()
        ids = request.product_ids
        if len(set(ids)) != len(ids):
            raise invalid_field(("body", "product_ids"), "a product appears more than once")
        if request.prices is not None and len(request.prices) != len(ids):
            raise invalid_field(("body", "prices"), f"{len(request.prices)} prices for {len(ids)} products")
        if request.objective != "hybrid" and request.alpha is not None:
            raise invalid_field(("body", "alpha"), "only the hybrid objective takes alpha")
        code = loaded.extras.get("code")
        if code is None and not (request.objective == "hybrid" and request.alpha in (None, loaded.extras["alpha"])):
            raise NoChampion(MODEL, f"ranking v{loaded.version} serves only its own hybrid (alpha "
                                    f"{loaded.extras['alpha']}): it does not expose relevance scores")
        request_id = new_request_id()
        read = ctx.features.read(PRODUCT_RANKING_REFS, [{PRODUCT_RANKING.key: p} for p in ids])
        timings.add("feature_read", read.seconds)
        alpha = (loaded.extras["alpha"] if request.alpha is None else request.alpha) \
            if request.objective == "hybrid" else None
        fallback = None
        known = np.zeros(len(ids), dtype=bool)
        key = np.zeros(len(ids))
        if read.frame is None:
            fallback = ONLINE_STORE_DOWN
        else:
            frame = read.frame
            known = known_rows(frame, PRODUCT_RANKING.column_names).to_numpy()
            if known.any():
                rows = frame.loc[known].reset_index(drop=True)
                shown = np.asarray(request.prices, dtype=np.float64)[known] if request.prices is not None \
                    else rows["price"].to_numpy(np.float64)
                rows[LIST_ID] = request.list_id or "request"
                rows[PRICE] = shown
                with timings.stage("model"):
                    key[known] = _sort_key(loaded.pyfunc, loaded.extras, rows, request.objective, alpha,
                                           request.revenue_transform)
        # known products by key (desc), then the unknown ones in request order
        order = sorted(range(len(ids)), key=lambda i: (not known[i], -key[i] if known[i] else 0.0, i))
        items = [RankedProduct(product_id=ids[i], position=n + 1, sort_key=float(key[i]), known=bool(known[i]))
                 for n, i in enumerate(order)]
        body = RankingResponse(
            request_id=request_id, model=ModelRef(name=MODEL, version=loaded.version), fallback=fallback,
            objective=request.objective, alpha=alpha, product_ids=[it.product_id for it in items], items=items,
        )
        return ctx.answer(
            ENDPOINT, body, timings, loaded, request_id=request_id, fallback=fallback,
            features={"list_id": request.list_id, "product_ids": list(ids), "objective": request.objective,
                      "alpha": alpha, "unknown_products": int((~known).sum())},
            outputs={"ranked_product_ids": body.product_ids},
        )

    return api


def _sort_key(
    model: PyFuncModel, extras: Mapping[str, Any], rows: pd.DataFrame, objective: str, alpha: float | None,
    revenue_transform: str,
) -> np.ndarray:
    """Sort keys (higher first) of the known products of one list."""
    from training.shared.registry import model_input

    code = extras.get("code")
    price = np.clip(rows[PRICE].to_numpy(np.float64), 0.01, None)
    if objective == "expected_revenue":
        p = np.nan_to_num(rows[P_PURCHASE].to_numpy(np.float64), nan=0.0)
        return code.expected_revenue_key(p, price, revenue_transform)
    if code is None:  # the model's own hybrid, through its public predict
        return np.asarray(model.predict(model_input(model, rows)), dtype=np.float64)
    inner = extras["inner"]
    relevance = code.relevance_scores(inner.module, inner.preprocessor.transform(model_input(model, rows)))
    if objective == "relevance":
        return relevance
    codes = np.zeros(len(rows), dtype=np.int64)  # one list
    return code.hybrid_sort_key(codes, relevance, price, float(alpha))
