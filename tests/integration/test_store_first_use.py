"""Parallel tasks on a fresh MLflow store: the prepare step creates it once, so no two tasks are its first users.

Each worker is a separate process (spawned, as Airflow runs each task in its own) that does what a training
task does first: point MLflow at the store, get or create its experiment, and log a run. All of them wait at a
barrier after their imports, so their first uses of the store start together. The store is new each time:
a SQLite file (the embedded profile) and a PostgreSQL database created for the test (the production profile's
database URI; skipped where PostgreSQL is not reachable).

Without the prepare step the workers race on MLflow's table creation (``duplicate column name: step`` on
SQLite); whether that race shows is a matter of timing, so no test here depends on it.
"""

from __future__ import annotations

import multiprocessing
import os
import queue
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from feast_services import reachable

MODELS = ("conversion", "recommendation", "ranking", "elasticity")
WORKERS = len(MODELS)
PG_HOST, PG_PORT = "127.0.0.1", 5432
_SPAWN = multiprocessing.get_context("spawn")


# --- the workers (run in spawned processes; module level so that spawn can import them) ---------------------------
def _first_night_task(model: str, prepare: bool, barrier: Any, results: Any) -> None:
    """What a training task does first: configure MLflow, get/create its experiment, log a run."""
    try:
        from training.shared import (
            registry,  # the slow imports happen before the barrier: the first uses start together
        )

        barrier.wait(timeout=600)
        if prepare:
            registry.prepare_tracking_store([model])
        with registry.training_run(model, f"{model}-first-night", {"model": model}) as run:
            run.log_params({"model": model})
            run.log_metrics({"loss": 0.5})
        results.put((model, "ok", ""))
    except BaseException as err:
        results.put((model, "failed", f"{type(err).__name__}: {err}"))


def _prepare(experiments: list[str], results: Any) -> None:
    """The training DAG's ``prepare_stores`` task, as far as MLflow goes."""
    try:
        from training.shared.registry import prepare_tracking_store

        results.put(("prepare", "ok", prepare_tracking_store(experiments)))
    except BaseException as err:
        results.put(("prepare", "failed", f"{type(err).__name__}: {err}"))


def _summary(results: Any) -> None:
    """What the store holds afterwards, read by a fresh process."""
    try:
        from mlflow.store.db import utils as db_utils

        from config.settings import get_settings
        from training.shared.registry import configure_mlflow

        client = configure_mlflow()
        experiments = {e.name: e for e in client.search_experiments()}
        runs = {
            name: [(r.info.status, r.data.metrics.get("loss")) for r in client.search_runs([e.experiment_id])]
            for name, e in experiments.items()
        }
        engine = db_utils.create_sqlalchemy_engine_with_retry(get_settings().tracking_uri)
        revision = db_utils._get_schema_version(engine)
        engine.dispose()
        results.put(("summary", "ok", {
            "experiments": {name: e.artifact_location for name, e in experiments.items()},
            "runs": runs,
            "revision": revision,
            "head": db_utils._get_latest_schema_revision(),
            "artifact_root": get_settings().artifact_root,
        }))
    except BaseException as err:
        results.put(("summary", "failed", f"{type(err).__name__}: {err}"))


# --- helpers -------------------------------------------------------------------------------------------------------
def _run_processes(targets: list[tuple[Any, tuple]], timeout: float = 600) -> dict[str, tuple[str, Any]]:
    """Start every ``(function, args)`` in its own spawned process (each gets ``results`` last); their outcomes."""
    results = _SPAWN.Queue()
    procs = [_SPAWN.Process(target=fn, args=(*args, results)) for fn, args in targets]
    for proc in procs:
        proc.start()
    outcomes: dict[str, tuple[str, Any]] = {}
    try:
        for _ in procs:
            name, state, detail = results.get(timeout=timeout)
            outcomes[name] = (state, detail)
    except queue.Empty:
        pass
    finally:
        for proc in procs:
            proc.join(timeout=60)
            if proc.is_alive():
                proc.kill()
                proc.join()
    assert len(outcomes) == len(procs), f"not every process reported: {outcomes}"
    return outcomes


def _start_together(prepare_in_each: bool) -> dict[str, tuple[str, Any]]:
    barrier = _SPAWN.Barrier(WORKERS)
    return _run_processes([(_first_night_task, (model, prepare_in_each, barrier)) for model in MODELS])


def _check_store(experiments: list[str]) -> None:
    state, summary = _run_processes([(_summary, ())])["summary"]
    assert state == "ok", summary
    assert summary["revision"] == summary["head"], "the store is at MLflow's schema head"
    assert set(summary["experiments"]) == {"Default", *experiments}
    for name in experiments:
        assert summary["experiments"][name] == f"{summary['artifact_root']}/{name}", name
    for model in MODELS:
        assert summary["runs"][model] == [("FINISHED", 0.5)], model


@pytest.fixture
def fresh_sqlite_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A var root with no MLflow store yet (the embedded default: ``sqlite:///<var>/mlflow/mlflow.db``)."""
    var = tmp_path / "var"
    monkeypatch.setenv("STOREFRONT_VAR_ROOT", str(var))
    monkeypatch.delenv("STOREFRONT_MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("STOREFRONT_MLFLOW_ARTIFACT_ROOT", raising=False)
    assert not (var / "mlflow" / "mlflow.db").exists()
    return var


@pytest.fixture
def fresh_postgres_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """An empty PostgreSQL database as the MLflow tracking URI (dropped afterwards); artifacts stay local."""
    if not reachable(PG_HOST, PG_PORT):
        pytest.skip(f"PostgreSQL is not reachable at {PG_HOST}:{PG_PORT} (the production-profile services)")
    import psycopg2

    name = f"storefront_mlflow_test_{os.getpid()}"
    admin = psycopg2.connect(host=PG_HOST, port=PG_PORT, user="postgres", dbname="postgres", connect_timeout=5)
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        cur.execute(f'CREATE DATABASE "{name}"')
    uri = f"postgresql+psycopg2://postgres@{PG_HOST}:{PG_PORT}/{name}"
    monkeypatch.setenv("STOREFRONT_VAR_ROOT", str(tmp_path / "var"))
    monkeypatch.setenv("STOREFRONT_MLFLOW_TRACKING_URI", uri)
    monkeypatch.delenv("STOREFRONT_MLFLOW_ARTIFACT_ROOT", raising=False)
    try:
        yield uri
    finally:
        with admin.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


# --- tests ---------------------------------------------------------------------------------------------------------
def test_the_night_s_experiments_are_the_models_and_their_drift_runs() -> None:
    from storefront.stores import night_experiments

    assert night_experiments(["conversion", "ranking"]) == ["conversion", "ranking", "drift-conversion",
                                                            "drift-ranking"]


def test_tasks_started_together_after_the_prepare_step_all_succeed(fresh_sqlite_store: Path) -> None:
    from storefront.stores import night_experiments

    experiments = night_experiments(MODELS)
    state, detail = _run_processes([(_prepare, (experiments,))])["prepare"]
    assert state == "ok", detail
    assert set(detail) == set(experiments)
    assert (fresh_sqlite_store / "mlflow" / "mlflow.db").is_file()

    outcomes = _start_together(prepare_in_each=False)
    assert {m: s for m, (s, _) in outcomes.items()} == dict.fromkeys(MODELS, "ok"), outcomes
    _check_store(experiments)

    state, again = _run_processes([(_prepare, (experiments,))])["prepare"]  # idempotent: same experiments
    assert state == "ok" and again == detail


def test_preparers_started_together_on_a_fresh_sqlite_store_all_succeed(fresh_sqlite_store: Path) -> None:
    """Several processes run the prepare step at once (the lock serializes them), then log their runs."""
    outcomes = _start_together(prepare_in_each=True)
    assert {m: s for m, (s, _) in outcomes.items()} == dict.fromkeys(MODELS, "ok"), outcomes
    _check_store(list(MODELS))


def test_preparers_started_together_on_a_fresh_postgres_store_all_succeed(fresh_postgres_store: str) -> None:
    """The same on a new PostgreSQL database (an advisory lock serializes the preparers)."""
    outcomes = _start_together(prepare_in_each=True)
    assert {m: s for m, (s, _) in outcomes.items()} == dict.fromkeys(MODELS, "ok"), outcomes
    _check_store(list(MODELS))
