"""
### Daily A/B readouts

Scheduled on the `storefront_daily_features` asset, i.e. once a day after the date's raw partitions passed the
Great Expectations gate (or for the `date` param). For every experiment of the registry (`config/experiments.yaml`)
that has started by the date:

1. `reconcile_registry`: the registry (the plan) against the raw `experiments` table of the date (what ran);
   a disagreement makes that experiment's readout `invalid`, an unregistered experiment is listed as such;
2. `join_exposures_to_outcomes`: Spark joins each unit's first exposure to its sessions and orders after it
   (and its pre-exposure behaviour, the CUPED covariate), writing the date's partition under
   `<lake>/experiments/`;
3. `write_readouts`: per experiment and day, SRM (chi-square and sequential), lifts with always-valid intervals
   (CUPED), guardrails, the fixed-horizon tests on the planned end date, and the decision (keep running, ship,
   stop, invalid) with its reason; JSON record, HTML page with plots, and the date's index page under
   `<reports>/ab_readouts/`. The task log prints the index path. Emits the `storefront_ab_readouts` asset.

Every task reads and writes its date's partitions only: re-running a date rewrites the same readout. Logic lives
in `monitoring` (`ab_readouts`, `ab_exposure_outcomes`, `ab_readout`, `ab_stats`); this file only wires it.
"""

from __future__ import annotations

import datetime as dt

from airflow.sdk import Param, dag, task
from storefront_airflow.assets import AB_READOUTS, DAILY_FEATURES
from storefront_airflow.defaults import default_args
from storefront_airflow.run_dates import run_date
from storefront_airflow.schedule import end_date, start_date

DEFAULT_ARGS = default_args(retry_delay=dt.timedelta(minutes=5))


@dag(
    dag_id="storefront_ab_readouts",
    schedule=[DAILY_FEATURES],
    start_date=start_date(),
    end_date=end_date(),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["storefront", "experiments"],
    doc_md=__doc__,
    params={"date": Param(None, type=["null", "string"], format="date", description="Readout date (YYYY-MM-DD)")},
)
def storefront_ab_readouts():
    @task
    def reconcile_registry(**context) -> dict:
        from monitoring.ab_readouts.stages import reconcile_registry as reconcile

        return reconcile(run_date(context, DAILY_FEATURES))

    @task
    def join_exposures_to_outcomes(reconciliation: dict) -> dict[str, str]:
        from monitoring.ab_readouts.stages import join_outcomes

        return join_outcomes(dt.date.fromisoformat(reconciliation["day"]))

    @task(outlets=[AB_READOUTS])
    def write_readouts(reconciliation: dict, partitions: dict[str, str], **context) -> dict[str, str]:
        from monitoring.ab_readouts.stages import write_readouts as write

        day = reconciliation["day"]
        written = write(dt.date.fromisoformat(day), reconciliation)
        print(f"A/B readouts of {day}: {written['index']}")
        context["outlet_events"][AB_READOUTS].extra = {"date": day, "index": written["index"]}
        return written

    reconciliation = reconcile_registry()
    write_readouts(reconciliation, join_exposures_to_outcomes(reconciliation))


storefront_ab_readouts()
