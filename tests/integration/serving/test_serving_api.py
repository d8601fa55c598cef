"""The serving API on the embedded profile: conversion scores from a real MLflow champion and real Feast online
features (SQLite), the documented fallbacks, 422s that name the field, 503s with a reason, the prediction log,
and the operations endpoints."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from serving_stack import LAST_DAY, SCORE, ServingStack, payload, wait_ready

from config.settings import Settings
from feature_repo.contract.schema import KPI_NAMES
from serving.app import create_app
from serving.prediction_log import prediction_log_root, read_prediction_log


@pytest.fixture
def client(stack_settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(stack_settings), raise_server_exceptions=False) as client:
        ready = wait_ready(client)
        assert ready["ready"], ready
        yield client


def test_scores_a_known_customer_with_the_champion_and_its_online_history(
    client: TestClient, serving_stack: ServingStack, sessions: pd.DataFrame
) -> None:
    from training.shared import registry

    customer = serving_stack.known_customers[0]
    response = client.post(SCORE, json=payload(sessions.iloc[0], customer))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model"] == {"name": "conversion", "version": serving_stack.versions[0]}
    assert body["customer_history"] == "found" and body["fallback"] is None
    assert 0.0 < body["probability"] < 1.0
    # the same model through MLflow directly, with the history as the offline table holds it, gives the same score
    history = pd.read_parquet(serving_stack.lake_root / "features" / "customer_history" / f"dt={LAST_DAY}")
    row = history[history["customer_id"] == customer].iloc[0]
    model = registry.load_model(registry.alias_uri("conversion"))
    frame = pd.DataFrame([{**payload(sessions.iloc[0])["kpis"], "device": sessions.iloc[0]["device"],
                           "channel": sessions.iloc[0]["channel"], "is_anonymous": 0.0,
                           **{c: row[c] for c in history.columns if c not in ("customer_id", "event_timestamp")}}])
    frame = frame.astype({c: "float64" for c in frame.columns if c not in ("device", "channel", "acquisition_channel")})
    expected = float(np.asarray(model.predict(registry.model_input(model, frame)))[0])
    assert body["probability"] == pytest.approx(expected, rel=1e-6)
    # the champion is a funnel: the two stages it answers with compose to the probability
    stages = model.predict(registry.model_input(model, frame), params={"output": "stages"}).iloc[0]
    assert body["p_basket"] == pytest.approx(stages["p_basket"], rel=1e-6)
    assert body["p_checkout"] == pytest.approx(stages["p_checkout"], rel=1e-6)
    assert body["p_basket"] * body["p_checkout"] == pytest.approx(body["probability"], rel=1e-5)
    assert "feature_read" in response.headers["server-timing"] and "model" in response.headers["server-timing"]


def test_a_slow_checkout_is_named_among_the_kpis_that_lower_the_probability(
    client: TestClient, sessions: pd.DataFrame
) -> None:
    session = sessions.iloc[1]
    slow = client.post(SCORE, json=payload(session, None, checkout_latency_ms=60000.0, lcp_ms=30000.0)).json()
    named = [k["kpi"] for k in slow["kpis_lowering"]]
    assert {"checkout_latency_ms", "lcp_ms"} & set(named), slow
    impacts = [k["impact"] for k in slow["kpis_lowering"]]
    assert impacts == sorted(impacts, reverse=True) and all(i > 0 for i in impacts)
    for k in slow["kpis_lowering"]:
        assert k["probability_at_reference"] == pytest.approx(slow["probability"] + k["impact"])
    typical = client.post(SCORE, json=payload(session, None)).json()
    assert slow["probability"] < typical["probability"]


def test_anonymous_and_unknown_customers_are_scored_without_history(client: TestClient, sessions: pd.DataFrame) -> None:
    anonymous = client.post(SCORE, json=payload(sessions.iloc[2], None)).json()
    unknown = client.post(SCORE, json=payload(sessions.iloc[2], "c-never-seen")).json()
    assert anonymous["customer_history"] == "anonymous"
    assert unknown["customer_history"] == "unknown_customer" and unknown["fallback"] is None
    assert 0 < unknown["probability"] < 1


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"kpis": {"lcp_ms": -5.0}}, "body.kpis.lcp_ms"),
        ({"kpis": {"lcp_seconds": 1.0}}, "body.kpis.lcp_seconds"),
        ({"device": "smartwatch"}, "body.device"),
        ({"customer_id": "c 1; drop"}, "body.customer_id"),
        ({"kpis": {"cdn_hit_ratio": 1.5}}, "body.kpis.cdn_hit_ratio"),
    ],
)
def test_invalid_payloads_get_a_422_that_names_the_field(
    client: TestClient, sessions: pd.DataFrame, change: dict, field: str
) -> None:
    body = payload(sessions.iloc[0])
    for key, value in change.items():
        body[key] = {**body[key], **value} if isinstance(value, dict) else value
    response = client.post(SCORE, json=body)
    assert response.status_code == 422
    assert field in [e["field"] for e in response.json()["errors"]]
    assert field in response.json()["detail"]


def test_missing_fields_are_named_too(client: TestClient) -> None:
    response = client.post(SCORE, json={"kpis": {}})
    assert response.status_code == 422
    assert {"body.device", "body.channel"} <= {e["field"] for e in response.json()["errors"]}


@pytest.mark.parametrize(
    ("method", "path", "body", "model"),
    [
        ("post", "/v1/rankings", {"product_ids": ["P000001", "P000002"]}, "ranking"),
        ("get", "/v1/recommendations/anonymous?k=5", None, "recommendation"),
        ("get", "/v1/promotions/C000001", None, "promotion"),
        ("get", "/v1/prices/P000001", None, "elasticity"),
    ],
)
def test_a_model_without_a_champion_answers_503_with_the_reason(
    client: TestClient, method: str, path: str, body: dict | None, model: str
) -> None:
    response = client.request(method.upper(), path, json=body)
    assert response.status_code == 503, response.text
    assert response.json()["model"] == model
    assert "champion" in response.json()["reason"]
    assert int(response.headers["retry-after"]) >= 1
    ready = client.get("/ready").json()  # one model without a champion does not take the service out
    assert ready["ready"] and ready["models"][model]["version"] is None


def test_every_prediction_is_logged_and_the_log_feeds_the_drift_monitor(
    stack_settings: Settings, sessions: pd.DataFrame
) -> None:
    from monitoring.drift.report import drift_report
    from training.shared import registry

    sent = 40
    with TestClient(create_app(stack_settings)) as client:
        assert wait_ready(client)["ready"]
        rows = sessions.head(sent).iterrows()
        ids = [client.post(SCORE, json=payload(s, None)).json()["request_id"] for _, s in rows]
    # the app has shut down: everything queued must be on disk now
    logged = read_prediction_log(prediction_log_root(stack_settings.lake), "conversion")
    assert set(ids) <= set(logged["request_id"])
    mine = logged[logged["request_id"].isin(ids)]
    assert (mine["model_version"] == client.app.state.ctx.champions["conversion"].current.version).all()
    assert mine["p_convert"].between(0, 1).all() and (mine["latency_ms"] > 0).all()
    np.testing.assert_allclose(mine["p_basket"] * mine["p_checkout"], mine["p_convert"], rtol=1e-5)  # the stages
    assert str(mine["logged_at"].dt.tz) == "UTC"
    files = list((prediction_log_root(stack_settings.lake) / "conversion").glob("dt=*/part-*.parquet"))
    assert files and len(files) < sent  # batched, not one file per prediction

    champion = registry.champion("conversion")
    sample = registry.download_artifact(f"runs:/{champion.run_id}/reference/reference_sample.parquet")
    reference = pd.read_parquet(sample)
    columns = ["device", "channel", *KPI_NAMES]
    result = drift_report(reference, mine, day=LAST_DAY, model="conversion-serving", columns=columns)
    assert result.n_columns == len(columns) and result.current_rows == sent


def test_health_readiness_and_metrics(client: TestClient, sessions: pd.DataFrame, serving_stack: ServingStack) -> None:
    assert client.get("/health").json() == {"status": "alive"}
    ready = client.get("/ready").json()
    assert ready["online_store"] == "ok" and ready["models"]["conversion"]["version"] == serving_stack.versions[0]
    client.post(SCORE, json=payload(sessions.iloc[0], serving_stack.known_customers[1]))
    text = client.get("/metrics").text
    assert 'storefront_serving_request_seconds_bucket{endpoint="/v1/conversion/score"' in text
    assert f'storefront_serving_model_version{{model="conversion",version="{serving_stack.versions[0]}"}} 1.0' in text
    assert 'storefront_serving_stage_seconds_count{endpoint="/v1/conversion/score",stage="feature_read"}' in text


def test_openapi_documents_versioned_paths_and_schemas(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    assert SCORE in spec["paths"] and "/v1/admin/retrain" in spec["paths"]
    kpis = spec["components"]["schemas"]["SessionKpis"]["properties"]
    assert set(kpis) == set(KPI_NAMES)
    response = spec["components"]["schemas"]["ConversionResponse"]["properties"]
    assert {"probability", "p_basket", "p_checkout"} <= set(response)
