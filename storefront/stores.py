"""The stores a night's tasks share, created and migrated once before the tasks that use them run.

A store's first user creates it: MLflow creates and migrates its tables when a process first opens a new store,
and two parallel tasks doing that at once collide (on SQLite one fails with ``duplicate column name: step``).
So each shared store gets one serial step before the parallel tasks, in both profiles:

* the Airflow metadata database: ``airflow db migrate`` (``storefront.airflow_env.prepare_metadata_db``), before
  any DAG runs at all (the main job, the tests and a deployment run it before the scheduler or ``dags test``);
* Feast's registry and online store: the features DAG's one ``feast_apply`` task creates them (file registry and
  SQLite tables, or the SQL registry's tables on PostgreSQL), before ``materialize_online_store``, whose asset is
  what schedules the training DAG; no task of the features DAG opens Feast before it, and every training task
  comes after it, so their later opens find the tables there (Feast's ``create_all`` then creates nothing);
* MLflow's tracking and registry store and every experiment of the night (one per model, one ``drift-<model>``
  per model): :func:`prepare_stores`, the training DAG's ``prepare_stores`` task, upstream of every model's task
  group (:func:`training.shared.registry.prepare_tracking_store`; safe if two processes call it at once).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def night_experiments(models: Sequence[str]) -> list[str]:
    """The MLflow experiments a night's training tasks use: each model's runs, then each model's drift runs."""
    from monitoring.drift.report import drift_experiment

    return [*models, *(drift_experiment(m) for m in models)]


def prepare_stores(models: Sequence[str]) -> dict[str, Any]:
    """Create/migrate MLflow's store and create the night's experiments, before the models' parallel tasks.

    Idempotent, and safe if two processes call it at once. Returns ``{"experiments": {name: id}}`` (for XCom).
    """
    from training.shared.registry import prepare_tracking_store

    return {"experiments": prepare_tracking_store(night_experiments(models))}
