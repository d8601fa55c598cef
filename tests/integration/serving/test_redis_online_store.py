"""The production online store: answers from Redis, and fallbacks when Redis is down.

Feast's SQL registry on a fresh PostgreSQL database and a claimed empty Redis database number (the production
profile, ``feature_store.production.yaml``); skips where either service is unreachable.
"""

from __future__ import annotations

from collections.abc import Iterator

import pandas as pd
import pytest
from fastapi.testclient import TestClient
from serving_stack import (
    LAST_DAY,
    SCORE,
    ServingStack,
    champions,
    free_port,
    payload,
    settings_env,
    wait_checked,
    wait_ready,
)

from serving.app import create_app
from serving.features import ONLINE_STORE_DOWN

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore::RuntimeWarning")]


@pytest.fixture(scope="module")
def production(serving_stack: ServingStack) -> Iterator[dict[str, str]]:
    """The stack's features applied to the SQL registry and materialized into Redis; the settings overrides."""
    from feast_services import production_feast_services

    from feature_repo import store

    with production_feast_services("serving") as services, pytest.MonkeyPatch.context() as mp:
        settings_env(mp, serving_stack.var_root, serving_stack.lake_root, profile="production", **services)
        store.apply()
        store.materialize_days([LAST_DAY])
        yield services


def test_scores_come_from_redis(
    production: dict[str, str], serving_stack: ServingStack, monkeypatch: pytest.MonkeyPatch, sessions: pd.DataFrame
) -> None:
    settings = settings_env(monkeypatch, serving_stack.var_root, serving_stack.lake_root, profile="production",
                            **production)
    request = payload(sessions.iloc[0], serving_stack.known_customers[2])
    with TestClient(create_app(settings)) as client:
        assert wait_ready(client)["ready"]
        from_redis = client.post(SCORE, json=request).json()
    embedded = settings_env(monkeypatch, serving_stack.var_root, serving_stack.lake_root, profile="embedded")
    with TestClient(create_app(embedded)) as client:
        assert wait_ready(client)["ready"]
        from_sqlite = client.post(SCORE, json=request).json()
    assert from_redis["customer_history"] == "found" and from_redis["fallback"] is None
    assert from_redis["probability"] == pytest.approx(from_sqlite["probability"], rel=1e-9)


def test_redis_down_answers_from_fallbacks_and_says_so(
    production: dict[str, str], serving_stack: ServingStack, monkeypatch: pytest.MonkeyPatch, sessions: pd.DataFrame
) -> None:
    down = {**production, "redis_connection": f"127.0.0.1:{free_port()},db=0"}
    listed = list(serving_stack.products[:6])[::-1]
    with champions(serving_stack, "ranking", "promotion"):
        settings = settings_env(monkeypatch, serving_stack.var_root, serving_stack.lake_root, profile="production",
                                **down)
        with TestClient(create_app(settings)) as client:
            checked = wait_checked(client)
            ready = client.get("/ready").json()
            known = client.post(SCORE, json=payload(sessions.iloc[0], serving_stack.known_customers[2]))
            anonymous = client.post(SCORE, json=payload(sessions.iloc[0], None))
            ranked = client.post("/v1/rankings", json={"product_ids": listed})
            promotion = client.get(f"/v1/promotions/{serving_stack.known_customers[2]}")
            metrics = client.get("/metrics").text
    assert checked
    assert not ready["ready"] and ready["online_store"] != "ok"  # the balancer takes it out...
    assert known.status_code == 200, known.text  # ...yet every call still answers
    assert known.json()["fallback"] == ONLINE_STORE_DOWN and known.json()["customer_history"] == "unavailable"
    assert 0 < known.json()["probability"] < 1
    assert anonymous.json()["fallback"] is None  # nothing to read for an anonymous session
    assert (f'storefront_serving_fallbacks_total{{endpoint="{SCORE}",reason="{ONLINE_STORE_DOWN}"}} 1.0'
            in metrics)
    assert "storefront_serving_online_store_errors_total" in metrics
    # the list keeps the order it came in; a coupon is money and is never offered blind
    assert ranked.status_code == 200 and ranked.json()["fallback"] == ONLINE_STORE_DOWN, ranked.text
    assert ranked.json()["product_ids"] == listed and not any(it["known"] for it in ranked.json()["items"])
    assert promotion.status_code == 200 and promotion.json()["fallback"] == ONLINE_STORE_DOWN, promotion.text
    assert promotion.json()["coupon"] is None and "unavailable" in promotion.json()["reason"]
    for endpoint in ("/v1/rankings", "/v1/promotions/{customer_id}"):
        fallback = f'storefront_serving_fallbacks_total{{endpoint="{endpoint}",reason="{ONLINE_STORE_DOWN}"}} 1.0'
        assert fallback in metrics
