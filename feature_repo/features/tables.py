"""The offline feature tables: what the Spark builds write and what Feast, Great Expectations and training read.

Layout: ``<lake>/features/<table>/dt=YYYY-MM-DD/part-*.parquet``, one partition per run date, overwritten as a
whole by that date's run. Every table has its entity key column and ``event_timestamp`` (UTC, microseconds),
the moment from which the row's values are known: point-in-time joins never see a row before it.
"""

from __future__ import annotations

from dataclasses import dataclass

from feature_repo.contract.schema import ACQUISITION_CHANNELS, KPI_NAMES, Column

EVENT_TIMESTAMP = "event_timestamp"
ANONYMOUS_CUSTOMER = "anonymous"  # entity key used for sessions without a logged-in customer


@dataclass(frozen=True)
class FeatureTable:
    name: str
    entity: str  # Feast entity name
    key: str  # its join key column
    description: str
    columns: tuple[Column, ...]  # feature columns (key and event_timestamp excluded)
    ttl_days: int  # how long a row stays valid for point-in-time joins

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]


def _f(name: str, dtype: str, description: str, **kw) -> Column:
    return Column(name, dtype, description, **kw)  # type: ignore[arg-type]


SESSION_KPIS = FeatureTable(
    name="session_kpis",
    entity="session",
    key="session_id",
    description=(
        "The session's performance KPIs and context, known when the session starts (event_timestamp = started_at). "
        "Offline only: at serving time the KPIs come with the request."
    ),
    columns=(
        _f("customer_id", "string", "Logged-in customer, or 'anonymous'."),
        _f("device", "string", "Device class."),
        _f("channel", "string", "Traffic channel."),
        _f("is_anonymous", "int64", "1 when no customer was logged in.", min=0, max=1),
        *(
            Column(k, "float64", f"{k} of the session (raw contract units).", min=0.0)
            for k in KPI_NAMES
        ),
    ),
    ttl_days=1,
)

CUSTOMER_HISTORY = FeatureTable(
    name="customer_history",
    entity="customer",
    key="customer_id",
    description=(
        "A registered customer's history up to the end of the run date (event_timestamp = date 23:59:59.999999 "
        "UTC): a session on date d sees the row of d-1, so the day's own outcomes never leak in."
    ),
    columns=(
        _f("days_since_signup", "int64", "Days from signup to the run date.", min=0),
        _f("days_since_last_order", "int64", "Days since the last order; null when never ordered.", nullable=True,
           min=0),
        _f("orders_total", "int64", "Orders up to the run date (frequency).", min=0),
        _f("orders_30d", "int64", "Orders in the 30 days up to the run date.", min=0),
        _f("revenue_total", "float64", "Amount paid, all time (monetary value).", min=0.0),
        _f("revenue_90d", "float64", "Amount paid in the last 90 days.", min=0.0),
        _f("avg_order_value", "float64", "Mean amount per order; null when never ordered.", nullable=True, min=0.0),
        _f("sessions_30d", "int64", "Sessions in the last 30 days.", min=0),
        _f("conversion_rate_30d", "float64", "Converted share of the last 30 days' sessions; null without sessions.",
           nullable=True, min=0.0, max=1.0),
        _f("coupon_offers_90d", "int64", "Coupons offered in the last 90 days (holdout 'none' rows excluded).",
           min=0),
        _f("coupon_orders_90d", "int64", "Orders with a promotion in the last 90 days.", min=0),
        _f("coupon_order_share", "float64", "Share of all orders that used a promotion; null when never ordered.",
           nullable=True, min=0.0, max=1.0),
        _f("acquisition_channel", "string", "Channel that acquired the customer (the CRM's record).",
           allowed=ACQUISITION_CHANNELS),
    ),
    ttl_days=2,
)

# Interaction strength per (customer, product, device) and date: the recommender's implicit feedback.
INTERACTION_STRENGTH = {"click": 1.0, "cart": 2.0, "purchase": 4.0}
CUSTOMER_PRODUCT_INTERACTIONS = FeatureTable(
    name="customer_product_interactions",
    entity="customer_product",
    key="interaction_id",
    description=(
        "What a customer did with a product on one device during the run date (event_timestamp = date "
        "23:59:59.999999 UTC): one row per (customer, product, device) with at least one click or order line; "
        "impressions without a click are counted on those rows but never make a row of their own. "
        "interaction_id = 'customer_id|product_id|device'; anonymous sessions share customer_id 'anonymous'."
    ),
    columns=(
        _f("customer_id", "string", "Logged-in customer, or 'anonymous' (guests: popularity only)."),
        _f("product_id", "string", "Product interacted with."),
        _f("device", "string", "Device class of the sessions."),
        _f("impressions", "int64", "Times the product was shown in a list of those sessions.", min=0),
        _f("clicks", "int64", "Clicks on it.", min=0),
        _f("carts", "int64", "Adds to cart from a list.", min=0),
        _f("purchases", "int64", "Order lines of it.", min=0),
        _f("units_purchased", "int64", "Units bought.", min=0),
        _f("strength", "float64", "Strongest interaction: purchase 4, add to cart 2, click 1.", min=1.0, max=4.0),
    ),
    ttl_days=1,
)

PRODUCT_RANKING = FeatureTable(
    name="product_ranking",
    entity="product",
    key="product_id",
    description=(
        "Each product on sale as known at the end of the run date (event_timestamp = date 23:59:59.999999 UTC): "
        "price and category from the catalog, popularity and position-debiased click, cart and purchase rates "
        "from the last 28 days of impressions (feature_repo/features/product_ranking.py)."
    ),
    columns=(
        _f("category", "string", "Top level of the category tree."),
        _f("list_price", "float64", "Regular (reference) price, EUR.", min=0.01),
        _f("price", "float64", "Selling price on the run date, EUR.", min=0.01),
        _f("days_on_sale", "int64", "Days from launch to the run date.", min=0),
        _f("impressions_28d", "int64", "Times shown in a list, last 28 days.", min=0),
        _f("clicks_28d", "int64", "Clicks, last 28 days.", min=0),
        _f("carts_28d", "int64", "Adds to cart from a list, last 28 days.", min=0),
        _f("purchases_28d", "int64", "Purchases from a list, last 28 days.", min=0),
        _f("examinations_28d", "float64", "Expected examinations: sum of the position propensities shown at.",
           min=0.0),
        _f("ctr_debiased", "float64", "Clicks per examination, smoothed towards the shop-wide rate.", min=0.0),
        _f("cart_rate_debiased", "float64", "Adds to cart per examination, smoothed.", min=0.0),
        _f("purchase_rate_debiased", "float64", "Purchases per examination, smoothed.", min=0.0),
        _f("ctr_raw", "float64", "Clicks per impression (position-biased); null without impressions.",
           nullable=True, min=0.0, max=1.0),
        _f("mean_position", "float64", "Mean 1-based position shown at; null without impressions.", nullable=True,
           min=1.0),
    ),
    ttl_days=2,
)

PRODUCT_DEMAND = FeatureTable(
    name="product_demand",
    entity="product",
    key="product_id",
    description=(
        "Each product on sale on the run date and what it sold that day (event_timestamp = date 23:59:59.999999 "
        "UTC, so a day's demand is known only after it ends): the day's prices and cost from the catalog, its "
        "impressions (the exposure demand is counted against), units and revenue from the order lines, discount "
        "and promotion flags, and the calendar controls of the elasticity model (feature_repo/features/"
        "product_demand.py)."
    ),
    columns=(
        _f("category", "string", "Top level of the category tree."),
        _f("list_price", "float64", "Regular (reference) price, EUR.", min=0.01),
        _f("price", "float64", "Selling price shown on the run date (before coupons), EUR.", min=0.01),
        _f("unit_cost", "float64", "Unit cost, EUR.", min=0.0),
        _f("impressions", "int64", "Times the product was shown in a list that day (exposure).", min=0),
        _f("order_lines", "int64", "Order lines of the product that day.", min=0),
        _f("units", "int64", "Units sold that day (sum of quantity).", min=0),
        _f("revenue", "float64", "Amount paid for it that day: unit price x quantity - discount, EUR.", min=0.0),
        _f("avg_price_paid", "float64", "revenue / units, EUR (net of coupons); null without units.",
           nullable=True, min=0.0),
        _f("discount_share", "float64", "Coupon discount / gross amount of the day's lines; null without units.",
           nullable=True, min=0.0, max=1.0),
        _f("is_marked_down", "int64", "1 when the selling price is below the list price.", min=0, max=1),
        _f("has_promotion", "int64", "1 when any of the day's lines used a promotion (coupon).", min=0, max=1),
        _f("day_of_week", "int64", "ISO day of week of the run date, 1 = Monday.", min=1, max=7),
        _f("day_of_year", "int64", "Day of the year of the run date, 1..366.", min=1, max=366),
    ),
    ttl_days=1,
)

FEATURE_TABLES: dict[str, FeatureTable] = {
    t.name: t for t in (SESSION_KPIS, CUSTOMER_HISTORY, CUSTOMER_PRODUCT_INTERACTIONS, PRODUCT_RANKING, PRODUCT_DEMAND)
}
