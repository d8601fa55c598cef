"""The offline feature tables: what the Spark builds write and what Feast, Great Expectations and training read.

Layout: ``<lake>/features/<table>/dt=YYYY-MM-DD/part-*.parquet``, one partition per run date, overwritten as a
whole by that date's run. Every table has its entity key column and ``event_timestamp`` (UTC, microseconds),
the moment from which the row's values are known: point-in-time joins never see a row before it.
"""

from __future__ import annotations

from dataclasses import dataclass

from feature_repo.contract.schema import KPI_NAMES, Column

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
    ),
    ttl_days=2,
)

FEATURE_TABLES: dict[str, FeatureTable] = {t.name: t for t in (SESSION_KPIS, CUSTOMER_HISTORY)}
