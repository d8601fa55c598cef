"""Build the ``customer_product_interactions`` partition of one date D: the recommender's implicit feedback.

Rows: one per (customer, product, device) that had at least one click or one order line on D, sorted by
``interaction_id`` = ``customer_id|product_id|device``. ``event_timestamp`` = D 23:59:59.999999 UTC (the day's
interactions are known once the day is over), then the columns of ``tables.CUSTOMER_PRODUCT_INTERACTIONS``.

Definitions. A session's customer is its ``customer_id`` ('anonymous' when null: guests count for popularity,
never for a personal model) and its device is the session's ``device``; an impression or order line belongs to
the customer and device of its session.

* ``impressions``: impressions of the product in the customer's sessions on that device (clicked or not);
* ``clicks``, ``carts``: impressions with ``clicked`` / ``added_to_cart``;
* ``purchases``: order lines of the product; ``units_purchased``: their ``quantity``;
* ``strength``: ``tables.INTERACTION_STRENGTH`` of the strongest interaction: 4 with a purchase, else 2 with an
  add to cart, else 1 (a click).

Impressions without a click make no row: with the position bias of a list, "shown at position 12 and not
clicked" mostly means "not looked at", so they are too weak a negative to train on (the recommender samples its
negatives from the catalog instead); they are still counted on the rows that exist. Orders are the source of
purchases (not ``impressions.purchased``): an order placed without a logged list still counts.

Reads the raw ``sessions``, ``impressions`` and ``orders`` partitions of D only; a range of dates is built in
one job, each event joined with the sessions of its own date.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from pyspark.sql import SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from feature_repo.contract.schema import IMPRESSIONS, ORDERS, SESSIONS
from feature_repo.features.spark_io import DT, end_of_day_column, read_raw, write_feature_partitions
from feature_repo.features.state import raw_reads
from feature_repo.features.tables import (
    ANONYMOUS_CUSTOMER,
    CUSTOMER_PRODUCT_INTERACTIONS,
    EVENT_TIMESTAMP,
    INTERACTION_STRENGTH,
)

KEY_SEPARATOR = "|"  # never inside a contract id (ids match [A-Za-z0-9_\-:.]+)
_PAIR = ["customer_id", "product_id", "device"]


def plan(raw_root: Path, features_root: Path, days: list[dt.date]) -> dict[str, list[dt.date]]:
    """Raw partition dates a build of ``days`` reads, by raw table; raises MissingRawPartitionError on a gap."""
    return raw_reads(raw_root, [t.name for t in (SESSIONS, IMPRESSIONS, ORDERS)], days, built=days,
                     feature_table=CUSTOMER_PRODUCT_INTERACTIONS.name)


def build_customer_product_interactions_range(
    spark: SparkSession, raw_root: Path, features_root: Path, days: list[dt.date]
) -> list[Path]:
    """Write the ``customer_product_interactions`` partitions of ``days`` in one job; return the folders."""
    reads = plan(raw_root, features_root, days)
    sessions = read_raw(spark, raw_root, SESSIONS, reads[SESSIONS.name], ["session_id", "customer_id", "device"])
    sessions = sessions.select(
        "session_id", F.coalesce("customer_id", F.lit(ANONYMOUS_CUSTOMER)).alias("customer_id"), "device", DT
    )
    impressions = read_raw(
        spark, raw_root, IMPRESSIONS, reads[IMPRESSIONS.name], ["session_id", "product_id", "clicked", "added_to_cart"]
    )
    orders = read_raw(spark, raw_root, ORDERS, reads[ORDERS.name], ["session_id", "product_id", "quantity"])
    # an event belongs to the sessions of its own date's partition, as when each date was built alone
    by_session = ["session_id", DT]
    pair = [DT, *_PAIR]

    long = T.LongType()
    shown = (
        impressions.join(sessions, by_session, "inner")
        .groupBy(*pair)
        .agg(
            F.count(F.lit(1)).cast(long).alias("impressions"),
            F.sum(F.col("clicked").cast(long)).alias("clicks"),
            F.sum(F.col("added_to_cart").cast(long)).alias("carts"),
        )
    )
    bought = (
        orders.join(sessions, by_session, "inner")
        .groupBy(*pair)
        .agg(F.count(F.lit(1)).cast(long).alias("purchases"), F.sum("quantity").cast(long).alias("units_purchased"))
    )
    zero = F.lit(0).cast(long)
    rows = shown.join(bought, pair, "full_outer").select(
        *pair,
        *(F.coalesce(c, zero).alias(c) for c in ("impressions", "clicks", "carts", "purchases", "units_purchased")),
    )
    strength = (
        F.when(F.col("purchases") > 0, F.lit(INTERACTION_STRENGTH["purchase"]))
        .when(F.col("carts") > 0, F.lit(INTERACTION_STRENGTH["cart"]))
        .otherwise(F.lit(INTERACTION_STRENGTH["click"]))
    )
    interactions = rows.where((F.col("clicks") > 0) | (F.col("purchases") > 0)).select(
        F.concat_ws(KEY_SEPARATOR, *_PAIR).alias(CUSTOMER_PRODUCT_INTERACTIONS.key),
        end_of_day_column().alias(EVENT_TIMESTAMP),
        *_PAIR,
        "impressions",
        "clicks",
        "carts",
        "purchases",
        "units_purchased",
        strength.alias("strength"),
        DT,
    )
    return write_feature_partitions(interactions, CUSTOMER_PRODUCT_INTERACTIONS, features_root, days)


def build_customer_product_interactions(spark: SparkSession, raw_root: Path, features_root: Path, day: dt.date) -> Path:
    """Write ``<features_root>/customer_product_interactions/dt=<day>/`` (see the module docstring)."""
    return build_customer_product_interactions_range(spark, raw_root, features_root, [day])[0]
