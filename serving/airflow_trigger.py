"""Ask Airflow 3 to run the training DAG now, through its REST API (the serving admin call).

Airflow 3's API server authenticates REST calls with a JWT: ``POST /auth/token`` with a username and password
(the simple auth manager and the FAB auth manager both serve it) returns ``access_token``; then
``POST /api/v2/dags/{dag_id}/dagRuns`` with ``Authorization: Bearer <token>`` creates the run. A manual run of
our DAGs has ``logical_date: null`` and gets its date from ``conf`` (the DAG's ``date`` param).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import httpx

TRAINING_DAG_ID = "storefront_training"


class AirflowError(Exception):
    """Airflow could not be reached or refused the call; ``status`` is the HTTP status the service answers."""

    def __init__(self, message: str, status: int = 502) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class TriggeredRun:
    dag_id: str
    dag_run_id: str
    state: str
    conf: dict[str, Any]


def trigger_dag(
    api_url: str,
    username: str,
    password: str,
    *,
    dag_id: str = TRAINING_DAG_ID,
    day: dt.date | None = None,
    note: str | None = None,
    timeout: float = 10.0,
    transport: httpx.BaseTransport | None = None,
) -> TriggeredRun:
    """Create a manual run of ``dag_id`` (with ``conf={"date": day}`` when a day is given) and return it."""
    conf: dict[str, Any] = {} if day is None else {"date": day.isoformat()}
    body: dict[str, Any] = {"logical_date": None, "conf": conf}
    if note:
        body["note"] = note
    try:
        with httpx.Client(base_url=api_url.rstrip("/"), timeout=timeout, transport=transport) as client:
            token = client.post("/auth/token", json={"username": username, "password": password})
            if token.status_code in (401, 403):
                raise AirflowError(f"Airflow refused the credentials of user {username!r} ({token.status_code})")
            _raise_for(token, "sign-in")
            access = token.json().get("access_token")
            if not access:
                raise AirflowError("Airflow's /auth/token answered without an access_token")
            run = client.post(
                f"/api/v2/dags/{dag_id}/dagRuns", json=body, headers={"Authorization": f"Bearer {access}"}
            )
            if run.status_code == 404:
                raise AirflowError(f"Airflow does not know DAG {dag_id!r} (404)", status=502)
            if run.status_code == 409:
                raise AirflowError(f"a run of {dag_id} with this id already exists (409)", status=409)
            _raise_for(run, "trigger")
            data = run.json()
    except httpx.HTTPError as err:
        raise AirflowError(f"Airflow API at {api_url} is unreachable: {type(err).__name__}: {err}") from err
    return TriggeredRun(dag_id, str(data["dag_run_id"]), str(data.get("state")), dict(data.get("conf") or {}))


def _raise_for(response: httpx.Response, what: str) -> None:
    if response.status_code >= 400:
        raise AirflowError(f"Airflow {what} failed: HTTP {response.status_code}: {response.text[:300]}")
