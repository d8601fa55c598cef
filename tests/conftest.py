"""Shared fixtures: simulated lakes, written once per test session (the simulator is deterministic)."""

from __future__ import annotations

import datetime as dt
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

# Before anything imports Airflow (it reads its configuration once, at import): a private home and SQLite
# metadata database for this test session, never the user's ~/airflow.
_AIRFLOW_HOME = Path(tempfile.mkdtemp(prefix="storefront-airflow-"))
os.environ["AIRFLOW_HOME"] = str(_AIRFLOW_HOME)
os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = f"sqlite:///{_AIRFLOW_HOME / 'airflow.db'}"
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(Path(__file__).resolve().parents[1] / "dags")
os.environ["AIRFLOW__CORE__PLUGINS_FOLDER"] = str(Path(__file__).resolve().parents[1] / "plugins")
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(scope="session")
def tiny_lake(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three weeks of the tiny shop (a few thousand sessions): structure and coherence tests."""
    from simulator.shop import simulate

    out = tmp_path_factory.mktemp("tiny") / "raw"
    simulate(dt.date(2026, 1, 1), dt.date(2026, 1, 21), out, seed=11, scale="tiny")
    return out


@pytest.fixture(scope="session")
def demo_lake(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Six and a half weeks of the demo shop (about 120k sessions, 2.4M impressions): planted-effect tests."""
    from simulator.shop import simulate

    out = tmp_path_factory.mktemp("demo") / "raw"
    simulate(dt.date(2026, 1, 1), dt.date(2026, 2, 14), out, seed=7, scale="demo")
    return out


def clear_config_caches() -> None:
    """Forget every settings object read from the environment (settings, models, experiments, validation)."""
    from config.experiments import get_experiments_registry
    from config.models import get_models_config
    from config.settings import get_settings
    from feature_repo.expectations.config import get_validation_config

    for cached in (get_settings, get_models_config, get_experiments_registry, get_validation_config):
        cached.cache_clear()


@pytest.fixture(scope="module", autouse=True)
def isolated_storefront_environment() -> Iterator[None]:
    """Every test module leaves the ``STOREFRONT_*`` environment and the config caches as it found them.

    Module fixtures point the settings at private roots; one whose set-up fails before its own clean-up (or a
    library call that exports variables, like ``feature_store()`` for Feast) would otherwise hand its roots to
    every later module.
    """
    saved = {k: v for k, v in os.environ.items() if k.startswith("STOREFRONT_")}
    yield
    for key in [k for k in os.environ if k.startswith("STOREFRONT_") and k not in saved]:
        del os.environ[key]
    os.environ.update(saved)
    clear_config_caches()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real public datasets beside the checkout; tests that need them skip where ../shared is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real datasets not found at {SHARED_DATA} (../shared/data beside the checkout)")
    return SHARED_DATA


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Stop a Spark session a test left running while pytest's output capture still exists (py4j logs on close)."""
    import logging
    import sys

    if "pyspark" not in sys.modules:
        return
    logging.getLogger("py4j").setLevel(logging.WARNING)
    from pyspark.sql import SparkSession

    try:
        active = SparkSession.getActiveSession()
    except (ConnectionError, OSError) as err:  # the JVM is already gone (a test stopped or lost it): nothing to stop
        logging.getLogger(__name__).warning("no Spark JVM to stop at the end of the session: %s", err)
        return
    if active is not None:
        active.stop()
