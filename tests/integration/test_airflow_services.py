"""Airflow as production runs it: PostgreSQL metadata, and the scheduler running the DAGs on their schedule.

Both use this machine's services and real Airflow processes (subprocesses with their own environment), and
skip with the reason where PostgreSQL is not reachable.
"""

from __future__ import annotations

import datetime as dt
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from feast_services import reachable

AIRFLOW = str(Path(sys.executable).with_name("airflow"))
PG_HOST, PG_PORT = "127.0.0.1", 5432


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def postgres_database() -> Iterator[str]:
    """A fresh PostgreSQL database for one test (dropped afterwards); its SQLAlchemy URL."""
    if not reachable(PG_HOST, PG_PORT):
        pytest.skip(f"PostgreSQL is not reachable at {PG_HOST}:{PG_PORT} (the production-profile services)")
    import psycopg2

    name = f"storefront_airflow_test_{os.getpid()}"
    admin = psycopg2.connect(host=PG_HOST, port=PG_PORT, user="postgres", dbname="postgres")
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{name}"')
        cur.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql+psycopg2://postgres@{PG_HOST}:{PG_PORT}/{name}"
    finally:
        with admin.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def _env(var: Path, airflow_home: Path, sql_conn: str, **extra: str) -> dict[str, str]:
    from storefront.airflow_env import airflow_env

    env = airflow_env({k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")})
    env.update(
        AIRFLOW_HOME=str(airflow_home),
        AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=sql_conn,
        STOREFRONT_VAR_ROOT=str(var),
        STOREFRONT_TASK_RETRIES="0",
        **extra,
    )
    return env


def _tiny_lake(var: Path, first: dt.date, last: dt.date) -> None:
    subprocess.run(
        [str(Path(sys.executable).with_name("storefront")), "-q", "simulate", "--start", first.isoformat(), "--end",
         last.isoformat(), "--scale", "tiny", "--seed", "5", "--out", str(var / "lake" / "raw")],
        check=True, capture_output=True, timeout=120,
    )


def _airflow(args: list[str], env: dict[str, str], timeout: float = 600) -> str:
    done = subprocess.run([AIRFLOW, *args], env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"airflow {' '.join(args)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


def test_dags_run_with_postgresql_metadata(tmp_path: Path, postgres_database: str) -> None:
    import sqlalchemy

    var = tmp_path / "var"
    _tiny_lake(var, dt.date(2026, 1, 1), dt.date(2026, 1, 6))
    env = _env(var, tmp_path / "airflow", postgres_database)
    _airflow(["db", "migrate"], env)
    _airflow(["dags", "reserialize"], env)
    listed = _airflow(["dags", "list", "-o", "plain"], env)
    assert "storefront_features" in listed and "storefront_training" in listed
    _airflow(["dags", "test", "storefront_features", "2026-01-06"], env)

    engine = sqlalchemy.create_engine(postgres_database)
    with engine.connect() as db:
        runs = db.execute(sqlalchemy.text("select dag_id, state from dag_run")).all()
        tasks = db.execute(sqlalchemy.text(
            "select task_id, state from task_instance where dag_id = 'storefront_features'")).all()
    engine.dispose()
    assert ("storefront_features", "success") in [tuple(r) for r in runs]
    assert {t for t, s in tasks if s == "success"} >= {"validate_raw_events", "build_features",
                                                      "materialize_online_store"}


def _wait_for_api(port: int, api_server: subprocess.Popen, seconds: float = 180) -> None:
    import httpx

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if api_server.poll() is not None:
            raise RuntimeError(f"airflow api-server exited with {api_server.returncode}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/api/v2/monitor/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(1)
    raise TimeoutError(f"airflow api-server not answering on port {port} after {seconds:.0f} s")


@pytest.mark.timeout(1200)  # a backfill and two asset-triggered trainings through real services on 2 cores
def test_scheduler_catches_up_a_date_range_and_triggers_training(tmp_path: Path, postgres_database: str) -> None:
    """Unpaused with a bounded schedule, the scheduler runs every date (a backfill) and the asset triggers training.

    The training window's history is loaded first with one ``dags test`` run (as the main job does), so the
    asset-triggered training runs have features for every session of their window. Every trained model's window
    is shrunk to fit the 9 simulated days (6 days, the last 2 the holdout) and its search to one small fit.
    """
    import sqlalchemy
    import yaml

    from config.settings import REPO_ROOT

    var = tmp_path / "var"
    first, last = dt.date(2026, 1, 4), dt.date(2026, 1, 5)
    _tiny_lake(var, dt.date(2025, 12, 28), last)
    models = yaml.safe_load((REPO_ROOT / "config" / "models.yaml").read_text())
    conversion = models["models"]["conversion"]
    conversion.update(training_window_days=6, holdout_days=2)
    conversion["hyperparameters"].update(hidden_sizes=[[8]], learning_rate=[0.003], max_epochs=2, validation_days=1)
    for name in ("ranking", "recommendation", "elasticity"):  # promotion skips: no 70-day outcome window closed
        models["models"][name].update(training_window_days=6, holdout_days=2)
    models["models"]["ranking"]["hyperparameters"].update(hidden_sizes=[8], max_epochs=2)
    models["models"]["ranking"]["ranking"].update(validation_days=1, propensity_window_days=4, max_lists_per_day=200)
    models["models"]["recommendation"]["hyperparameters"].update(dim=8, max_epochs=2, validation_days=1)
    (tmp_path / "models.yaml").write_text(yaml.safe_dump(models))
    port = _free_port()
    env = _env(
        var, tmp_path / "airflow", postgres_database,
        STOREFRONT_PIPELINE_START_DATE=first.isoformat(),
        STOREFRONT_PIPELINE_END_DATE=last.isoformat(),
        AIRFLOW__API__PORT=str(port),
        AIRFLOW__CORE__EXECUTION_API_SERVER_URL=f"http://127.0.0.1:{port}/execution/",
        AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT=str(_free_port()),
        AIRFLOW__CORE__PARALLELISM="2",
        STOREFRONT_MODELS_CONFIG=str(tmp_path / "models.yaml"),
    )
    _airflow(["db", "migrate"], env)
    _airflow(["dags", "reserialize"], env)
    # The history run's date is before the schedule's start: with that start a run of 2026-01-03 has no task
    # instances and "succeeds" at once. So this one run sees the schedule start at the history's first date, and
    # reserializing with the test's start puts the next scheduled run back at ``first``.
    history_env = {**env, "STOREFRONT_PIPELINE_START_DATE": "2025-12-28"}
    _airflow(["dags", "test", "storefront_features", "2026-01-03", "-c", '{"history_from": "2025-12-28"}'],
             history_env)
    _airflow(["dags", "reserialize"], env)
    assert sorted(p.name for p in (var / "lake" / "features" / "session_kpis").iterdir()) == [
        f"dt={dt.date(2025, 12, 28) + dt.timedelta(days=i)}" for i in range(7)
    ]
    logs = tmp_path / "services"
    logs.mkdir()
    procs = [
        subprocess.Popen([AIRFLOW, component, *extra], env=env, stdout=(logs / f"{component}.log").open("w"),
                         stderr=subprocess.STDOUT, start_new_session=True)
        for component, extra in (("api-server", ["--port", str(port)]), ("scheduler", []), ("dag-processor", []))
    ]
    engine = sqlalchemy.create_engine(postgres_database)
    try:
        # tasks report to the execution API: unpausing before it listens fails the first task ("connection refused")
        _wait_for_api(port, procs[0])
        _airflow(["dags", "unpause", "storefront_training"], env)
        _airflow(["dags", "unpause", "storefront_features"], env)
        deadline = time.monotonic() + 840
        while time.monotonic() < deadline:
            with engine.connect() as db:
                runs = db.execute(sqlalchemy.text("select dag_id, run_type, state, logical_date from dag_run")).all()
            features = [r for r in runs if r.dag_id == "storefront_features"]
            training = [r for r in runs if r.dag_id == "storefront_training"]
            if any(r.state == "failed" for r in runs):
                break
            scheduled = [r for r in features if r.run_type == "scheduled"]
            if sum(r.state == "success" for r in scheduled) == 2 and training and all(
                r.state == "success" for r in training
            ) and len(training) >= 2:
                break
            time.sleep(5)
    finally:
        for proc in procs:
            os.killpg(proc.pid, 15)
        for proc in procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, 9)
        engine.dispose()
    detail = "\n".join(f"{(logs / f).name}: {(logs / f).read_text()[-1500:]}" for f in sorted(os.listdir(logs)))
    assert not [r for r in runs if r.state == "failed"], f"a run failed: {runs}\n{detail}"
    scheduled = sorted((r.logical_date.date(), r.state) for r in features if r.run_type == "scheduled")
    assert scheduled == [(first, "success"), (last, "success")], detail
    triggered = [r for r in training if r.run_type == "asset_triggered"]
    assert len(triggered) >= 2 and all(r.state == "success" for r in triggered), f"{training}\n{detail}"
