"""Feast batch sources: the Spark builds' offline feature tables, one folder per table under the features root.

Each table lives at ``<features_root>/<table>/dt=YYYY-MM-DD/part-*.parquet`` (plus Spark's ``_SUCCESS`` and
``.crc`` files). The source points at the table folder itself: both Dask (embedded) and Spark (production) read
it as a hive-partitioned dataset and skip files whose names start with ``_`` or ``.``.

Both the root and the source kind come from ``config.settings`` (``features_root``, absolute; ``profile``:
embedded -> FileSource, production -> SparkSource), so ``feast apply`` resolves them the same from any folder.
"""

from __future__ import annotations

from feast.data_format import ParquetFormat
from feast.data_source import DataSource
from feast.infra.offline_stores.contrib.spark_offline_store.spark_source import SparkSource
from feast.infra.offline_stores.file_source import FileSource

from config.settings import get_settings
from feature_repo.features.tables import (
    CUSTOMER_HISTORY,
    CUSTOMER_PRODUCT_INTERACTIONS,
    EVENT_TIMESTAMP,
    PRODUCT_DEMAND,
    PRODUCT_RANKING,
    SESSION_KPIS,
    FeatureTable,
)

PARTITION_COLUMN = "dt"  # the hive partition folder of each run date (dt=YYYY-MM-DD)


def _source(table: FeatureTable, description: str) -> DataSource:
    """The batch source of ``table``: a FileSource in the embedded profile, a SparkSource in production."""
    settings = get_settings()
    path = str(settings.features_root / table.name)  # absolute: the settings resolve it
    name = f"{table.name}_source"
    if settings.profile == "production":
        return SparkSource(
            name=name,
            path=path,
            file_format="parquet",
            timestamp_field=EVENT_TIMESTAMP,
            # prunes dt= folders outside the requested interval: a row's event date is its partition's date
            date_partition_column=PARTITION_COLUMN,
            description=description,
        )
    return FileSource(
        name=name, path=path, file_format=ParquetFormat(), timestamp_field=EVENT_TIMESTAMP, description=description
    )


# The sessions' KPIs and context from the session_kpis build, stamped at the session's start.
session_kpis_source = _source(SESSION_KPIS, "session_kpis build output: one row per session, at its start.")

# The daily customer snapshots from the customer_history build, stamped at the end of each run date.
customer_history_source = _source(CUSTOMER_HISTORY, "customer_history build output: one row per customer and date.")

# The daily product snapshots from the product_ranking build (debiased rates, popularity, price), end of each date.
product_ranking_source = _source(PRODUCT_RANKING, "product_ranking build output: one row per product and date.")

# The recommender's daily interactions from the customer_product_interactions build, stamped at the end of each date.
customer_product_interactions_source = _source(
    CUSTOMER_PRODUCT_INTERACTIONS, "customer_product_interactions build output: one row per triple and date."
)

# What each product on sale sold on each date, at what price, from the product_demand build; end of each date.
product_demand_source = _source(PRODUCT_DEMAND, "product_demand build output: one row per product on sale and date.")
