"""The admin call that asks Airflow to retrain: refused without the right API key, and honest when Airflow fails."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from serving_stack import ServingStack, free_port, settings_env

from serving.app import create_app

RETRAIN = "/v1/admin/retrain"
KEY = "test-key-3f9c2d"  # a test value; real keys come from the environment only


@pytest.fixture
def admin_client(serving_stack: ServingStack, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    settings = settings_env(
        monkeypatch, serving_stack.var_root, serving_stack.lake_root, profile="embedded",
        serving_admin_api_key=KEY, airflow_api_url=f"http://127.0.0.1:{free_port()}", airflow_password="not-used",
    )
    with TestClient(create_app(settings, models=())) as client:
        yield client


def test_admin_calls_are_refused_when_no_key_is_configured(
    serving_stack: ServingStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = settings_env(monkeypatch, serving_stack.var_root, serving_stack.lake_root, profile="embedded")
    monkeypatch.delenv("STOREFRONT_SERVING_ADMIN_API_KEY", raising=False)
    assert settings.serving_admin_api_key is None
    with TestClient(create_app(settings, models=())) as client:
        for headers in ({}, {"X-API-Key": ""}, {"X-API-Key": "anything"}):
            response = client.post(RETRAIN, json={}, headers=headers)
            assert response.status_code == 403, headers
            assert "STOREFRONT_SERVING_ADMIN_API_KEY" in response.json()["detail"]


@pytest.mark.parametrize("headers", [{}, {"X-API-Key": "wrong"}, {"X-API-Key": KEY[:-1]}, {"X-API-Key": KEY + "x"}])
def test_a_missing_or_wrong_key_gets_401(admin_client: TestClient, headers: dict[str, str]) -> None:
    response = admin_client.post(RETRAIN, json={}, headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "APIKey"


def test_the_right_key_reaches_airflow_and_a_dead_airflow_is_a_502_with_the_reason(admin_client: TestClient) -> None:
    response = admin_client.post(RETRAIN, json={"date": "2026-01-21"}, headers={"X-API-Key": KEY})
    assert response.status_code == 502
    assert "unreachable" in response.json()["detail"]


def test_the_body_is_validated_after_the_key(admin_client: TestClient) -> None:
    bad_date = admin_client.post(RETRAIN, json={"date": "2026-02-30"}, headers={"X-API-Key": KEY})
    assert bad_date.status_code == 422 and "date" in bad_date.json()["detail"]
    unknown = admin_client.post(RETRAIN, json={"dag": "other"}, headers={"X-API-Key": KEY})
    assert unknown.status_code == 422 and "body.dag" in unknown.json()["detail"]
