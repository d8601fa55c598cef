"""
### Nightly training

Scheduled on the `storefront_daily_features` asset: runs for the date the features DAG just published (or the
`date` param). First `prepare_stores` creates and migrates MLflow's store and the night's experiments once, so
no two of the parallel model tasks are first users of it (Feast's stores come from the features DAG's
`feast_apply`). Then, for each model: build its training set from Feast (point-in-time correct), train a
challenger on the accelerator the routing picks, register it in MLflow, and move the `champion` alias only if the
gate passes on the same holdout (every decision is recorded in MLflow). Then the champion scores the date's
sessions (the scores partition), and the drift report compares the date's features with the champion's training
reference (Evidently; HTML for people, JSON for machines).

Logic lives in `storefront.stores`, `training` and `monitoring`; this file only wires it.
"""

from __future__ import annotations

import datetime as dt

from airflow.sdk import Param, dag, task, task_group
from storefront_airflow.assets import DAILY_FEATURES
from storefront_airflow.defaults import default_args
from storefront_airflow.models import TRAINED_MODELS
from storefront_airflow.routing import training_queue
from storefront_airflow.run_dates import run_date
from storefront_airflow.schedule import end_date, start_date

DEFAULT_ARGS = default_args(retry_delay=dt.timedelta(minutes=5))


@dag(
    dag_id="storefront_training",
    schedule=[DAILY_FEATURES],
    start_date=start_date(),
    end_date=end_date(),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["storefront", "training"],
    doc_md=__doc__,
    params={"date": Param(None, type=["null", "string"], format="date", description="Date to train for (YYYY-MM-DD)")},
)
def storefront_training():
    @task
    def resolve_date(**context) -> str:
        return run_date(context, DAILY_FEATURES).isoformat()

    @task
    def prepare_stores() -> dict:
        """MLflow's store and the night's experiments, created/migrated once: no two model tasks are first users."""
        from storefront.stores import prepare_stores as prepare

        return prepare(TRAINED_MODELS)

    day = resolve_date()
    stores = prepare_stores()
    day >> stores

    for model in TRAINED_MODELS:

        @task_group(group_id=model)
        def train_and_gate(day: str, model: str = model) -> None:
            @task
            def build_training_set(day: str) -> str:
                from airflow.sdk.exceptions import AirflowSkipException

                from training.shared.pipeline import NothingToTrain
                from training.shared.pipeline import build_training_set as build

                try:
                    return str(build(model, dt.date.fromisoformat(day)))
                except NothingToTrain as reason:  # labels not there yet: skip the group, keep the champion
                    raise AirflowSkipException(str(reason)) from None

            @task(queue=training_queue())
            def train_challenger(day: str, training_set: str) -> dict:
                from airflow.sdk.exceptions import AirflowSkipException

                from training.shared.pipeline import NothingToTrain
                from training.shared.pipeline import train_challenger as train

                try:
                    return train(model, training_set, dt.date.fromisoformat(day))
                except NothingToTrain as reason:  # too little data to fit: skip the rest, keep the champion
                    raise AirflowSkipException(str(reason)) from None

            @task
            def gate_and_promote(challenger: dict) -> dict:
                from training.shared.pipeline import gate_and_promote as gate

                return gate(model, challenger)

            @task
            def score_sessions(day: str, decision: dict) -> str | None:
                from training.shared.pipeline import score_sessions as score

                return score(model, dt.date.fromisoformat(day))

            @task
            def drift_report(day: str, decision: dict) -> dict:
                from training.shared.pipeline import drift_report as report

                return report(model, dt.date.fromisoformat(day))

            decision = gate_and_promote(train_challenger(day, build_training_set(day)))
            score_sessions(day, decision)
            drift_report(day, decision)

        stores >> train_and_gate(day)


storefront_training()
