"""Feast feature views, generated from FEATURE_TABLES: the schema is the table's columns, the TTL its ttl_days.

A Feast definition module: `feast apply` (and ``store.apply()``) import it as a top-level module from this folder.
"""

from __future__ import annotations

from datetime import timedelta

from data_sources import (
    customer_history_source,
    customer_product_interactions_source,
    product_demand_source,
    product_ranking_source,
    session_kpis_source,
)
from entities import customer, customer_product, product, session
from feast import Entity, FeatureView, Field
from feast.data_source import DataSource
from feast.types import FeastType, Float64, Int64, String

from feature_repo.features.tables import (
    CUSTOMER_HISTORY,
    CUSTOMER_PRODUCT_INTERACTIONS,
    PRODUCT_DEMAND,
    PRODUCT_RANKING,
    SESSION_KPIS,
    FeatureTable,
)

# Contract dtype -> Feast type; a column of any other dtype cannot be served and fails the import loudly.
FEAST_TYPES: dict[str, FeastType] = {"string": String, "int64": Int64, "float64": Float64}


def _feature_view(table: FeatureTable, entity: Entity, source: DataSource, *, online: bool) -> FeatureView:
    """The feature view of ``table``: its key, then one field per feature column, in the table's order."""
    try:
        fields = [Field(name=c.name, dtype=FEAST_TYPES[c.dtype], description=c.description) for c in table.columns]
    except KeyError as err:
        raise TypeError(f"feature table {table.name!r}: column dtype {err.args[0]!r} has no Feast type") from None
    return FeatureView(
        name=table.name,
        entities=[entity],
        ttl=timedelta(days=table.ttl_days),
        schema=[Field(name=table.key, dtype=String), *fields],
        source=source,
        online=online,
        description=table.description,
    )


# Offline only (never materialized): a session's KPIs are known when it starts and arrive with the request.
session_kpis = _feature_view(SESSION_KPIS, session, session_kpis_source, online=False)

# Materialized daily into the online store for serving; the 2-day TTL tolerates one missed nightly run.
customer_history = _feature_view(CUSTOMER_HISTORY, customer, customer_history_source, online=True)

# Materialized daily for serving ranked lists; the 2-day TTL tolerates one missed nightly run.
product_ranking = _feature_view(PRODUCT_RANKING, product, product_ranking_source, online=True)

# Offline only: the recommender reads its training window's partitions; serving scores from the model's own state.
customer_product_interactions = _feature_view(
    CUSTOMER_PRODUCT_INTERACTIONS, customer_product, customer_product_interactions_source, online=False
)

# Offline only: the elasticity model reads its training window's days; price recommendations are written in batch.
product_demand = _feature_view(PRODUCT_DEMAND, product, product_demand_source, online=False)
