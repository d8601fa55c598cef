"""The raw data contract: one schema per raw table, the single source of truth.

Every raw table of DESIGN.md is declared here once. The simulator writes with these schemas, the export
loader checks against them, and the Spark jobs and Great Expectations suites are generated from them.
The data dictionary in ``docs/data_dictionary.md`` is rendered from this module
(``storefront data-dictionary``), never edited by hand.

Two kinds of table:

* entity tables (``catalog``, ``customers``, ``experiments``) are daily snapshots: the partition of a date
  holds the full state of every entity on that date, so a price or an experiment's end date can change;
* event tables (``sessions``, ``impressions``, ``orders``, ``promotion_offers``, ``exposures``) are
  partitioned by the UTC date of their event time.

All timestamps are UTC with microsecond precision (Spark 4 rejects nanosecond parquet timestamps).
Money is in the shop's currency (EUR in the simulator), durations in milliseconds unless a column says otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import pyarrow as pa

DType = Literal["string", "int64", "float64", "bool", "date", "timestamp", "list<string>", "list<float64>"]

ARROW_TYPES: dict[str, pa.DataType] = {
    "string": pa.string(),
    "int64": pa.int64(),
    "float64": pa.float64(),
    "bool": pa.bool_(),
    "date": pa.date32(),
    "timestamp": pa.timestamp("us", tz="UTC"),
    "list<string>": pa.list_(pa.string()),
    "list<float64>": pa.list_(pa.float64()),
}

DEVICES = ("desktop", "mobile", "tablet")
CHANNELS = ("direct", "organic_search", "paid_search", "email", "social", "referral", "affiliate")
ACQUISITION_CHANNELS = ("organic", "paid_search", "social", "email", "referral", "affiliate", "offline")
LIST_TYPES = ("category_page", "search", "recommendation")
RANKERS = ("popularity", "randomized", "personalized")
PROMOTION_KINDS = ("none", "percent_off", "free_shipping")
ASSIGNMENTS = ("random", "policy")
UNIT_TYPES = ("customer",)
METRICS = (
    "conversion_rate",
    "revenue_per_visitor",
    "average_order_value",
    "page_load_ms",
    "js_error_rate",
    "http_5xx_rate",
)


@dataclass(frozen=True)
class Column:
    """One column of a raw table: its type and the values it may hold."""

    name: str
    dtype: DType
    description: str
    nullable: bool = False
    unit: str | None = None
    allowed: tuple[str, ...] | None = None
    min: float | None = None
    max: float | None = None
    pattern: str | None = None  # regular expression every non-null value must match in full

    @property
    def arrow_type(self) -> pa.DataType:
        return ARROW_TYPES[self.dtype]

    def field(self) -> pa.Field:
        return pa.field(self.name, self.arrow_type, nullable=self.nullable)


@dataclass(frozen=True)
class Implies:
    """A row rule: where ``if_true`` is true, ``then_true`` must be true too (a funnel never skips a step)."""

    if_true: str
    then_true: str

    def describe(self) -> str:
        return f"`{self.if_true}` implies `{self.then_true}`"


@dataclass(frozen=True)
class NotBefore:
    """A row rule: ``later`` is never earlier than ``earlier`` (both timestamps or dates)."""

    later: str
    earlier: str

    def describe(self) -> str:
        return f"`{self.later}` is not before `{self.earlier}`"


Rule = Implies | NotBefore


@dataclass(frozen=True)
class Table:
    """One raw table: its grain, columns, primary key and the column that decides its date partition."""

    name: str
    kind: Literal["entity snapshot", "event"]
    grain: str
    description: str
    columns: tuple[Column, ...]
    key: tuple[str, ...]
    partition_by: str
    rules: tuple[Rule, ...] = field(default=())

    def column(self, name: str) -> Column:
        for col in self.columns:
            if col.name == name:
                return col
        raise KeyError(f"table {self.name!r} has no column {name!r}")

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    def arrow_schema(self) -> pa.Schema:
        return pa.schema([c.field() for c in self.columns])


def _kpi(name: str, description: str, unit: str, *, dtype: DType = "float64", max_: float | None = None) -> Column:
    return Column(name, dtype, description, unit=unit, min=0.0, max=max_)


# Session-level UX and backend performance KPIs, as a real-user-monitoring export reports them.
SESSION_KPIS: tuple[Column, ...] = (
    _kpi("page_load_ms", "Mean full page load time (load event) over the session's pageviews.", "ms"),
    _kpi("ttfb_ms", "Mean time to first byte.", "ms"),
    _kpi("fcp_ms", "Mean First Contentful Paint.", "ms"),
    _kpi("lcp_ms", "Mean Largest Contentful Paint (Core Web Vital).", "ms"),
    _kpi("inp_ms", "Interaction to Next Paint, the session's worst interaction (Core Web Vital).", "ms"),
    _kpi("cls", "Cumulative Layout Shift (Core Web Vital), unitless.", "score", max_=10.0),
    _kpi("tti_ms", "Mean time to interactive.", "ms"),
    _kpi("total_blocking_time_ms", "Mean total blocking time of the main thread.", "ms"),
    _kpi("dom_content_loaded_ms", "Mean DOMContentLoaded time.", "ms"),
    _kpi("server_render_ms", "Mean server-side render time of HTML pages.", "ms"),
    _kpi("api_latency_ms", "Median latency of the session's storefront API calls.", "ms"),
    _kpi("search_latency_ms", "Median latency of search API calls seen by the session.", "ms"),
    _kpi("cart_latency_ms", "Median latency of add-to-cart calls.", "ms"),
    _kpi("checkout_latency_ms", "Median latency of checkout step transitions.", "ms"),
    _kpi("payment_latency_ms", "Latency of the payment provider's authorisation call.", "ms"),
    _kpi("recommendation_latency_ms", "Median latency of recommendation widgets.", "ms"),
    _kpi("db_query_ms", "Mean backend database time per request.", "ms"),
    _kpi("third_party_script_ms", "Mean main-thread time spent in third-party scripts.", "ms"),
    _kpi("js_error_count", "JavaScript errors raised in the session.", "count", dtype="int64"),
    _kpi("http_5xx_count", "HTTP 5xx responses served to the session.", "count", dtype="int64"),
    _kpi("http_4xx_count", "HTTP 4xx responses served to the session.", "count", dtype="int64"),
    _kpi("long_task_count", "Main-thread tasks longer than 50 ms.", "count", dtype="int64"),
    _kpi("image_bytes_kb", "Mean image bytes per pageview.", "KiB"),
    _kpi("page_weight_kb", "Mean total transfer size per pageview.", "KiB"),
    _kpi("cdn_hit_ratio", "Share of the session's requests served from the CDN cache.", "ratio", max_=1.0),
)

KPI_NAMES: tuple[str, ...] = tuple(c.name for c in SESSION_KPIS)

_ID = r"[A-Za-z0-9_\-:.]{1,64}"

CATALOG = Table(
    name="catalog",
    kind="entity snapshot",
    grain="one product on one snapshot date",
    description="Every product on sale on the snapshot date, with its place in the category tree and its prices.",
    columns=(
        Column("snapshot_date", "date", "Date the snapshot describes (UTC)."),
        Column("product_id", "string", "Product (SKU) identifier.", pattern=_ID),
        Column(
            "category_path", "string", "Path in the category tree, levels joined by '/'.", pattern=r"[^/]+(/[^/]+)+"
        ),
        Column("category", "string", "Top level of the category tree (first element of category_path)."),
        Column("brand", "string", "Brand name."),
        Column("list_price", "float64", "Regular (reference) price.", unit="EUR", min=0.01),
        Column(
            "price", "float64", "Selling price on the snapshot date, after markdowns or markups.", unit="EUR", min=0.01
        ),
        Column("unit_cost", "float64", "Cost of goods per unit.", unit="EUR", min=0.0),
        Column("is_repeat_purchase", "bool", "Consumable bought again and again (may be recommended after purchase)."),
        Column("launched_on", "date", "First date the product was on sale."),
    ),
    key=("snapshot_date", "product_id"),
    partition_by="snapshot_date",
    rules=(NotBefore("snapshot_date", "launched_on"),),
)

CUSTOMERS = Table(
    name="customers",
    kind="entity snapshot",
    grain="one registered customer on one snapshot date",
    description="Every registered customer known on the snapshot date.",
    columns=(
        Column("snapshot_date", "date", "Date the snapshot describes (UTC)."),
        Column("customer_id", "string", "Customer identifier.", pattern=_ID),
        Column("signup_date", "date", "Date the customer registered."),
        Column("country", "string", "ISO 3166-1 alpha-2 country code.", pattern=r"[A-Z]{2}"),
        Column("acquisition_channel", "string", "Channel that acquired the customer.", allowed=ACQUISITION_CHANNELS),
    ),
    key=("snapshot_date", "customer_id"),
    partition_by="snapshot_date",
    rules=(NotBefore("snapshot_date", "signup_date"),),
)

SESSIONS = Table(
    name="sessions",
    kind="event",
    grain="one visit",
    description="Visits to the shop with real-user-monitoring performance KPIs and the visit's outcome.",
    columns=(
        Column("session_id", "string", "Session identifier.", pattern=_ID),
        Column("customer_id", "string", "Logged-in customer; null for anonymous visits.", nullable=True, pattern=_ID),
        Column("started_at", "timestamp", "Session start (UTC)."),
        Column("device", "string", "Device class.", allowed=DEVICES),
        Column("channel", "string", "Traffic channel of the landing.", allowed=CHANNELS),
        Column("pageviews", "int64", "Pages viewed.", unit="count", min=1),
        Column("duration_s", "float64", "Time from first to last hit.", unit="s", min=0.0),
        *SESSION_KPIS,
        Column("converted", "bool", "At least one order was placed in the session."),
        Column("revenue", "float64", "Amount paid for the session's orders, after discounts.", unit="EUR", min=0.0),
    ),
    key=("session_id",),
    partition_by="started_at",
)

IMPRESSIONS = Table(
    name="impressions",
    kind="event",
    grain="one product shown at one position of one list",
    description=(
        "Products shown in lists (category pages, search results, recommendation widgets) and how far the visitor "
        "went with each. Graded relevance is the furthest step reached: impression 0, click 1, cart 2, checkout 3, "
        "purchase 4."
    ),
    columns=(
        Column("list_id", "string", "The list (one query result set or one page of a category).", pattern=_ID),
        Column("session_id", "string", "Session the list was shown in.", pattern=_ID),
        Column("shown_at", "timestamp", "When the list was shown (UTC)."),
        Column("list_type", "string", "Where the list was shown.", allowed=LIST_TYPES),
        Column("ranker", "string", "Policy that ordered the list; `randomized` lists are shuffled.", allowed=RANKERS),
        Column("query", "string", "Search query for search lists, else null.", nullable=True),
        Column("category", "string", "Category browsed for category pages, else null.", nullable=True),
        Column("product_id", "string", "Product shown.", pattern=_ID),
        Column("position", "int64", "1-based position in the list.", unit="rank", min=1),
        Column("price_shown", "float64", "Price shown next to the product.", unit="EUR", min=0.01),
        Column("clicked", "bool", "The product was clicked."),
        Column("added_to_cart", "bool", "The product was added to the cart from this list."),
        Column("checked_out", "bool", "The product reached checkout."),
        Column("purchased", "bool", "The product was bought."),
    ),
    key=("list_id", "position"),
    partition_by="shown_at",
    rules=(
        Implies("added_to_cart", "clicked"),
        Implies("checked_out", "added_to_cart"),
        Implies("purchased", "checked_out"),
    ),
)

ORDERS = Table(
    name="orders",
    kind="event",
    grain="one order line",
    description="Order lines with the price actually paid and the promotion that applied.",
    columns=(
        Column("order_id", "string", "Order identifier.", pattern=_ID),
        Column("ordered_at", "timestamp", "Order time (UTC)."),
        Column("session_id", "string", "Session the order was placed in.", pattern=_ID),
        Column("customer_id", "string", "Buyer; null for guest checkout.", nullable=True, pattern=_ID),
        Column("product_id", "string", "Product bought.", pattern=_ID),
        Column("quantity", "int64", "Units bought.", unit="count", min=1),
        Column("unit_price_paid", "float64", "Price per unit before the line discount.", unit="EUR", min=0.01),
        Column(
            "discount", "float64", "Discount on the whole line (coupon, free shipping), at most the line's value.",
            unit="EUR", min=0.0,
        ),
        Column("promotion_id", "string", "Promotion redeemed on this line, else null.", nullable=True, pattern=_ID),
    ),
    key=("order_id", "product_id"),
    partition_by="ordered_at",
)

PROMOTION_OFFERS = Table(
    name="promotion_offers",
    kind="event",
    grain="one offer (or a held-out no-offer) to one customer",
    description=(
        "Coupons offered to customers. `none` rows are the randomised holdout: customers picked for the campaign "
        "who were deliberately sent nothing."
    ),
    columns=(
        Column("offer_id", "string", "Offer identifier.", pattern=_ID),
        Column("customer_id", "string", "Customer offered to.", pattern=_ID),
        Column("promotion_id", "string", "Coupon identifier (`none` for the holdout).", pattern=_ID),
        Column("promotion_kind", "string", "What the coupon gives.", allowed=PROMOTION_KINDS),
        Column("discount_pct", "float64", "Percent off the order for `percent_off`, else 0.", unit="%", min=0, max=100),
        Column("min_spend", "float64", "Order value needed to redeem.", unit="EUR", min=0.0),
        Column("offered_at", "timestamp", "When the offer was sent (UTC)."),
        Column("expires_at", "timestamp", "Last moment the coupon can be redeemed (UTC)."),
        Column(
            "assignment", "string", "How the coupon was chosen: `random` (experiment) or `policy`.", allowed=ASSIGNMENTS
        ),
        Column("redeemed", "bool", "The coupon was used before it expired."),
    ),
    key=("offer_id",),
    partition_by="offered_at",
    rules=(NotBefore("expires_at", "offered_at"),),
)

EXPOSURES = Table(
    name="exposures",
    kind="event",
    grain="one unit's first exposure to one experiment",
    description="The first time each unit saw an experiment, and the variant it was assigned.",
    columns=(
        Column("experiment_id", "string", "Experiment.", pattern=_ID),
        Column("unit_id", "string", "Randomisation unit (a customer id).", pattern=_ID),
        Column("unit_type", "string", "What the unit is.", allowed=UNIT_TYPES),
        Column("variant", "string", "Variant assigned."),
        Column("first_exposed_at", "timestamp", "First exposure (UTC)."),
    ),
    key=("experiment_id", "unit_id"),
    partition_by="first_exposed_at",
)

EXPERIMENTS = Table(
    name="experiments",
    kind="entity snapshot",
    grain="one experiment on one snapshot date",
    description="The experiments defined on the snapshot date: variants, planned split, window and metrics.",
    columns=(
        Column("snapshot_date", "date", "Date the snapshot describes (UTC)."),
        Column("experiment_id", "string", "Experiment identifier.", pattern=_ID),
        Column("name", "string", "Human-readable name."),
        Column("unit_type", "string", "Randomisation unit.", allowed=UNIT_TYPES),
        Column("variants", "list<string>", "Variant names; the first is the control."),
        Column("planned_weights", "list<float64>", "Planned share of units per variant, same order, summing to 1."),
        Column("start_date", "date", "First day of exposure."),
        Column("end_date", "date", "Planned last day (the fixed-horizon readout date)."),
        Column("primary_metric", "string", "Metric the decision is made on.", allowed=METRICS),
        Column("guardrail_metrics", "list<string>", "Metrics that must not get worse."),
        Column("min_detectable_effect", "float64", "Relative effect the test is sized for.", unit="ratio", min=0.0),
    ),
    key=("snapshot_date", "experiment_id"),
    partition_by="snapshot_date",
    rules=(NotBefore("end_date", "start_date"),),
)

TABLES: dict[str, Table] = {
    t.name: t for t in (CATALOG, CUSTOMERS, SESSIONS, IMPRESSIONS, ORDERS, PROMOTION_OFFERS, EXPOSURES, EXPERIMENTS)
}


def get_table(name: str) -> Table:
    try:
        return TABLES[name]
    except KeyError:
        raise KeyError(f"unknown raw table {name!r}; the contract has {', '.join(TABLES)}") from None
