"""The serving tests' stack and helpers: the tiny shop, its Spark-built online features in Feast, and conversion
models trained on it in a private MLflow (built once per test package by ``conftest.serving_stack``).

* lake: the session's ``tiny_lake`` (2026-01-01..21); every feature table of the last date built by the real
  Spark jobs, applied and materialized into the embedded (SQLite) online store;
* MLflow: ``conversion`` v1 and v2 (two seeds of the quick search), ``champion`` on v1; other models have none.
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

LAST_DAY = dt.date(2026, 1, 21)  # the tiny lake's last date
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




def build_stack(tiny_lake: Path, root: Path) -> ServingStack:
    """Features of the last day built by Spark, applied and materialized (embedded profile); two conversion models
    trained, ``champion`` on the first. The caller has pointed the settings at ``root/var`` and ``root/lake``."""
    import pandas as pd
    from conversion_testdata import small_models_config, write_conversion_training_set

    from feature_repo import store
    from feature_repo.features.jobs import build_features
    from training import registry
    from training.conversion import train_conversion

    var_root, lake_root = root / "var", root / "lake"
    build_features(LAST_DAY)  # every table: the production profile's apply checks every Spark source
    store.apply()
    store.materialize_days([LAST_DAY])

    config = small_models_config()
    conv = config.model("conversion")
    training_set = write_conversion_training_set(tiny_lake, root / "sets" / "conversion.parquet")
    versions = []
    for seed in (7, 8):
        hp = {**conv.hyperparameters, "hidden_sizes": [16], "seed": seed}
        quick = conv.model_copy(update={"hyperparameters": hp, "kpi_impact": conv.kpi_impact.model_copy(
            update={"enabled": False})})
        cfg = config.model_copy(update={"models": {**config.models, "conversion": quick}})
        versions.append(train_conversion(training_set, LAST_DAY, models_config=cfg, device="cpu").model_version)
    registry.set_alias("conversion", versions[0])

    history = pd.read_parquet(lake_root / "features" / "customer_history" / f"dt={LAST_DAY}")
    products = pd.read_parquet(lake_root / "features" / "product_ranking" / f"dt={LAST_DAY}")
    return ServingStack(
        var_root, lake_root, tiny_lake, tuple(versions),
        tuple(sorted(history["customer_id"].astype(str))), tuple(sorted(products["product_id"].astype(str))),
    )


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
