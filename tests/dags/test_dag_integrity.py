"""Every DAG file imports cleanly, is wired as the conventions ask, and parses without heavy imports."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

DAGS_FOLDER = Path(__file__).resolve().parents[2] / "dags"
DAG_FILES = sorted(p for p in DAGS_FOLDER.glob("*.py") if not p.name.startswith("_"))
HEAVY_MODULES = ("torch", "pyspark", "mlflow", "evidently", "great_expectations", "feast", "sklearn", "pandas")


@pytest.fixture(scope="module")
def dag_bag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(DAGS_FOLDER))


def test_there_are_dag_files() -> None:
    assert {p.stem for p in DAG_FILES} >= {"storefront_features", "storefront_training"}


def test_no_import_errors(dag_bag) -> None:
    assert dag_bag.import_errors == {}


@pytest.mark.parametrize("path", DAG_FILES, ids=lambda p: p.stem)
def test_one_dag_per_file_named_after_it(dag_bag, path: Path) -> None:
    dags = [d for d in dag_bag.dags.values() if Path(d.fileloc) == path]
    assert [d.dag_id for d in dags] == [path.stem]


@pytest.mark.parametrize("path", DAG_FILES, ids=lambda p: p.stem)
def test_dag_follows_the_conventions(dag_bag, path: Path) -> None:
    dag = dag_bag.dags[path.stem]
    assert dag.tags, "tags"
    assert dag.doc_md and len(dag.doc_md.strip()) > 100, "doc_md from the module docstring"
    assert dag.catchup in (True, False), "catchup explicit"
    assert dag.max_active_runs == 1
    for task in dag.tasks:
        assert task.owner == "storefront-ml", task.task_id
        assert task.retries >= 1, task.task_id
        assert task.on_failure_callback, task.task_id


@pytest.mark.parametrize("path", DAG_FILES, ids=lambda p: p.stem)
def test_parsing_imports_nothing_heavy(path: Path) -> None:
    probe = (
        "import importlib.util, sys\n"
        f"spec = importlib.util.spec_from_file_location('dag_under_test', {str(path)!r})\n"
        "module = importlib.util.module_from_spec(spec); spec.loader.exec_module(module)\n"
        f"heavy = sorted(m for m in {HEAVY_MODULES!r} if m in sys.modules)\n"
        "print('HEAVY=' + ','.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=120)
    line = [row for row in out.stdout.splitlines() if row.startswith("HEAVY=")][-1]
    assert line == "HEAVY=", f"{path.name} imports at parse time: {line[6:]}"


def test_training_is_scheduled_on_the_features_asset(dag_bag) -> None:
    from storefront_airflow.assets import DAILY_FEATURES

    training = dag_bag.dags["storefront_training"]
    features = dag_bag.dags["storefront_features"]
    scheduled_on = [asset.name for asset in training.timetable.asset_condition.objects]
    assert scheduled_on == [DAILY_FEATURES.name]
    outlets = [o for t in features.tasks for o in t.outlets]
    assert [o.name for o in outlets] == [DAILY_FEATURES.name]
    upstream = features.get_task("build_features").upstream_task_ids
    assert upstream == {"validate_raw_events"}, "features are only built after the raw gate"


def test_training_prepares_the_shared_stores_before_any_model_task(dag_bag) -> None:
    """One serial task creates/migrates MLflow's store first: no two parallel model tasks are its first users."""
    from storefront_airflow.models import TRAINED_MODELS

    training = dag_bag.dags["storefront_training"]
    assert training.get_task("prepare_stores").upstream_task_ids == {"resolve_date"}
    model_tasks = [t for t in training.tasks if t.task_id not in ("resolve_date", "prepare_stores")]
    assert {t.task_id.split(".")[0] for t in model_tasks} == set(TRAINED_MODELS)
    for task in model_tasks:
        assert "prepare_stores" in task.get_flat_relative_ids(upstream=True), task.task_id


def test_a_disabled_model_has_no_task_group_in_the_training_dag(tmp_path: Path) -> None:
    """``enabled: false`` in config/models.yaml removes the model from the nightly (parsed in a fresh process)."""
    import json
    import os

    import yaml

    config = yaml.safe_load((DAGS_FOLDER.parent / "config" / "models.yaml").read_text())
    config["models"]["promotion"]["enabled"] = False
    (tmp_path / "models.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    probe = (
        "import json\nfrom airflow.dag_processing.dagbag import DagBag\n"
        f"bag = DagBag(dag_folder={str(DAGS_FOLDER / 'storefront_training.py')!r})\n"
        "print(json.dumps({'errors': list(bag.import_errors), "
        "'groups': sorted({t.task_id.split('.')[0] for t in bag.dags['storefront_training'].tasks})}))\n"
    )
    env = {**os.environ, "STOREFRONT_MODELS_CONFIG": str(tmp_path / "models.yaml")}
    out = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    assert seen["errors"] == []
    assert seen["groups"] == ["conversion", "elasticity", "prepare_stores", "ranking", "recommendation", "resolve_date"]
