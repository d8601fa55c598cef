"""Both DAGs end to end with ``dag.test()`` on a tiny simulated shop: the walking skeleton, really run.

One module-scoped environment (a private var root, lake, MLflow, Feast and Airflow metadata database); the
tests run in order on it: a history load, a nightly run, training, idempotency, and a corrupted partition
that is quarantined and never reaches training.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

from config.settings import REPO_ROOT

FIRST, LAST = dt.date(2026, 1, 1), dt.date(2026, 1, 21)
NIGHT = dt.date(2026, 1, 20)
CORRUPT_NIGHT = dt.date(2026, 1, 21)


def _clear_caches() -> None:
    from config.models import get_models_config
    from config.settings import get_settings

    get_settings.cache_clear()
    get_models_config.cache_clear()


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A private var root with a tiny shop simulated, a small models config and a migrated Airflow database."""
    var = tmp_path_factory.mktemp("pipeline") / "var"
    models = yaml.safe_load((REPO_ROOT / "config" / "models.yaml").read_text())
    conversion = models["models"]["conversion"]
    conversion.update(training_window_days=14, holdout_days=4)
    conversion["hyperparameters"].update(hidden_sizes=[[16]], learning_rate=[0.003], max_epochs=3, patience=2)
    conversion["gate"]["floor"] = 0.5
    models_file = var.parent / "models.yaml"
    var.mkdir(parents=True)
    models_file.write_text(yaml.safe_dump(models))
    keys = ("STOREFRONT_VAR_ROOT", "STOREFRONT_MODELS_CONFIG", "STOREFRONT_TASK_RETRIES")
    saved = {k: os.environ.get(k) for k in keys}
    os.environ.update(STOREFRONT_VAR_ROOT=str(var), STOREFRONT_MODELS_CONFIG=str(models_file),
                      STOREFRONT_TASK_RETRIES="0")
    _clear_caches()
    from config import get_settings
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
    _clear_caches()


def _dag(dag_id: str):
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(REPO_ROOT / "dags" / f"{dag_id}.py"))
    assert not bag.import_errors, bag.import_errors
    return bag.dags[dag_id]


def _run(dag_id: str, day: dt.date, conf: dict | None = None):
    logical = dt.datetime.combine(day, dt.time.min, tzinfo=dt.UTC)
    return _dag(dag_id).test(logical_date=logical, run_conf=conf or {})


def _feature_rows(table: str, day: dt.date):
    from config import get_settings
    from feature_repo.features.partitions import read_feature_partition

    return read_feature_partition(get_settings().features_root, table, day)


def test_history_load_and_a_nightly_features_run(pipeline: Path) -> None:
    history_to = NIGHT - dt.timedelta(days=1)
    history_from, long_from = NIGHT - dt.timedelta(days=14), NIGHT - dt.timedelta(days=18)
    # one run: every table from history_from, customer_history (a longer window's table) from further back
    conf = {"history_from": history_from.isoformat(), "table_history_from": {"customer_history": long_from.isoformat()}}
    run = _run("storefront_features", history_to, conf)
    assert run.state == "success"
    run = _run("storefront_features", NIGHT)
    assert run.state == "success"
    from config import get_settings

    root = get_settings().features_root

    def built(table: str) -> list[str]:
        return sorted(p.name for p in (root / table).iterdir() if p.name.startswith("dt="))

    assert built("customer_history")[0] == f"dt={long_from}" and built("customer_history")[-1] == f"dt={NIGHT}"
    assert built("session_kpis")[0] == f"dt={history_from}" and built("session_kpis")[-1] == f"dt={NIGHT}"
    assert len(built("customer_history")) == 19 and len(built("session_kpis")) == 15
    sessions = _feature_rows("session_kpis", NIGHT)
    assert sessions.num_rows > 50
    assert (get_settings().reports / "data_docs" / "index.html").is_file()


def test_training_registers_a_model_and_records_the_gate(pipeline: Path) -> None:
    run = _run("storefront_training", NIGHT)
    assert run.state == "success"
    from config import get_settings
    from training.shared.registry import configure_mlflow

    client = configure_mlflow()
    versions = client.search_model_versions("name='conversion'")
    assert len(versions) == 1
    tags = versions[0].tags
    assert tags["gate.decision"] in ("promoted", "rejected") and tags["gate.reason"]
    run_data = client.get_run(versions[0].run_id).data
    assert {"roc_auc", "pr_auc", "log_loss", "base_rate"} <= set(run_data.metrics)
    assert run_data.tags["feature_service"] == "conversion_v1"
    assert run_data.tags["git_commit"]
    # one log-train-register sequence (training.shared.publish): every model's run carries the same tags
    shared = {"model", "feature_service", "data_interval_start", "data_interval_end", "run_date", "git_commit",
              "device"}
    registered = {v.name: v for v in client.search_model_versions()}
    assert {"conversion", "ranking", "recommendation"} <= set(registered), sorted(registered)
    for name, version in registered.items():
        run_tags = client.get_run(version.run_id).data.tags
        assert shared <= set(run_tags), (name, sorted(shared - set(run_tags)))
        assert run_tags["model"] == name and run_tags["run_date"] == NIGHT.isoformat()
        assert run_tags["data_interval_end"] == f"{NIGHT + dt.timedelta(days=1)}T00:00:00+00:00"
    training_set = get_settings().training_sets_root / "conversion" / f"dt={NIGHT}" / "training_set.parquet"
    assert pq.read_metadata(training_set).num_rows > 1000
    assert tags["gate.decision"] == "promoted", tags  # the test config's floor is 0.5: the first model passes
    summary = get_settings().reports / "drift" / "conversion" / f"dt={NIGHT}" / "summary.json"
    record = json.loads(summary.read_text())
    assert 0.0 <= record["drift_share"] <= 1.0
    import pandas as pd

    scores = pd.read_parquet(get_settings().lake / "scores" / "conversion" / f"dt={NIGHT}" / "scores.parquet")
    assert len(scores) == _feature_rows("session_kpis", NIGHT).num_rows
    assert scores.p_convert.between(0, 1).all() and (scores.model_version == str(versions[0].version)).all()


def test_rerunning_a_date_changes_nothing(pipeline: Path) -> None:
    from feature_repo.features.tables import CUSTOMER_HISTORY
    from feature_repo.store import online_features

    before = {t: _feature_rows(t, NIGHT) for t in ("session_kpis", "customer_history")}
    customers = before["customer_history"].column("customer_id").to_pylist()[:50]
    refs = [f"customer_history:{c}" for c in CUSTOMER_HISTORY.column_names]
    online_before = online_features(refs, [{"customer_id": c} for c in customers])

    assert _run("storefront_features", NIGHT).state == "success"

    for table, rows in before.items():
        after = _feature_rows(table, NIGHT)
        assert after.equals(rows), f"{table} changed on re-run"
        key = "session_id" if table == "session_kpis" else "customer_id"
        assert len(set(after.column(key).to_pylist())) == after.num_rows, f"duplicate rows in {table}"
    online_after = online_features(refs, [{"customer_id": c} for c in customers])
    assert online_after.equals(online_before)


def test_a_corrupted_partition_is_quarantined_and_never_trained_on(pipeline: Path) -> None:
    import pyarrow as pa
    import pyarrow.compute as pc

    from config import get_settings
    from feature_repo.contract import lake
    from feature_repo.contract.schema import TABLES

    settings = get_settings()
    path = lake.partition_dir(settings.raw_root, "sessions", CORRUPT_NIGHT) / lake.PART_FILE
    sessions = pq.read_table(path)
    lcp = sessions.column("lcp_ms")
    broken = sessions.set_column(sessions.schema.get_field_index("lcp_ms"), "lcp_ms",
                                 pc.multiply(lcp, pa.scalar(-1.0)))
    lake.write_parquet(TABLES["sessions"], broken, path)

    run = _run("storefront_features", CORRUPT_NIGHT)
    assert run.state == "failed"
    states = {ti.task_id: ti.state for ti in run.get_task_instances()}
    assert states["validate_raw_events"] == "failed"
    assert states["build_features"] != "success" and states["materialize_online_store"] != "success"

    quarantined = settings.quarantine_root / "raw" / "sessions" / f"dt={CORRUPT_NIGHT}"
    reasons = json.loads((quarantined / "reasons.json").read_text())
    assert "lcp_ms" in json.dumps(reasons)
    assert not path.exists(), "the bad partition must leave the lake"
    assert not (settings.features_root / "session_kpis" / f"dt={CORRUPT_NIGHT}").exists()

    from airflow.models.asset import AssetEvent
    from airflow.utils.session import create_session

    with create_session() as session:
        dates = [(e.extra or {}).get("date") for e in session.query(AssetEvent).all()]
    assert CORRUPT_NIGHT.isoformat() not in dates, "a failed features run must not trigger training"
    assert NIGHT.isoformat() in dates
    failures = list((settings.reports / "alerts" / "failures").glob("storefront_features__validate_raw_events__*"))
    assert failures, "on-call gets a failure record"
