"""The one model registry: every configured model declares its spec once; the DAG, the CLI and serving read it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from training.shared.model_registry import ModelSpec, enabled_models, model_specs, resolve

REPO = Path(__file__).resolve().parents[2]
REFERENCES = ("build_training_set", "train", "score_day", "gate_scorer", "read_holdout", "serving_router",
              "serving_prepare")


def test_every_configured_model_declares_a_spec_whose_references_resolve() -> None:
    specs = model_specs()
    assert set(specs) == {"conversion", "ranking", "recommendation", "elasticity", "promotion"}
    for name, spec in specs.items():
        assert isinstance(spec, ModelSpec) and spec.name == name
        for field in REFERENCES:
            reference = getattr(spec, field)
            if reference is not None:
                assert callable(resolve(reference)), f"{name}.{field} = {reference!r}"
        columns = spec.columns_for_drift()
        assert columns is None or (columns and all(isinstance(c, str) for c in columns)), name


def test_the_dag_the_cli_and_serving_read_the_one_list() -> None:
    from storefront_airflow.models import TRAINED_MODELS

    from serving.app import served_models
    from training.shared.cli import train_command

    choices = next(p for p in train_command.params if p.name == "model").type.choices
    assert TRAINED_MODELS == enabled_models() == tuple(choices)
    assert len(TRAINED_MODELS) == 5, "storefront train offers every model"
    assert set(served_models()) == set(TRAINED_MODELS)


def disabled_config(tmp_path: Path, model: str) -> Path:
    config = yaml.safe_load((REPO / "config" / "models.yaml").read_text())
    config["models"][model]["enabled"] = False
    path = tmp_path / "models.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


PROBE = """
import json, sys
sys.path.insert(0, "plugins")
from click.testing import CliRunner
from serving.app import create_app
from storefront_airflow.models import TRAINED_MODELS
from storefront.cli import main
from training.shared.cli import train_command

choices = next(p for p in train_command.params if p.name == "model").type.choices
refused = CliRunner().invoke(main, ["train", "--model", "ranking", "--training-set", ".", "--date", "2026-01-01"])
app = create_app()
print(json.dumps({"dag": list(TRAINED_MODELS), "cli": list(choices), "cli_exit": refused.exit_code,
                  "cli_output": refused.output, "serving": sorted(app.state.ctx.champions.slots),
                  "routes": sorted(r.path for r in app.routes)}))
"""


def test_enabled_false_removes_the_model_from_the_dag_list_the_cli_and_serving(tmp_path: Path) -> None:
    env = {**os.environ, "STOREFRONT_MODELS_CONFIG": str(disabled_config(tmp_path, "ranking")),
           "STOREFRONT_VAR_ROOT": str(tmp_path / "var")}
    out = subprocess.run([sys.executable, "-c", PROBE], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    others = ["conversion", "promotion", "recommendation", "elasticity"]
    assert seen["dag"] == seen["cli"] == others
    assert seen["cli_exit"] == 2 and "'ranking' is not one of" in seen["cli_output"]
    assert seen["serving"] == sorted(others)
    assert "/v1/rankings" not in seen["routes"] and "/v1/recommendations/{customer_id}" in seen["routes"]


def test_a_config_model_without_a_package_is_refused(tmp_path: Path) -> None:
    from config.models import read_models_config

    config = yaml.safe_load((REPO / "config" / "models.yaml").read_text())
    config["models"]["sixth"] = config["models"]["conversion"]
    path = tmp_path / "models.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    with pytest.raises(LookupError, match="no package training/sixth/"):
        model_specs(read_models_config(path))
