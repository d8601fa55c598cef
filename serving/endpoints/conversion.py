"""``POST /v1/conversion/score``: P(a session converts), its two funnel stages, and the KPIs that lower it most.

``p_basket`` (the shopper adds to the cart) and ``p_checkout`` (a basket converts) come from a funnel champion;
``probability`` is their product. A single-stage champion leaves them null.

The session's context and KPIs come with the request; the customer's history comes from the online store
(``customer_history``, one read). Anonymous sessions and customers the store does not know are scored without
history, as the model was trained to (history null); when the store is down, every session is scored that way
and the response says so (``fallback: online_store_unavailable``).

Which KPIs lower it: for each KPI the session reports, the champion scores the session again with that KPI at the
median of the champion's training sessions (its logged reference sample), all else as sent. The difference is
what this KPI costs the session against a typical one; the largest positive ones are returned. All the
counterfactual rows go through the model in the same call as the session itself.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from fastapi import APIRouter, Response

from feature_repo.contract.schema import KPI_NAMES
from serving.context import ServingContext, Timings, new_request_id
from serving.features import customer_history, history_inputs
from serving.schemas import PREDICTION_ERRORS, ConversionRequest, ConversionResponse, KpiImpact, ModelRef

if TYPE_CHECKING:
    from training.shared.registry import PyFuncModel  # MLflow's type, through the one door

log = logging.getLogger(__name__)

MODEL = "conversion"
ENDPOINT = "/v1/conversion/score"
REFERENCE_ARTIFACT = "reference/reference_sample.parquet"
TOP_KPIS = 3


def prepare_conversion(model: PyFuncModel, run_id: str) -> Mapping[str, Any]:
    """What a loaded champion's requests need: the KPI reference values (the medians of its training reference
    sample) and whether it answers with funnel stages (logged with the ``output`` inference param; a champion
    logged before the funnel has none and is asked for P(convert) alone)."""
    from training.shared.registry import download_artifact

    params = model.metadata.get_params_schema()
    extras: dict[str, Any] = {"stages": params is not None and "output" in {p.name for p in params.params}}
    try:
        reference = pd.read_parquet(download_artifact(f"runs:/{run_id}/{REFERENCE_ARTIFACT}"))
    except Exception as err:  # an older run without the sample: serve the score, explain no KPI
        log.warning("conversion run %s has no %s (%s): no KPI attribution", run_id, REFERENCE_ARTIFACT, err)
        return {**extras, "kpi_reference": {}}
    medians = {k: float(reference[k].median()) for k in KPI_NAMES if k in reference and reference[k].notna().any()}
    return {**extras, "kpi_reference": medians}


def _predict(model: PyFuncModel, frame: pd.DataFrame, stages: bool) -> tuple[np.ndarray, np.ndarray | None]:
    """P(convert) per row and, from a funnel champion (``stages``), (P(basket), P(convert | basket)) per row."""
    from training.shared.registry import model_input

    x = model_input(model, frame)
    if not stages:
        return np.asarray(model.predict(x), dtype=np.float64).reshape(-1), None
    out = model.predict(x, params={"output": "stages"})
    p = out["p_convert"].to_numpy(dtype=np.float64)
    stages = out[["p_basket", "p_checkout"]].to_numpy(dtype=np.float64)
    return p, None if np.isnan(stages).any() else stages


def router(ctx: ServingContext) -> APIRouter:
    api = APIRouter(tags=["conversion"])

    @api.post(
        ENDPOINT,
        response_model=ConversionResponse,
        summary="Conversion probability of a session, and the KPIs that lower it most",
        responses=PREDICTION_ERRORS,
    )
    def score_session(request: ConversionRequest) -> Response:
        timings = Timings()
        loaded = ctx.champions[MODEL].require()
        request_id = new_request_id()
        status, history, seconds, fallback = customer_history(ctx.features, request.customer_id)
        timings.add("feature_read", seconds)
        kpis = request.kpis.model_dump()
        session = {
            "device": request.device,
            "channel": request.channel,
            "is_anonymous": 1.0 if status == "anonymous" else 0.0,
            **{k: np.nan if v is None else float(v) for k, v in kpis.items()},
            **history_inputs(history),
        }
        reference: Mapping[str, float] = loaded.extras.get("kpi_reference", {})
        varied = [k for k, v in kpis.items() if v is not None and k in reference and reference[k] != v]
        rows = [session] + [{**session, k: reference[k]} for k in varied]
        with timings.stage("model"):
            p, stages = _predict(loaded.pyfunc, pd.DataFrame(rows), bool(loaded.extras.get("stages", False)))
        probability = float(p[0])
        impacts = sorted(
            (
                KpiImpact(kpi=k, value=float(kpis[k]), reference=reference[k],
                          probability_at_reference=float(q), impact=float(q) - probability)
                for k, q in zip(varied, p[1:], strict=True)
                if q > probability
            ),
            key=lambda i: -i.impact,
        )[:TOP_KPIS]
        body = ConversionResponse(
            request_id=request_id,
            model=ModelRef(name=MODEL, version=loaded.version),
            fallback=fallback,
            probability=probability,
            p_basket=None if stages is None else float(stages[0, 0]),
            p_checkout=None if stages is None else float(stages[0, 1]),
            customer_history=status,
            kpis_lowering=impacts,
        )
        return ctx.answer(
            ENDPOINT, body, timings, loaded, request_id=request_id, fallback=fallback,
            features={"session_id": request.session_id, "customer_id": request.customer_id, **session},
            outputs={
                "p_convert": probability,
                **({} if stages is None else {"p_basket": float(stages[0, 0]), "p_checkout": float(stages[0, 1])}),
                "kpis_lowering": [i.kpi for i in impacts],
            },
        )

    return api
