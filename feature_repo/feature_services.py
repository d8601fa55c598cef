"""Feast feature services, versioned with the model that reads them (a new model version -> a new service).

A Feast definition module: `feast apply` (and ``store.apply()``) import it as a top-level module from this folder.
"""

from __future__ import annotations

from feast import FeatureService
from feature_views import customer_history, customer_product_interactions, product_demand, product_ranking, session_kpis

from feature_repo.features.tables import SESSION_KPIS

# The conversion model's inputs: the session's KPIs and context (customer_id is the join key, not a feature)
# and the customer's history as of the session start.
conversion_v1 = FeatureService(
    name="conversion_v1",
    features=[
        session_kpis[[c for c in SESSION_KPIS.column_names if c != "customer_id"]],
        customer_history,
    ],
    description="Conversion model v1: session KPIs and context plus the customer's history at the session start.",
)

# The promotion uplift model's inputs: the customer's history as of the offer (the row of the day before).
promotion_v1 = FeatureService(
    name="promotion_v1",
    features=[customer_history],
    description="Promotion uplift model v1: the customer's history when the offer is sent.",
)

# The ranking model's item features: every product_ranking column (price relative to the list is computed from
# the list itself when the training set or a request is assembled).
ranking_v1 = FeatureService(
    name="ranking_v1",
    features=[product_ranking],
    description="Ranking model v1: position-debiased rates, popularity, price and category of each listed product.",
)

# The elasticity model's inputs: each product's day of demand (units, impressions, prices, cost, discount and
# promotion flags, calendar controls) as known once that day is over.
elasticity_v1 = FeatureService(
    name="elasticity_v1",
    features=[product_demand],
    description="Elasticity model v1: daily units, exposure, prices, cost and calendar controls per product.",
)

# The recommender's inputs: the customers' daily interactions. Offline only; its training set reads the window's
# partitions whole (every row is an event of its date, so there is nothing to join point in time).
recommendation_v1 = FeatureService(
    name="recommendation_v1",
    features=[customer_product_interactions],
    description="Recommendation model v1: daily (customer, product, device) interactions, purchase > cart > click.",
)
