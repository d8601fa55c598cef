"""The Feast definitions and configuration of feature_repo/, checked without a registry, a store or data.

The definitions are generated from FEATURE_TABLES: these tests pin that generation (schema, types, TTL, online
flag, the conversion_v1 service), which files `feast apply` imports, and what the two yaml files resolve to.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from types import ModuleType

import pytest
from feast.infra.offline_stores.contrib.spark_offline_store.spark_source import SparkSource
from feast.infra.offline_stores.file_source import FileSource
from feast.repo_config import load_repo_config
from feast.repo_contents import RepoContents
from feast.repo_operations import get_repo_files
from feast.types import Float64, Int64, String

from config.settings import get_settings
from feature_repo.features.tables import CUSTOMER_HISTORY, FEATURE_TABLES, SESSION_KPIS

REPO = Path(__file__).resolve().parents[2] / "feature_repo"
EXPORTED = (
    "STOREFRONT_PROFILE", "STOREFRONT_FEATURES_ROOT", "STOREFRONT_FEAST_DATA", "STOREFRONT_REDIS_CONNECTION",
    "STOREFRONT_FEAST_REGISTRY_URL", "STOREFRONT_SPARK_MASTER", "STOREFRONT_SPARK_DRIVER_MEMORY",
)


@pytest.fixture
def store_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    """feature_repo.store with the settings pointed at an empty tmp folder (embedded profile)."""
    from feature_repo import store

    for name in EXPORTED:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("STOREFRONT_VAR_ROOT", str(tmp_path))
    monkeypatch.setenv("STOREFRONT_PROFILE", "embedded")
    get_settings.cache_clear()
    yield store
    get_settings.cache_clear()


def definitions(store: ModuleType) -> RepoContents:
    return store.load_definitions(store.feature_store())


def test_feast_apply_imports_only_the_four_definition_modules() -> None:
    files = {p.name for p in get_repo_files(REPO)}
    assert files == {"entities.py", "data_sources.py", "feature_views.py", "feature_services.py"}


def test_each_feature_table_has_a_feature_view_with_its_columns_in_order(store_module: ModuleType) -> None:
    repo = definitions(store_module)
    views = {v.name: v for v in repo.feature_views}
    assert set(views) == set(FEATURE_TABLES)
    feast_type = {"string": String, "int64": Int64, "float64": Float64}
    for table in FEATURE_TABLES.values():
        view = views[table.name]
        assert [e for e in view.entities] == [table.entity]
        assert [f.name for f in view.features] == table.column_names
        assert [f.dtype for f in view.features] == [feast_type[c.dtype] for c in table.columns]
        assert view.ttl == timedelta(days=table.ttl_days)
        assert view.batch_source.timestamp_field == "event_timestamp"
    assert views[SESSION_KPIS.name].online is False
    assert views[CUSTOMER_HISTORY.name].online is True
    entities = {e.name: e.join_key for e in repo.entities if e.name != "__dummy"}
    assert entities == {t.entity: t.key for t in FEATURE_TABLES.values()}


def test_conversion_v1_reads_session_kpis_but_customer_id_and_all_of_customer_history(
    store_module: ModuleType,
) -> None:
    (service,) = [s for s in definitions(store_module).feature_services if s.name == "conversion_v1"]
    projected = {p.name: [f.name for f in p.features] for p in service.feature_view_projections}
    assert projected == {
        SESSION_KPIS.name: [c for c in SESSION_KPIS.column_names if c != "customer_id"],
        CUSTOMER_HISTORY.name: CUSTOMER_HISTORY.column_names,
    }


def test_ranking_v1_reads_all_of_product_ranking_from_an_online_view(store_module: ModuleType) -> None:
    from feature_repo.features.tables import PRODUCT_RANKING

    repo = definitions(store_module)
    (service,) = [s for s in repo.feature_services if s.name == "ranking_v1"]
    projected = {p.name: [f.name for f in p.features] for p in service.feature_view_projections}
    assert projected == {PRODUCT_RANKING.name: PRODUCT_RANKING.column_names}
    assert {v.name: v.online for v in repo.feature_views}[PRODUCT_RANKING.name] is True


def test_sources_point_at_the_table_folders_and_follow_the_profile(
    store_module: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = get_settings().features_root
    embedded = {d.name: d for d in definitions(store_module).data_sources}
    assert {n: type(d) for n, d in embedded.items()} == {f"{t}_source": FileSource for t in FEATURE_TABLES}
    assert {d.path for d in embedded.values()} == {str(root / t) for t in FEATURE_TABLES}

    monkeypatch.setenv("STOREFRONT_PROFILE", "production")
    get_settings.cache_clear()
    production = {d.name: d for d in definitions(store_module).data_sources}
    assert all(isinstance(d, SparkSource) for d in production.values())
    assert {d.path for d in production.values()} == {str(root / t) for t in FEATURE_TABLES}
    assert {d.file_format for d in production.values()} == {"parquet"}
    assert {d.date_partition_column for d in production.values()} == {"dt"}


def test_yaml_files_resolve_to_the_settings_of_each_profile(
    store_module: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = get_settings()
    store_module.feature_store()  # exports the variables the yaml files read
    embedded = load_repo_config(REPO, REPO / "feature_store.yaml")
    assert embedded.project == "storefront"
    assert embedded.registry.path == str(settings.feast_data / "registry.db")
    assert embedded.online_store.type == "sqlite"
    assert embedded.online_store.path == str(settings.feast_data / "online.db")
    assert embedded.offline_store.type == "file"
    assert embedded.entity_key_serialization_version == 3

    monkeypatch.setenv("STOREFRONT_PROFILE", "production")
    monkeypatch.setenv("STOREFRONT_REDIS_CONNECTION", "redis.internal:6380,db=3")
    monkeypatch.setenv("STOREFRONT_FEAST_REGISTRY_URL", "postgresql+psycopg2://feast@pg.internal:5432/feast")
    monkeypatch.setenv("STOREFRONT_SPARK_MASTER", "spark://spark.internal:7077")
    get_settings.cache_clear()
    store = store_module.feature_store()
    production = store.config
    assert Path(store.repo_path) == REPO and production.project == "storefront"
    assert production.registry.registry_type == "sql"
    assert production.registry.path == "postgresql+psycopg2://feast@pg.internal:5432/feast"
    assert production.online_store.type == "redis"
    assert production.online_store.connection_string == "redis.internal:6380,db=3"
    assert production.offline_store.type == "spark"
    assert production.offline_store.spark_conf["spark.master"] == "spark://spark.internal:7077"
    assert production.offline_store.spark_conf["spark.sql.session.timeZone"] == "UTC"
    assert production.entity_key_serialization_version == 3


def test_definitions_read_the_settings_not_the_environment_or_the_working_folder(
    store_module: ModuleType, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Feast parses the definitions inside the repo folder; the sources still point at the settings' absolute
    features root, with or without the variables ``feature_store()`` exports for the yaml files."""
    store = store_module.feature_store()
    monkeypatch.delenv("STOREFRONT_FEATURES_ROOT")
    monkeypatch.chdir(tmp_path)
    root = get_settings().features_root
    assert root.is_absolute()
    sources = store_module.load_definitions(store).data_sources
    assert {d.path for d in sources} == {str(root / t) for t in FEATURE_TABLES}
