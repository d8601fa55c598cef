"""Feast entities: the keys the offline feature tables are joined on, one per entity of FEATURE_TABLES.

A Feast definition module: `feast apply` (and ``store.apply()``) import it as a top-level module from this folder.
"""

from __future__ import annotations

from feast import Entity, ValueType

from feature_repo.features.tables import (
    CUSTOMER_HISTORY,
    CUSTOMER_PRODUCT_INTERACTIONS,
    PRODUCT_RANKING,
    SESSION_KPIS,
    FeatureTable,
)


def _entity(table: FeatureTable, description: str) -> Entity:
    """The entity of ``table``, keyed by its string key column."""
    return Entity(name=table.entity, join_keys=[table.key], value_type=ValueType.STRING, description=description)


# One visit to the shop. Only training joins on it: at serving time the session's KPIs come with the request.
session = _entity(SESSION_KPIS, "A visit to the shop (session_id); the grain of the conversion model.")

# A registered customer; 'anonymous' visits carry that literal key and never match a history row.
customer = _entity(CUSTOMER_HISTORY, "A registered customer (customer_id); 'anonymous' has no history.")

# A product of the catalog (product_id): the grain of the ranking model's item features.
product = _entity(PRODUCT_RANKING, "A product of the catalog (product_id); the ranking model scores products.")

# A (customer, product, device) triple of the recommender's interactions; offline only (training reads the window).
customer_product = _entity(
    CUSTOMER_PRODUCT_INTERACTIONS, "A customer's interactions with a product on one device ('customer|product|device')."
)
