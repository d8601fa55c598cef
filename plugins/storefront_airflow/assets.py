"""The Assets that chain the DAGs: the features DAG emits one per date, the training DAG is scheduled on it."""

from __future__ import annotations

from airflow.sdk import Asset

DAILY_FEATURES = Asset(
    name="storefront_daily_features",
    uri="file:///storefront/lake/features",
    group="storefront",
    extra={"what": "offline feature partitions of a date, validated and materialized into the online store"},
)

AB_READOUTS = Asset(
    name="storefront_ab_readouts",
    uri="file:///storefront/reports/ab_readouts",
    group="storefront",
    extra={"what": "the A/B readouts of a date: one record and page per experiment, and the index"},
)
