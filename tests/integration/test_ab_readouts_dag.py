"""The A/B readouts DAG end to end with ``dag.test()`` on a tiny simulated shop.

A private var root with three weeks of the tiny shop and a registry matching that range
(``simulator.experiment_plan``), then: a run writes a readout per experiment (JSON, HTML with plots) and the
index; re-running the date rewrites the same records; a registry that disagrees with the experiments table
makes that experiment invalid with the difference as the reason.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from config.settings import REPO_ROOT

FIRST, LAST = dt.date(2026, 1, 1), dt.date(2026, 1, 21)
DAY = dt.date(2026, 1, 15)  # every planted experiment has started (windows: 25%..85% of the range)


@pytest.fixture(scope="module")
def ab_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    from simulator.experiment_plan import write_registry_for_range

    var = tmp_path_factory.mktemp("ab_readouts") / "var"
    var.mkdir(parents=True)
    registry = write_registry_for_range(FIRST, LAST, var.parent / "experiments.yaml")
    keys = ("STOREFRONT_VAR_ROOT", "STOREFRONT_EXPERIMENTS_CONFIG", "STOREFRONT_TASK_RETRIES")
    saved = {k: os.environ.get(k) for k in keys}
    os.environ.update(STOREFRONT_VAR_ROOT=str(var), STOREFRONT_EXPERIMENTS_CONFIG=str(registry),
                      STOREFRONT_TASK_RETRIES="0")
    from config.settings import get_settings

    get_settings.cache_clear()
    from simulator.shop import simulate

    simulate(FIRST, LAST, get_settings().raw_root, seed=3, scale="tiny")
    subprocess.run([str(Path(sys.executable).with_name("airflow")), "db", "migrate"], check=True,
                   capture_output=True, env=os.environ.copy(), timeout=300)
    yield var
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    get_settings.cache_clear()


def _run(day: dt.date):
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(REPO_ROOT / "dags" / "storefront_ab_readouts.py"))
    assert not bag.import_errors, bag.import_errors
    logical = dt.datetime.combine(day, dt.time.min, tzinfo=dt.UTC)
    return bag.dags["storefront_ab_readouts"].test(logical_date=logical, run_conf={"date": day.isoformat()})


def _records(var: Path) -> dict[str, dict]:
    root = var / "lake" / "reports" / "ab_readouts"
    return {p.parent.parent.name: json.loads(p.read_text()) for p in root.glob(f"*/dt={DAY}/readout.json")}


def test_a_run_writes_a_readout_per_experiment_and_the_index(ab_env: Path) -> None:
    run = _run(DAY)
    assert run.state == "success"
    records = _records(ab_env)
    assert set(records) == {"exp_checkout_redesign", "aa_homepage", "exp_recs_widget"}
    for record in records.values():
        decision = record["decision"]
        assert decision["status"] in ("keep running", "ship", "stop", "invalid") and decision["reason"]
        assert record["history"][-1]["date"] <= DAY.isoformat()
        assert sum(record["srm"]["counts"]) > 0
        assert record["metrics"]["conversion_rate"]["role"] == "primary"
        assert {"page_load_ms", "js_error_rate"} <= set(record["metrics"])
    assert records["aa_homepage"]["decision"]["status"] != "ship"
    page = (ab_env / "lake" / "reports" / "ab_readouts" / "aa_homepage" / f"dt={DAY}" / "readout.html").read_text()
    assert page.count("data:image/png;base64,") == 3 and "always-valid" in page
    index = json.loads((ab_env / "lake" / "reports" / "ab_readouts" / f"dt={DAY}" / "index.json").read_text())
    assert sorted(e["experiment_id"] for e in index["experiments"]) == sorted(records)
    units = ab_env / "lake" / "experiments" / "ab_units" / f"dt={DAY}"
    assert list(units.glob("*.parquet"))


def test_rerunning_the_date_writes_the_same_readouts(ab_env: Path) -> None:
    before = _records(ab_env)
    assert _run(DAY).state == "success"
    assert _records(ab_env) == before


def test_a_registry_that_disagrees_with_the_record_makes_the_experiment_invalid(ab_env: Path) -> None:
    from config.settings import get_settings

    path = Path(os.environ["STOREFRONT_EXPERIMENTS_CONFIG"])
    original = path.read_text()
    registry = yaml.safe_load(original)
    registry["experiments"]["aa_homepage"]["variants"] = [
        {"name": "control", "weight": 0.6}, {"name": "treatment", "weight": 0.4}
    ]
    del registry["experiments"]["exp_recs_widget"]
    path.write_text(yaml.safe_dump(registry, sort_keys=False))
    get_settings.cache_clear()
    try:
        assert _run(DAY).state == "success"
    finally:
        path.write_text(original)
    record = _records(ab_env)["aa_homepage"]
    assert record["decision"]["status"] == "invalid"
    assert "planned weights" in record["decision"]["reason"]
    index = json.loads((ab_env / "lake" / "reports" / "ab_readouts" / f"dt={DAY}" / "index.json").read_text())
    statuses = {e["experiment_id"]: e["status"] for e in index["experiments"]}
    assert statuses["exp_recs_widget"] == "unregistered"
