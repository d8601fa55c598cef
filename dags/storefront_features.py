"""
### Daily features

For one date (the run's data interval, or the `date` param): validate the raw partitions with Great Expectations
(a failing partition is quarantined with its reasons and the run stops), build the offline feature tables with
Spark (each run overwrites exactly its date's partitions), validate them, apply the Feast definitions and
materialize the date into the online store. On success it emits the `storefront_daily_features` asset with the
date, which schedules the nightly training DAG.

Every task reads and writes partitions of its date only: re-running or backfilling a date gives the same result.
The `history_from` param makes one run cover every date from it up to the run's date (the initial history
load: one Spark session, one materialization); `table_history_from` lets some tables reach further back than
`history_from` (a model whose training window is longer than the others' needs only its own tables that far
back: `{"customer_history": "2026-01-01"}`), and each raw table is validated over the dates its readers need;
the `tables` param limits a run to some feature tables. Logic lives in `feature_repo`; this file only wires it.
"""

from __future__ import annotations

import datetime as dt

from airflow.sdk import Param, dag, task
from storefront_airflow.assets import DAILY_FEATURES
from storefront_airflow.defaults import default_args
from storefront_airflow.run_dates import run_days
from storefront_airflow.schedule import end_date, start_date

DEFAULT_ARGS = default_args(retry_delay=dt.timedelta(minutes=2))


@dag(
    dag_id="storefront_features",
    schedule="@daily",
    start_date=start_date(),
    end_date=end_date(),
    catchup=True,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["storefront", "features"],
    doc_md=__doc__,
    params={
        "date": Param(None, type=["null", "string"], format="date", description="Date to process (YYYY-MM-DD)"),
        "history_from": Param(None, type=["null", "string"], format="date",
                              description="Initial history load: also process every date from this one"),
        "tables": Param(None, type=["null", "array"], items={"type": "string"},
                        description="Build only these feature tables (and check only the raw tables they read)"),
        "table_history_from": Param(None, type=["null", "object"], additionalProperties={"type": "string"},
                                    description="History load: feature table -> an earlier first date for it"),
    },
)
def storefront_features():
    def _dates(plan: dict[str, list[str]]) -> dict[str, list[dt.date]]:
        return {name: [dt.date.fromisoformat(d) for d in days] for name, days in plan.items()}

    @task
    def validate_raw_events(**context) -> dict[str, list[str]]:
        """Validate what the builds will read; returns the run's plan: feature table -> its dates."""
        from feature_repo.expectations.validate import validate_table_days
        from feature_repo.features.jobs import run_plan

        params = context["params"]
        reach_back = {name: dt.date.fromisoformat(d) for name, d in (params.get("table_history_from") or {}).items()}
        plan, reads = run_plan(run_days(context), params.get("tables"), reach_back)
        validate_table_days("raw", reads)
        return {name: [d.isoformat() for d in days] for name, days in plan.items()}

    @task
    def build_features(plan: dict[str, list[str]]) -> dict[str, list[str]]:
        from feature_repo.features.jobs import build_features_for_table_days

        return build_features_for_table_days(_dates(plan))

    @task
    def validate_features(plan: dict[str, list[str]], partitions: dict[str, list[str]]) -> list[str]:
        from feature_repo.expectations.validate import validate_table_days

        validate_table_days("features", {name: days for name, days in _dates(plan).items() if name in partitions})
        return sorted({d for days in plan.values() for d in days})

    @task
    def feast_apply(days: list[str]) -> list[str]:
        from feature_repo.store import apply

        return apply()

    @task(outlets=[DAILY_FEATURES])
    def materialize_online_store(days: list[str], applied: list[str], **context) -> list[str]:
        from feature_repo.store import materialize_days

        materialize_days([dt.date.fromisoformat(d) for d in days])  # once, oldest to newest: the newest wins
        context["outlet_events"][DAILY_FEATURES].extra = {"date": days[-1], "dates": days}
        return days

    plan = validate_raw_events()
    validated = validate_features(plan, build_features(plan))
    materialize_online_store(validated, feast_apply(validated))


storefront_features()
