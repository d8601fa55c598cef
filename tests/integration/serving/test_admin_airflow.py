"""The admin call against a real Airflow 3 API server: it signs in (JWT from /auth/token) and creates a run of the
training DAG with the requested date; the run is then in Airflow's own database.

Airflow runs as it does in production, in its own processes: ``airflow db migrate``, ``airflow dags reserialize``
(the DAG must be in the metadata database for the API to know it), then ``airflow api-server`` with the simple
auth manager and a passwords file. SQLite metadata in a temporary home; nothing else is started.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from serving_stack import ServingStack, free_port, settings_env

from serving.airflow_trigger import TRAINING_DAG_ID, AirflowError, trigger_dag
from serving.app import create_app

pytestmark = pytest.mark.slow
AIRFLOW = str(Path(sys.executable).with_name("airflow"))
PASSWORD = "admin-test-password"  # a test value for a throwaway Airflow home


@pytest.fixture(scope="module")
def airflow_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The base URL of a running Airflow API server whose ``admin`` has ``PASSWORD``."""
    from storefront.airflow_env import airflow_env

    home = tmp_path_factory.mktemp("airflow-api")
    (home / "passwords.json").write_text(json.dumps({"admin": PASSWORD}))
    port = free_port()
    env = airflow_env({k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")})
    env.update(
        AIRFLOW_HOME=str(home),
        AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{home / 'airflow.db'}",
        AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS="admin:admin",
        AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE=str(home / "passwords.json"),
        AIRFLOW__API_AUTH__JWT_SECRET="a-test-secret-for-a-throwaway-home",
        STOREFRONT_VAR_ROOT=str(home / "var"),
    )
    for args in (["db", "migrate"], ["dags", "reserialize"]):
        done = subprocess.run([AIRFLOW, *args], env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, f"airflow {' '.join(args)}:\n{done.stderr[-3000:]}"
    log = (home / "api-server.log").open("w")
    server = subprocess.Popen([AIRFLOW, "api-server", "--host", "127.0.0.1", "--port", str(port)], env=env,
                              stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 240
        while True:
            try:
                if httpx.get(f"{url}/api/v2/version", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert server.poll() is None, (home / "api-server.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "the Airflow API server did not come up in 240 s"
            time.sleep(1)
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


def test_the_admin_call_creates_a_training_run_in_airflow(
    airflow_api: str, serving_stack: ServingStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = "admin-key-for-this-test"
    settings = settings_env(
        monkeypatch, serving_stack.var_root, serving_stack.lake_root, profile="embedded",
        serving_admin_api_key=key, airflow_api_url=airflow_api, airflow_password=PASSWORD,
    )
    with TestClient(create_app(settings, models=())) as client:
        response = client.post("/v1/admin/retrain", json={"date": "2026-01-21", "note": "serving test"},
                               headers={"X-API-Key": key})
    assert response.status_code == 202, response.text
    run = response.json()
    assert run["dag_id"] == TRAINING_DAG_ID and run["conf"] == {"date": "2026-01-21"}

    token = httpx.post(f"{airflow_api}/auth/token", json={"username": "admin", "password": PASSWORD}).json()
    stored = httpx.get(f"{airflow_api}/api/v2/dags/{TRAINING_DAG_ID}/dagRuns/{run['dag_run_id']}",
                       headers={"Authorization": f"Bearer {token['access_token']}"})
    assert stored.status_code == 200
    assert stored.json()["conf"] == {"date": "2026-01-21"} and stored.json()["run_type"] == "manual"


def test_wrong_airflow_credentials_are_reported_not_hidden(airflow_api: str) -> None:
    with pytest.raises(AirflowError, match="refused the credentials"):
        trigger_dag(airflow_api, "admin", "not-the-password")
