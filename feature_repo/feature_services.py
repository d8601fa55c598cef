"""Feast feature services, versioned with the model that reads them (a new model version -> a new service).

A Feast definition module: `feast apply` (and ``store.apply()``) import it as a top-level module from this folder.
"""

from __future__ import annotations

from feast import FeatureService
from feature_views import customer_history, session_kpis

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
