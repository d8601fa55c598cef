"""``GET /v1/prices/{product_id}``: the price to set for a product and what it is expected to change.

Price recommendations are computed in batch: the nightly scoring stage of the elasticity champion
(``training.elasticity.model.score_elasticity_day``) writes ``<lake>/scores/elasticity/dt=<day>/scores.parquet``, one
row
per product on sale (recommended price within the guardrails, elasticity and expected per-day changes of units,
revenue and profit, with intervals). They need a product's recent demand days, which are offline features only.
This endpoint serves the newest batch written by the version that is champion now, re-reading it when a newer
date appears (checked at most every ``RECHECK_SECONDS``).

Fallback: a product without a recommendation in that batch (new, not on sale, no elasticity group, infeasible
guardrails) keeps its current price (``recommendation: null``, with the reason).
"""

from __future__ import annotations

import threading
import time
from pathlib import Path as FsPath
from typing import Annotated, Any

import pandas as pd
from fastapi import APIRouter, Path, Response

from serving.champions import NoChampion
from serving.context import ServingContext, Timings, new_request_id
from serving.schemas import ID_PATTERN, PREDICTION_ERRORS, Interval, ModelRef, PriceRecommendation, PriceResponse

MODEL = "elasticity"
ENDPOINT = "/v1/prices/{product_id}"
RECHECK_SECONDS = 30.0


class PriceBook:
    """The newest batch of price recommendations written by one elasticity version, indexed by product."""

    def __init__(self, root: FsPath, version: str) -> None:
        self.root, self.version = root, version
        self._lock = threading.Lock()
        self._checked = -float("inf")
        self._day: str | None = None
        self._rows: dict[str, dict[str, Any]] = {}

    def current(self) -> tuple[str | None, dict[str, dict[str, Any]]]:
        if time.monotonic() - self._checked >= RECHECK_SECONDS:
            with self._lock:
                if time.monotonic() - self._checked >= RECHECK_SECONDS:
                    self._reload()
                    self._checked = time.monotonic()
        return self._day, self._rows

    def _reload(self) -> None:
        days = sorted(
            (p.name.removeprefix("dt="), p) for p in self.root.glob("dt=*") if (p / "scores.parquet").is_file()
        )
        for day, folder in reversed(days):
            if day == self._day:
                return
            frame = pd.read_parquet(folder / "scores.parquet")
            if "model_version" in frame and (frame["model_version"].astype(str) == self.version).any():
                frame = frame[frame["model_version"].astype(str) == self.version]
                self._rows = {str(r["product_id"]): r for r in frame.to_dict("records")}
                self._day = day
                return


def _interval(row: dict[str, Any], name: str) -> Interval:
    return Interval(estimate=float(row[name]), low=float(row[f"{name}_low"]), high=float(row[f"{name}_high"]))


def router(ctx: ServingContext) -> APIRouter:
    api = APIRouter(tags=["prices"])
    books: dict[str, PriceBook] = {}

    @api.get(ENDPOINT, response_model=PriceResponse, responses=PREDICTION_ERRORS,
             summary="The recommended price of a product, with its expected effect per day")
    def price(product_id: Annotated[str, Path(pattern=ID_PATTERN)]) -> Response:
        timings = Timings()
        loaded = ctx.champions[MODEL].require()
        book = books.get(loaded.version)
        if book is None:
            book = books[loaded.version] = PriceBook(ctx.settings.lake / "scores" / MODEL, loaded.version)
        with timings.stage("feature_read"):
            day, rows = book.current()
        if day is None:
            raise NoChampion(MODEL, f"elasticity v{loaded.version} has written no price recommendations yet "
                                    "(the nightly scoring stage writes them)")
        request_id = new_request_id()
        row = rows.get(product_id)
        recommendation = None
        if row is None:
            reason = f"no recommendation for {product_id} in the batch of {day}: keep its current price"
        else:
            recommendation = PriceRecommendation(
                current_price=float(row["price"]), recommended_price=float(row["recommended_price"]),
                change_pct=float(row["change_pct"]), binding=str(row["binding"]),
                elasticity=Interval(estimate=float(row["elasticity"]), low=float(row["elasticity_ci_low"]),
                                    high=float(row["elasticity_ci_high"])),
                units_per_day_change=_interval(row, "units_change"),
                revenue_per_day_change=_interval(row, "revenue_change"),
                profit_per_day_change=_interval(row, "profit_change"),
            )
            reason = f"set by {row['binding']} (elasticity {float(row['elasticity']):.2f}, group {row['group']})"
        body = PriceResponse(
            request_id=request_id, model=ModelRef(name=MODEL, version=loaded.version), fallback=None,
            product_id=product_id, scored_on=day, recommendation=recommendation, reason=reason,
        )
        return ctx.answer(
            ENDPOINT, body, timings, loaded, request_id=request_id, fallback=None,
            features={"product_id": product_id, "scored_on": day},
            outputs={"recommended_price": None if recommendation is None else recommendation.recommended_price},
        )

    return api
