"""``GET /v1/recommendations/{customer_id}``: the customer's top-k products, optionally within a category and for
the device of the page (the context).

The recommender answers from its own state (factors, popularity per device: ``training/recommendation/pyfunc.py``),
so there is no online feature read. Anonymous, new and unknown customers get the documented fallback, the
model's most popular products on that device (``source: popular``), never an error.

The handler is ``async``: with no I/O to wait for, about a millisecond of numpy on the event loop is cheaper
than the hop to the thread pool and back that a plain ``def`` costs under load.
"""

from __future__ import annotations

import math
from typing import Annotated

import pandas as pd
from fastapi import APIRouter, Path, Query, Response

from feature_repo.features.tables import ANONYMOUS_CUSTOMER
from serving.context import ServingContext, Timings, new_request_id
from serving.schemas import (
    ID_PATTERN,
    PREDICTION_ERRORS,
    Device,
    ModelRef,
    RecommendationsResponse,
    RecommendedProduct,
)

MODEL = "recommendation"
ENDPOINT = "/v1/recommendations/{customer_id}"
MAX_K = 100


def router(ctx: ServingContext) -> APIRouter:
    api = APIRouter(tags=["recommendations"])

    @api.get(ENDPOINT, response_model=RecommendationsResponse, responses=PREDICTION_ERRORS,
             summary="Recommendations for a customer ('anonymous' for a visitor who is not logged in)")
    async def recommend(
        customer_id: Annotated[str, Path(pattern=ID_PATTERN)],
        k: Annotated[int, Query(ge=1, le=MAX_K, description="How many products")] = 10,
        category: Annotated[str | None, Query(pattern=ID_PATTERN, description="Only this top category")] = None,
        device: Annotated[Device | None, Query(description="The page's device (context)")] = None,
    ) -> Response:
        timings = Timings()
        loaded = ctx.champions[MODEL].require()
        request_id = new_request_id()
        row = {"customer_id": customer_id, "device": device, "category": category}
        with timings.stage("model"):
            out = loaded.pyfunc.predict(pd.DataFrame([row]), params={"k": k})
        # a category the model does not know leaves no candidate: nothing is better than -inf-scored filler
        pairs = [(str(p), float(s)) for p, s in zip(out["product_ids"].iloc[0], out["scores"].iloc[0], strict=True)
                 if math.isfinite(s)]
        source = str(out["source"].iloc[0])
        body = RecommendationsResponse(
            request_id=request_id,
            model=ModelRef(name=MODEL, version=loaded.version),
            customer_id=customer_id,
            source="popular" if customer_id == ANONYMOUS_CUSTOMER else source,
            products=[RecommendedProduct(product_id=p, score=s) for p, s in pairs],
        )
        return ctx.answer(
            ENDPOINT, body, timings, loaded, request_id=request_id, fallback=None,
            features={**row, "k": k}, outputs={"source": body.source, "product_ids": [p for p, _ in pairs]},
        )

    return api
