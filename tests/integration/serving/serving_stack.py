"""The serving tests' stack and helpers: the tiny shop, its Spark-built online features in Feast, and every model
trained on it in a private MLflow (built once per test package by ``conftest.serving_stack``).

* lake: the tiny shop over 2026-01-01..04-26 (seed 11; long enough for promotion offers whose 10-week windows have
  closed). Every feature table of the last date is built by the real Spark jobs, applied and materialized into
  the embedded (SQLite) online store; the training windows of the other models are built too.
* MLflow: ``conversion`` v1 and v2 (two seeds of the quick search), ``champion`` on v1. ``ranking``,
  ``recommendation``, ``elasticity`` and ``promotion`` v1, each trained by its real nightly stages (Feast
  training set, trainer, registration, the champion's scoring run) with a quick config (``QUICK``): they have no
  champion alias, so their endpoints answer 503 until a test module sets one (``champions``).
"""

from __future__ import annotations

import datetime as dt
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from config.settings import Settings, get_settings
from feature_repo.contract.schema import KPI_NAMES

FIRST_DAY, LAST_DAY = dt.date(2026, 1, 1), dt.date(2026, 4, 26)  # the serving lake's range
SEED = 11
OTHER_MODELS = ("ranking", "recommendation", "elasticity", "promotion")
# The quick settings of the stack's models: the tiny shop's windows, few epochs, small networks.
QUICK: dict[str, dict[str, Any]] = {
    "ranking": {"training_window_days": 9, "holdout_days": 3, "ranking": {"validation_days": 2},
                "hyperparameters": {"max_epochs": 4, "hidden_sizes": [16]}},
    "recommendation": {"training_window_days": 10, "holdout_days": 3,
                       "hyperparameters": {"max_epochs": 5, "dim": 16, "validation_days": 2}},
    "elasticity": {"training_window_days": 35, "holdout_days": 7, "elasticity": {"interval_draws": 200}},
    # judged on the mean with a 12 EUR minimum: ~90 training offers are too few for any coupon to clear 2 sd, and
    # the endpoint test needs customers with a coupon and without one (about half each here)
    "promotion": {"promotion": {"policy": {"confidence_z": 0.0, "min_incremental_profit": 12.0}}},
}
# the days before the tiny shop's first six campaigns (01-11..02-15): the promotion offers' point-in-time history
PROMOTION_HISTORY_DAYS = [dt.date(2026, 1, 10) + dt.timedelta(days=7 * i) for i in range(6)]
SCORE = "/v1/conversion/score"
FEAST_EXPORTS = (  # set by feature_repo.store.feature_store(); removed so each stack starts from its own settings
    "STOREFRONT_PROFILE", "STOREFRONT_FEATURES_ROOT", "STOREFRONT_FEAST_DATA", "STOREFRONT_REDIS_CONNECTION",
    "STOREFRONT_FEAST_REGISTRY_URL", "STOREFRONT_SPARK_MASTER", "STOREFRONT_SPARK_DRIVER_MEMORY",
)
for _folder in (Path(__file__).resolve().parents[2] / "model", Path(__file__).resolve().parents[1]):
    if str(_folder) not in sys.path:  # conversion_testdata, feast_services
        sys.path.insert(0, str(_folder))


@dataclass(frozen=True)
class ServingStack:
    var_root: Path
    lake_root: Path
    raw_root: Path
    versions: tuple[str, ...]  # conversion versions, oldest first; champion = versions[0]
    models: dict[str, str]  # ranking, recommendation, elasticity, promotion -> the version trained (no alias)
    known_customers: tuple[str, ...]  # customers with a customer_history row in the online store
    products: tuple[str, ...]  # products with a product_ranking row


def settings_env(mp: pytest.MonkeyPatch, var_root: Path, lake_root: Path, **overrides: str) -> Settings:
    for name in FEAST_EXPORTS:  # set first so that ``mp`` removes what feature_store() exports later, at its undo
        mp.setenv(name, "")
        mp.delenv(name)
    mp.setenv("STOREFRONT_VAR_ROOT", str(var_root))
    mp.setenv("STOREFRONT_LAKE_ROOT", str(lake_root))
    for key, value in overrides.items():
        mp.setenv(f"STOREFRONT_{key.upper()}", value)
    get_settings.cache_clear()
    return get_settings()




def quick_models_config(path: Path) -> Path:
    """Write the versioned ``config/models.yaml`` with the ``QUICK`` overrides to ``path``; returns it."""
    import yaml

    from config.settings import REPO_ROOT

    def merge(into: dict[str, Any], overrides: dict[str, Any]) -> None:
        for key, value in overrides.items():
            if isinstance(value, dict):
                merge(into.setdefault(key, {}), value)
            else:
                into[key] = value

    config = yaml.safe_load((REPO_ROOT / "config" / "models.yaml").read_text())
    merge(config["models"], QUICK)
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def window(days: int, last: dt.date = LAST_DAY) -> list[dt.date]:
    """``last`` and the ``days`` days before it, oldest first."""
    return [last - dt.timedelta(days=i) for i in range(days, -1, -1)]


def build_stack(root: Path) -> ServingStack:
    """Simulate the tiny shop into ``root/lake/raw``; build, apply and materialize its features (embedded profile);
    train two conversion models (``champion`` on the first) and the other four models by their nightly stages.
    The caller has pointed the settings at ``root/var`` and ``root/lake``."""
    import pandas as pd
    from conversion_testdata import small_models_config, write_conversion_training_set

    from config.models import get_models_config
    from feature_repo import store
    from feature_repo.features.jobs import build_features_for_days
    from simulator.shop import simulate
    from training.conversion.model import train_conversion
    from training.shared import pipeline, registry

    var_root, lake_root = root / "var", root / "lake"
    raw_root = lake_root / "raw"
    simulate(FIRST_DAY, LAST_DAY, raw_root, seed=SEED, scale="tiny")
    build_features_for_days([LAST_DAY])  # every table: the production profile's apply checks every Spark source
    build_features_for_days(window(QUICK["ranking"]["training_window_days"])[:-1], ["product_ranking"])
    build_features_for_days(window(QUICK["recommendation"]["training_window_days"])[:-1],
                            ["customer_product_interactions"])
    build_features_for_days(window(QUICK["elasticity"]["training_window_days"])[:-1], ["product_demand"])
    build_features_for_days(PROMOTION_HISTORY_DAYS, ["customer_history"])
    store.apply()
    store.materialize_days([LAST_DAY])

    config = small_models_config()
    conv = config.model("conversion")
    training_set = write_conversion_training_set(raw_root, root / "sets" / "conversion.parquet")
    versions = []
    for seed in (7, 8):
        hp = {**conv.hyperparameters, "hidden_sizes": [16], "seed": seed}
        quick_conv = conv.model_copy(update={"hyperparameters": hp, "kpi_impact": conv.kpi_impact.model_copy(
            update={"enabled": False})})
        cfg = config.model_copy(update={"models": {**config.models, "conversion": quick_conv}})
        versions.append(train_conversion(training_set, LAST_DAY, models_config=cfg, device="cpu").model_version)
    registry.set_alias("conversion", versions[0])

    models: dict[str, str] = {}
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("STOREFRONT_MODELS_CONFIG", str(quick_models_config(root / "models.yaml")))
        get_settings.cache_clear()
        get_models_config.cache_clear()
        assert get_models_config().model("ranking").training_window_days == QUICK["ranking"]["training_window_days"]
        for model in OTHER_MODELS:
            path = pipeline.build_training_set(model, LAST_DAY)
            version = str(pipeline.train_challenger(model, path, LAST_DAY)["model_version"])
            # no gate: the tiny shop is too small for some gates' floors (the gates are tested in tests/model);
            # the champion's nightly scoring run writes what the endpoints serve (the price book), then the alias
            # goes again so that the stack starts without these champions
            registry.set_alias(model, version)
            pipeline.score_sessions(model, LAST_DAY)
            registry.configure_mlflow().delete_registered_model_alias(model, registry.CHAMPION)
            models[model] = version
    get_settings.cache_clear()
    get_models_config.cache_clear()

    history = pd.read_parquet(lake_root / "features" / "customer_history" / f"dt={LAST_DAY}")
    products = pd.read_parquet(lake_root / "features" / "product_ranking" / f"dt={LAST_DAY}")
    return ServingStack(
        var_root, lake_root, raw_root, tuple(versions), models,
        tuple(sorted(history["customer_id"].astype(str))), tuple(sorted(products["product_id"].astype(str))),
    )


@contextmanager
def champions(stack: ServingStack, *names: str) -> Iterator[dict[str, str]]:
    """The stack's trained ``names`` made champion for the block (the aliases go again after it)."""
    from training.shared import registry

    with pytest.MonkeyPatch.context() as mp:
        settings_env(mp, stack.var_root, stack.lake_root, profile="embedded")
        for name in names:
            registry.set_alias(name, stack.models[name])
        try:
            yield {name: stack.models[name] for name in names}
        finally:
            client = registry.configure_mlflow()
            for name in names:
                client.delete_registered_model_alias(name, registry.CHAMPION)
    get_settings.cache_clear()


def wait_ready(client: Any, timeout: float = 120.0) -> dict:
    """Poll ``/ready`` until it says ready or ``timeout`` seconds pass; the last answer."""
    deadline = time.monotonic() + timeout
    while True:
        body = client.get("/ready").json()
        if body["ready"] or time.monotonic() > deadline:
            return body
        time.sleep(0.1)


def wait_checked(client: Any, timeout: float = 60.0) -> bool:
    """Wait until the app behind a TestClient has asked the registry about every model once."""
    slots = client.app.state.ctx.champions.slots.values()
    deadline = time.monotonic() + timeout
    while not all(s.checked for s in slots):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def payload(session: Any, customer_id: str | None = None, **kpis: float) -> dict:
    """A conversion request for a raw session row (its KPIs as measured, ``kpis`` overriding some)."""
    import pandas as pd

    values = {k: None if pd.isna(session[k]) else float(session[k]) for k in KPI_NAMES}
    values.update(kpis)
    return {"session_id": str(session["session_id"]), "customer_id": customer_id, "device": session["device"],
            "channel": session["channel"], "kpis": values}


def free_port() -> int:
    """A loopback port nothing listens on now (bound, then released)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def uvicorn_server(app: Any) -> Iterator[str]:
    """``app`` served by uvicorn on a free loopback port in a thread (lifespan included); yields its base URL."""
    import threading

    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=60)
