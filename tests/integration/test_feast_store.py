"""Feast through feature_repo/store.py, on synthetic feature partitions laid out exactly as the Spark builds write them.

The partitions are written here with pyarrow in the FeatureTable schema (key, event_timestamp in UTC microseconds,
then the table's columns), in Spark's layout: ``<table>/dt=YYYY-MM-DD/part-0000N-<uuid>-c000.snappy.parquet``
with ``_SUCCESS`` and Hadoop ``.crc`` checksum files beside them. They do not depend on the Spark builds.

The production test (Spark offline store, SQL registry on PostgreSQL, Redis online store) skips when PostgreSQL or
Redis is unreachable; it creates its own database and claims an empty Redis database number, and removes both.
Module runtime: about 25 s on an idle 2-core machine (Feast's import and Spark's start dominate), 90 s under load.
"""

from __future__ import annotations

import datetime as dt
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from config.settings import get_settings
from feature_repo.contract.schema import CHANNELS, DEVICES
from feature_repo.features.tables import (
    ANONYMOUS_CUSTOMER,
    CUSTOMER_HISTORY,
    EVENT_TIMESTAMP,
    FEATURE_TABLES,
    PRODUCT_RANKING,
    SESSION_KPIS,
    FeatureTable,
)

# Dask's own sort inside Feast's file store (dask 2026.8 with pandas 2.3); nothing of ours
pytestmark = pytest.mark.filterwarnings("ignore:Downcasting object dtype arrays:FutureWarning")

UTC = dt.UTC
D0, D1, D2, D3 = (dt.date(2026, 1, 1) + dt.timedelta(days=i) for i in range(4))
US = dt.timedelta(microseconds=1)
EXPORTED = (  # set by store.feature_store(); deleted through monkeypatch so that each test starts clean
    "STOREFRONT_PROFILE", "STOREFRONT_FEATURES_ROOT", "STOREFRONT_FEAST_DATA", "STOREFRONT_REDIS_CONNECTION",
    "STOREFRONT_FEAST_REGISTRY_URL", "STOREFRONT_SPARK_MASTER", "STOREFRONT_SPARK_DRIVER_MEMORY",
)


def end_of(day: dt.date) -> dt.datetime:
    """A customer_history row's event_timestamp: the last microsecond of its run date, UTC."""
    return dt.datetime.combine(day, dt.time.max, UTC)


def at(day: dt.date, hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour, minute), UTC)


# customer_history rows: (customer, run date) -> the base of every value in the row (values identify the row).
# c3 never ordered: its nullable columns are null.
HISTORY: dict[tuple[str, dt.date], int] = {
    ("c1", D0): 100, ("c1", D1): 110,
    ("c2", D0): 200,
    ("c3", D1): 300,
}
# sessions: id -> (customer, started_at)
SESSIONS: dict[str, tuple[str, dt.datetime]] = {
    "s01": ("c1", at(D0, 12)),                  # before c1's first row: no history
    "s02": ("c1", end_of(D0) + US),             # first microsecond of D1: sees the D0 row
    "s03": ("c1", at(D1, 12)),                  # D0 row
    "s04": ("c1", end_of(D1) - US),             # one microsecond before the D1 row: still D0
    "s05": ("c1", end_of(D1)),                  # exactly at the D1 row: sees it (<=)
    "s06": ("c1", at(D2, 8)),                   # D1 row
    "s07": ("c2", at(D2, 20)),                  # D0 row, 1 day 20 h old: inside the 2-day TTL
    "s08": ("c2", end_of(D2) + US),             # D0 row 2 days + 1 us old: outside the TTL -> nulls
    "s09": ("c2", at(D3, 10)),                  # outside the TTL -> nulls (the file store drops this row)
    "s10": (ANONYMOUS_CUSTOMER, at(D1, 9)),     # never has history
    "s11": ("c404", at(D1, 10)),                # unknown customer
    "s12": ("c3", at(D2, 1)),                   # c3's D1 row, with its nulls
}
# expected customer_history row per session (None: no row valid at the session start)
EXPECTED_HISTORY: dict[str, tuple[str, dt.date] | None] = {
    "s01": None, "s02": ("c1", D0), "s03": ("c1", D0), "s04": ("c1", D0), "s05": ("c1", D1), "s06": ("c1", D1),
    "s07": ("c2", D0), "s08": None, "s09": None, "s10": None, "s11": None, "s12": ("c3", D1),
}


def history_row(customer: str, day: dt.date) -> dict[str, Any]:
    base = HISTORY[(customer, day)]
    row: dict[str, Any] = {CUSTOMER_HISTORY.key: customer, EVENT_TIMESTAMP: end_of(day)}
    for i, col in enumerate(CUSTOMER_HISTORY.columns):
        if col.nullable and customer == "c3":
            row[col.name] = None
        elif col.dtype == "string":
            row[col.name] = col.allowed[(base + i) % len(col.allowed)] if col.allowed else f"{customer}-{i}"
        else:
            row[col.name] = base + i if col.dtype == "int64" else base + i + 0.25
    return row


def session_row(session_id: str) -> dict[str, Any]:
    customer, started_at = SESSIONS[session_id]
    n = int(session_id[1:])
    row: dict[str, Any] = {SESSION_KPIS.key: session_id, EVENT_TIMESTAMP: started_at}
    for i, col in enumerate(SESSION_KPIS.columns):
        row[col.name] = 1000.0 * n + i + 0.5 if col.dtype == "float64" else None
    row.update(
        customer_id=customer,
        device=DEVICES[n % len(DEVICES)],
        channel=CHANNELS[n % len(CHANNELS)],
        is_anonymous=int(customer == ANONYMOUS_CUSTOMER),
    )
    return row


# Every other feature table (the product ones): two keys with a row on D0 and a newer one on D1. Feast's apply and
# materialize read every view's source folder, and the nightly Spark builds always write every table, so the lake
# holds them all; values identify the row (key number, date) like the rows above.
OTHER_TABLES = [t for t in FEATURE_TABLES.values() if t not in (SESSION_KPIS, CUSTOMER_HISTORY)]
OTHER_KEYS, OTHER_DAYS = ("k1", "k2"), (D0, D1)


def other_row(table: FeatureTable, key: str, day: dt.date) -> dict[str, Any]:
    base = 1000 * int(key[1:]) + 100 * (day - D0).days
    row: dict[str, Any] = {table.key: key, EVENT_TIMESTAMP: end_of(day)}
    for i, col in enumerate(table.columns):
        value = base + i
        row[col.name] = {"string": f"{col.name}-{value}", "float64": value + 0.25}.get(col.dtype, value)
    return row


def hadoop_crc(data: bytes) -> bytes:
    """A Hadoop ChecksumFileSystem ``.crc`` file (CRC32 per 512 bytes); Spark verifies these when it reads."""
    return b"crc\x00" + struct.pack(">i", 512) + b"".join(
        struct.pack(">I", zlib.crc32(data[i : i + 512])) for i in range(0, len(data), 512)
    )


def write_partition(features_root: Path, table: FeatureTable, day: dt.date, rows: list[dict[str, Any]]) -> None:
    """One date's partition as Spark writes it: part files (two here, so readers see several), _SUCCESS, .crc."""
    schema = pa.schema([
        pa.field(table.key, pa.string(), nullable=False),
        pa.field(EVENT_TIMESTAMP, pa.timestamp("us", tz="UTC"), nullable=False),
        *(c.field() for c in table.columns),
    ])
    folder = features_root / table.name / f"dt={day.isoformat()}"
    folder.mkdir(parents=True)
    halves = [rows[: (len(rows) + 1) // 2], rows[(len(rows) + 1) // 2 :]]
    for i, part in enumerate(h for h in halves if h):
        path = folder / f"part-{i:05d}-5f3c1e2a-0b7d-4c1e-9d3a-{day:%Y%m%d}0000{i:02d}-c000.snappy.parquet"
        pq.write_table(pa.Table.from_pylist(part, schema=schema), path, compression="snappy", coerce_timestamps="us")
    (folder / "_SUCCESS").touch()
    for path in list(folder.iterdir()):
        (folder / f".{path.name}.crc").write_bytes(hadoop_crc(path.read_bytes()))


@pytest.fixture(scope="module")
def lake(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A lake root whose features/ holds the synthetic partitions of every feature table."""
    root = tmp_path_factory.mktemp("lake")
    for table in OTHER_TABLES:
        for day in OTHER_DAYS:
            write_partition(root / "features", table, day, [other_row(table, k, day) for k in OTHER_KEYS])
    for day in sorted({d for _, d in HISTORY}):
        write_partition(root / "features", CUSTOMER_HISTORY, day, [history_row(c, d) for c, d in HISTORY if d == day])
    for day in sorted({s[1].date() for s in SESSIONS.values()}):
        rows = [session_row(s) for s, (_, ts) in SESSIONS.items() if ts.date() == day]
        write_partition(root / "features", SESSION_KPIS, day, rows)
    return root


def use_settings(monkeypatch: pytest.MonkeyPatch, var_root: Path, lake_root: Path, **env: str) -> None:
    """Point config.settings at ``var_root`` and ``lake_root`` (plus ``STOREFRONT_<KEY>`` overrides)."""
    for name in EXPORTED:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("STOREFRONT_VAR_ROOT", str(var_root))
    monkeypatch.setenv("STOREFRONT_LAKE_ROOT", str(lake_root))
    for key, value in env.items():
        monkeypatch.setenv(f"STOREFRONT_{key.upper()}", value)
    get_settings.cache_clear()


@pytest.fixture
def store(tmp_path: Path, lake: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    """feature_repo.store on the embedded profile with a fresh registry and online store, definitions applied."""
    from feature_repo import store as feast_store

    use_settings(monkeypatch, tmp_path / "var", lake, profile="embedded")
    feast_store.apply()
    yield feast_store
    get_settings.cache_clear()


def entity_df() -> pd.DataFrame:
    """Every session once, in a shuffled order and with a non-default index, one row repeated, plus a label."""
    order = ["s09", "s02", "s11", "s05", "s01", "s12", "s07", "s04", "s10", "s06", "s03", "s08", "s05"]
    return pd.DataFrame(
        {
            "session_id": order,
            "customer_id": [SESSIONS[s][0] for s in order],
            EVENT_TIMESTAMP: [SESSIONS[s][1] for s in order],
            "converted": [i % 2 for i in range(len(order))],
        },
        index=pd.Index([f"row{i}" for i in range(len(order))], name="row"),
    )


def expected_history(session_id: str) -> dict[str, Any]:
    """The customer_history values the session must get (nulls when no row is valid)."""
    ref = EXPECTED_HISTORY[session_id]
    row = history_row(*ref) if ref else {}
    return {c: row.get(c) for c in CUSTOMER_HISTORY.column_names}


HISTORY_REFS = [f"{CUSTOMER_HISTORY.name}:{c}" for c in CUSTOMER_HISTORY.column_names]
RANKING_REFS = [f"{PRODUCT_RANKING.name}:{c}" for c in PRODUCT_RANKING.column_names]
RANKING_ROWS = [{PRODUCT_RANKING.key: k} for k in (*OTHER_KEYS, "k404")]


# --- embedded profile -------------------------------------------------------------------------------------------


def test_point_in_time_join_takes_the_latest_row_at_or_before_each_entity(store: ModuleType) -> None:
    out = store.historical_features(entity_df(), "conversion_v1")

    for session_id, got in zip(out["session_id"], out.to_dict("records"), strict=True):
        want = expected_history(session_id)
        for column, value in want.items():
            assert (pd.isna(got[column]) and value is None) or got[column] == value, (session_id, column)
    # never a row from after the session start: the D1 row (base 110) only from its own microsecond on
    c1 = out[out["customer_id"] == "c1"]
    assert (c1.loc[c1["orders_total"] == HISTORY[("c1", D1)] + 2, EVENT_TIMESTAMP] >= end_of(D1)).all()
    assert (c1.loc[c1["orders_total"] == HISTORY[("c1", D0)] + 2, EVENT_TIMESTAMP] < end_of(D1)).all()


def test_every_entity_row_comes_back_once_in_order_with_nulls_where_no_row_is_valid(store: ModuleType) -> None:
    entities = entity_df()
    out = store.historical_features(entities, "conversion_v1")

    assert len(out) == len(entities)
    assert out.index.equals(entities.index)
    pd.testing.assert_frame_equal(out[list(entities.columns)].drop(columns=EVENT_TIMESTAMP),
                                  entities.drop(columns=EVENT_TIMESTAMP))
    assert str(out[EVENT_TIMESTAMP].dt.tz) == "UTC"
    assert (out[EVENT_TIMESTAMP] == pd.to_datetime(entities[EVENT_TIMESTAMP], utc=True)).all()
    # outside the TTL (the file store drops these rows), anonymous, unknown: all history null...
    for session_id in ("s08", "s09", "s10", "s11"):
        row = out[out["session_id"] == session_id].iloc[0]
        assert row[CUSTOMER_HISTORY.column_names].isna().all(), session_id
        # ...while the same rows keep their session KPIs (the drop of one view never hides another's features)
        assert row["page_load_ms"] == session_row(session_id)["page_load_ms"], session_id
        assert row["device"] == session_row(session_id)["device"], session_id
    assert "customer_id" in out.columns and list(out.columns).count("customer_id") == 1
    # stable dtypes whichever rows are null
    assert out["orders_total"].dtype == "Int64" and out["revenue_total"].dtype == "float64"


def test_historical_features_keeps_naive_timestamps_as_utc_and_rejects_missing_keys(store: ModuleType) -> None:
    naive = entity_df().assign(**{EVENT_TIMESTAMP: lambda d: d[EVENT_TIMESTAMP].dt.tz_localize(None)})
    pd.testing.assert_frame_equal(
        store.historical_features(naive, "conversion_v1"), store.historical_features(entity_df(), "conversion_v1")
    )
    with pytest.raises(ValueError, match="customer_id"):
        store.historical_features(entity_df().drop(columns="customer_id"), "conversion_v1")
    empty = store.historical_features(entity_df().iloc[:0], "conversion_v1")
    assert empty.empty and "orders_total" in empty.columns


def test_materialize_is_idempotent_and_apply_can_run_again(store: ModuleType) -> None:
    rows = [{"customer_id": c} for c in ("c1", "c2", "c3", ANONYMOUS_CUSTOMER)]
    assert store.apply() == store.apply()

    store.materialize(dt.datetime.combine(D0, dt.time.min), end_of(D2))  # naive start: taken as UTC
    first = store.online_features(HISTORY_REFS, rows)
    store.materialize(dt.datetime.combine(D0, dt.time.min, UTC), end_of(D2))
    second = store.online_features(HISTORY_REFS, rows)

    pd.testing.assert_frame_equal(first, second)
    assert list(first.columns) == ["customer_id", *CUSTOMER_HISTORY.column_names]
    latest = {"c1": ("c1", D1), "c2": ("c2", D0), "c3": ("c3", D1)}
    for record in first.to_dict("records"):
        ref = latest.get(record["customer_id"])
        want = history_row(*ref) if ref else {}
        for column in CUSTOMER_HISTORY.column_names:
            value = want.get(column)
            assert (pd.isna(record[column]) and value is None) or record[column] == value, (record, column)
    # the other online view is loaded too: each product's D1 row, the newest of the interval; unknown: nulls
    ranking = store.online_features(RANKING_REFS, RANKING_ROWS).set_index(PRODUCT_RANKING.key)
    for key in OTHER_KEYS:
        assert ranking.loc[key].to_dict() == {c: other_row(PRODUCT_RANKING, key, D1)[c] for c in ranking.columns}
    assert ranking.loc["k404"].isna().all()


def test_online_features_refuses_a_service_with_offline_only_views(store: ModuleType) -> None:
    with pytest.raises(ValueError, match="offline-only"):
        store.online_features("conversion_v1", [{"session_id": "s01", "customer_id": "c1"}])


# --- production profile: Spark offline store, SQL registry on PostgreSQL, Redis online store -------------------------


@pytest.fixture
def spark_not_in_utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """An active Spark session left in another time zone, as another task in the process might leave it.

    Feast's Spark store reuses an active session (its spark_conf only applies to a new one): the wrapper must
    switch it to UTC. Small shuffles also keep this test in seconds; feature_store.production.yaml's own
    spark_conf is checked in tests/unit/test_feast_definitions.py.
    """
    from pyspark.sql import SparkSession

    monkeypatch.setenv("SPARK_LOCAL_IP", "127.0.0.1")
    active = SparkSession.getActiveSession()
    spark = active or (
        SparkSession.builder.master("local[2]").appName("test_feast_store")
        .config("spark.ui.enabled", "false").config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.shuffle.partitions", "2").config("spark.driver.memory", "1g")
        .getOrCreate()
    )
    previous = spark.conf.get("spark.sql.session.timeZone")
    spark.conf.set("spark.sql.session.timeZone", "Asia/Tokyo")  # read in Tokyo time, a UTC day starts 9 h early
    yield
    if active is None:
        spark.stop()
    else:
        spark.conf.set("spark.sql.session.timeZone", previous)


def test_production_profile_serves_exactly_what_the_embedded_profile_serves(
    tmp_path: Path, lake: Path, monkeypatch: pytest.MonkeyPatch, production_services: dict[str, str],
    spark_not_in_utc: None,
) -> None:
    from feature_repo import store

    rows = [{"customer_id": c} for c in ("c1", "c2", "c3", ANONYMOUS_CUSTOMER, "c404")]

    def run_nightly_loads() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame]:
        """Apply, materialize D0 (read back), then D1 and D2 and the whole interval again (read back), train."""
        store.apply()
        store.materialize(dt.datetime.combine(D0, dt.time.min, UTC), end_of(D0))
        after_d0 = store.online_features(HISTORY_REFS, rows)
        for day in (D1, D2):
            store.materialize(dt.datetime.combine(day, dt.time.min, UTC), end_of(day))
        store.materialize(dt.datetime.combine(D0, dt.time.min, UTC), end_of(D2))
        training = store.historical_features(entity_df(), "conversion_v1")
        ranking = store.online_features(RANKING_REFS, RANKING_ROWS)
        return after_d0, store.online_features(HISTORY_REFS, rows), training, ranking

    use_settings(monkeypatch, tmp_path / "embedded", lake, profile="embedded")
    sqlite_d0, sqlite_values, embedded_training, sqlite_ranking = run_nightly_loads()

    use_settings(monkeypatch, tmp_path / "production", lake, profile="production", **production_services)
    assert store.feature_store().config.online_store.type == "redis"
    assert store.feature_store().config.registry.registry_type == "sql"
    redis_d0, redis_values, production_training, redis_ranking = run_nightly_loads()

    # after D0's load only D0's rows are online, in both stores, though the Spark session was left in Tokyo time
    assert sqlite_d0.set_index("customer_id").loc["c1", "orders_total"] == HISTORY[("c1", D0)] + 2
    pd.testing.assert_frame_equal(redis_d0, sqlite_d0, check_exact=True)
    pd.testing.assert_frame_equal(redis_values, sqlite_values, check_exact=True)
    assert redis_values[CUSTOMER_HISTORY.column_names].notna().any(axis=1).sum() == 3  # c1, c2, c3
    pd.testing.assert_frame_equal(redis_ranking, sqlite_ranking, check_exact=True)
    assert redis_ranking[PRODUCT_RANKING.column_names].notna().all(axis=1).tolist() == [True, True, False]
    # the Spark store returns the rows Dask drops and drops the time zone: the wrapper evens both out
    pd.testing.assert_frame_equal(production_training, embedded_training, check_exact=True)
