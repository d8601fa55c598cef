"""Request and response bodies of the serving API (pydantic; FastAPI turns them into the OpenAPI document).

Requests are strict: unknown fields, ids outside the contract's id syntax, negative or non-finite KPIs and
categories outside the contract are refused with a 422 that names the field. The session KPIs are generated
from the raw data contract (``feature_repo.contract.schema.SESSION_KPIS``), so the API and the model's inputs
cannot drift apart.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model

from feature_repo.contract.schema import CHANNELS, DEVICES, SESSION_KPIS

ID_PATTERN = r"^[A-Za-z0-9_\-:.]{1,64}$"  # the raw contract's id syntax
Id = Annotated[str, Field(pattern=ID_PATTERN, examples=["c000123"])]
Device = Literal[DEVICES]  # type: ignore[valid-type]
Channel = Literal[CHANNELS]  # type: ignore[valid-type]
KPI_CEILING = 1e7  # far above any real KPI (ms, KiB, counts); keeps arithmetic finite


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)  # no coercion: true is not 1.0, "5" is not 5


def _kpi_field(column: Any) -> Any:
    upper = column.max if column.max is not None else KPI_CEILING
    description = f"{column.description} Unit: {column.unit}. Null or absent: unknown (the model imputes it)."
    return (float | None, Field(None, ge=column.min or 0.0, le=upper, allow_inf_nan=False, description=description))


SessionKpis = create_model(  # type: ignore[call-overload]
    "SessionKpis",
    __config__=ConfigDict(extra="forbid", strict=True),
    __doc__="The session's performance KPIs, in the raw contract's units; absent ones are unknown.",
    **{c.name: _kpi_field(c) for c in SESSION_KPIS},
)


class ModelRef(BaseModel):
    """Which model answered."""

    name: str
    version: str


class Served(BaseModel):
    """What every prediction response carries besides its answer."""

    request_id: str = Field(description="Id of this prediction in the prediction log")
    model: ModelRef
    fallback: str | None = Field(
        None, description="Why (part of) the answer comes from a fallback, e.g. online_store_unavailable; null: none"
    )


# --- conversion --------------------------------------------------------------------------------------------------
class ConversionRequest(_Strict):
    """A session as it starts: its context and KPIs; the customer's history comes from the online store."""

    session_id: Id | None = Field(None, description="The session, for the prediction log")
    customer_id: Id | None = Field(None, description="Logged-in customer; null for an anonymous session")
    device: Device
    channel: Channel
    kpis: SessionKpis = Field(default_factory=SessionKpis)  # type: ignore[valid-type]


class KpiImpact(BaseModel):
    """How much one KPI of this session lowers its conversion probability."""

    kpi: str
    value: float = Field(description="The session's value, raw units")
    reference: float = Field(description="The median of the champion's training sessions, raw units")
    probability_at_reference: float = Field(description="P(convert) with this KPI at the reference, others as sent")
    impact: float = Field(description="probability_at_reference - probability (> 0: this KPI lowers it)")


class ConversionResponse(Served):
    probability: float = Field(ge=0, le=1, description="P(the session converts)")
    p_basket: float | None = Field(
        None, ge=0, le=1, description="P(the shopper adds to the cart): the funnel's first stage (null: single-stage)"
    )
    p_checkout: float | None = Field(
        None, ge=0, le=1, description="P(converts | a basket): the second stage; probability = p_basket x p_checkout"
    )
    customer_history: Literal["found", "unknown_customer", "anonymous", "unavailable"] = Field(
        description="Whether the customer's history was in the online store (unknown/anonymous: scored without)"
    )
    kpis_lowering: list[KpiImpact] = Field(description="The KPIs that lower the probability most, largest first")


# --- errors ------------------------------------------------------------------------------------------------------
class Unavailable(BaseModel):
    """503: the model cannot answer (no champion yet, or it failed to load)."""

    detail: str
    model: str
    reason: str


class FieldError(BaseModel):
    field: str = Field(description="Dotted path of the offending field, e.g. body.kpis.lcp_ms")
    message: str
    type: str


class ValidationFailed(BaseModel):
    """422: the request does not match its schema; ``errors`` names every offending field."""

    detail: str
    errors: list[FieldError]


class Problem(BaseModel):
    """4xx/5xx other than 422 and 503: what went wrong."""

    detail: str


# The error answers every prediction endpoint documents (FastAPI answers 400 itself when the body is not JSON).
PREDICTION_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": Problem, "description": "The body is not valid JSON"},
    422: {"model": ValidationFailed, "description": "A field is missing or invalid; errors name it"},
    503: {"model": Unavailable, "description": "The model has no champion loaded; the reason says why"},
}


# --- operations --------------------------------------------------------------------------------------------------
class Health(BaseModel):
    status: Literal["alive"]


class ModelStatus(BaseModel):
    version: str | None
    status: str


class Readiness(BaseModel):
    ready: bool
    online_store: str = Field(description="ok, or the error of the probe read")
    models: dict[str, ModelStatus]


class RetrainRequest(_Strict):
    """Ask Airflow to run the nightly training DAG now (create or update the predictors)."""

    date: str | None = Field(
        None, pattern=r"^\d{4}-\d{2}-\d{2}$", description="Date to train for (YYYY-MM-DD); null: the DAG decides"
    )
    note: str | None = Field(None, max_length=500, description="Shown on the run in Airflow's UI")


class RetrainResponse(BaseModel):
    dag_id: str
    dag_run_id: str
    state: str
    conf: dict[str, Any]


# --- recommendations ---------------------------------------------------------------------------------------------
class RecommendedProduct(BaseModel):
    product_id: str
    score: float = Field(description="The model's score (personal: affinity; popular: popularity); higher first")


class RecommendationsResponse(Served):
    customer_id: str
    source: Literal["personal", "popular"] = Field(
        description="personal: the customer's own affinities; popular: the documented fallback for anonymous, new "
        "or unknown customers (the most popular products on the device, over the model's training days)"
    )
    products: list[RecommendedProduct] = Field(description="At most k products, best first")


# --- ranking -------------------------------------------------------------------------------------------------------
class RankingRequest(_Strict):
    """Products of one list (a category page, a search result) to put in order."""

    list_id: Id | None = Field(None, description="The list, for the prediction log")
    product_ids: list[Id] = Field(min_length=1, max_length=500, description="The products to order (unique)",
                                  json_schema_extra={"uniqueItems": True})
    prices: list[Annotated[float, Field(gt=0, le=1e7, allow_inf_nan=False)]] | None = Field(
        None, description="Price shown per product, EUR, one per product id in the same order (else 422); null: "
        "today's price from the online store"
    )
    objective: Literal["relevance", "hybrid", "expected_revenue"] = Field(
        "hybrid",
        description="relevance: the model's relevance alone; hybrid: rank(rank(f)^alpha * rank(price)^(1-alpha)); "
        "expected_revenue: p(purchase) * g(price), p = the product's position-debiased purchase rate",
    )
    alpha: float | None = Field(None, ge=0, le=1,
                                description="hybrid only (else 422): weight of relevance [default: the model's]")
    revenue_transform: Literal["identity", "ln"] = Field("identity", description="expected_revenue only: g")


class RankedProduct(BaseModel):
    product_id: str
    position: int = Field(ge=1)
    sort_key: float = Field(description="Higher comes first; its scale depends on the objective")
    known: bool = Field(description="False: no online features for it; placed after the known ones, in request order")


class RankingResponse(Served):
    objective: str
    alpha: float | None
    product_ids: list[str] = Field(description="The products in their new order")
    items: list[RankedProduct]


# --- promotions ----------------------------------------------------------------------------------------------------
class PromotionResponse(Served):
    customer_id: str
    coupon: str | None = Field(description="The coupon to offer, or null for none")
    expected_incremental_profit: float = Field(description="Of the chosen coupon over none, 10 weeks, EUR (0: none)")
    reason: str = Field(description="Why this coupon, or why none")
    uplift_by_coupon: dict[str, float] = Field(description="Expected incremental 10-week profit per coupon, EUR")


# --- prices --------------------------------------------------------------------------------------------------------
class Interval(BaseModel):
    estimate: float
    low: float
    high: float


class PriceRecommendation(BaseModel):
    current_price: float
    recommended_price: float
    change_pct: float
    binding: str = Field(description="What set the price: optimum, max_change, floor, cap or infeasible")
    elasticity: Interval
    units_per_day_change: Interval
    revenue_per_day_change: Interval = Field(description="EUR per day")
    profit_per_day_change: Interval = Field(description="EUR per day")


class PriceResponse(Served):
    product_id: str
    scored_on: str = Field(description="The date of the nightly batch this recommendation comes from")
    recommendation: PriceRecommendation | None = Field(description="null: keep the current price (see reason)")
    reason: str
