"""The promotion gate on real models: a good first model becomes champion, a broken challenger never does.

Two versions of ``conversion`` are trained once per module into an MLflow in tmp: v(good) on the demo shop and
v(broken) on the same sessions with shuffled labels. Each test sets the aliases it starts from, so the tests do
not depend on each other's order.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from conversion_testdata import conversion_training_set, small_models_config, write_conversion_training_set
from mlflow.tracking import MlflowClient

from config.models import GateConfig, get_models_config
from training.conversion.model import TrainingResult, train_conversion
from training.shared import registry
from training.shared.cli import train_command

RUN_DATE = dt.date(2026, 2, 14)  # last day of the demo lake
NAME = "conversion"


@pytest.fixture(scope="module")
def versions(var_root: Path, demo_lake: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, TrainingResult]:
    folder = tmp_path_factory.mktemp("sets")
    frame = conversion_training_set(demo_lake)
    good_path, broken_path = folder / "good.parquet", folder / "broken.parquet"
    frame.to_parquet(good_path, index=False)
    shuffled = np.random.default_rng(0).permutation(frame["converted"].to_numpy())
    frame.assign(converted=shuffled).to_parquet(broken_path, index=False)
    config = small_models_config()
    return {
        "good": train_conversion(good_path, RUN_DATE, models_config=config, device="cpu"),
        "broken": train_conversion(broken_path, RUN_DATE, models_config=config, device="cpu"),
    }


@pytest.fixture(scope="module")
def holdout(versions: dict[str, TrainingResult]) -> pd.DataFrame:
    """The real (unshuffled) holdout: challenger and champion are both scored on it."""
    return pd.read_parquet(versions["good"].holdout_path)


@pytest.fixture
def client(versions: dict[str, TrainingResult]) -> MlflowClient:
    """A client on the module's registry, with no champion or challenger alias set yet."""
    client = registry.configure_mlflow()
    for alias in (registry.CHAMPION, registry.CHALLENGER):
        if alias in client.get_registered_model(NAME).aliases:
            client.delete_registered_model_alias(NAME, alias)
    return client


@pytest.fixture(scope="module")
def gate() -> GateConfig:
    return get_models_config().model(NAME).gate


def _decision_artifact(client: MlflowClient, result: TrainingResult) -> dict:
    path = client.download_artifacts(result.run_id, f"gate/decision-v{result.model_version}.json")
    return json.loads(Path(path).read_text())


def test_first_model_above_the_floor_becomes_champion(
    client: MlflowClient, versions: dict[str, TrainingResult], holdout: pd.DataFrame, gate: GateConfig
) -> None:
    good = versions["good"]
    decision = registry.promote_if_better(NAME, good.model_version, holdout, gate)

    assert decision.promoted and decision.champion_version is None
    assert decision.challenger_score == pytest.approx(good.metrics["roc_auc"], abs=1e-9)  # recomputed, same holdout
    champion = registry.champion(NAME)
    assert champion is not None and champion.version == int(good.model_version)
    tags = client.get_model_version(NAME, good.model_version).tags
    assert tags["gate.decision"] == "promoted" and tags["gate.champion_version"] == "none"
    assert "passes the floor" in tags["gate.reason"]
    assert client.get_run(good.run_id).data.tags["gate.decision"] == "promoted"
    assert _decision_artifact(client, good)["decision"] == "promoted"


def test_first_model_below_the_floor_is_not_promoted(
    client: MlflowClient, versions: dict[str, TrainingResult], holdout: pd.DataFrame, gate: GateConfig
) -> None:
    good = versions["good"]
    strict = gate.model_copy(update={"floor": 0.99})
    decision = registry.promote_if_better(NAME, good.model_version, holdout, strict)

    assert not decision.promoted and "floor" in decision.reason
    assert registry.champion(NAME) is None
    assert str(client.get_registered_model(NAME).aliases[registry.CHALLENGER]) == good.model_version
    assert client.get_model_version(NAME, good.model_version).tags["gate.decision"] == "rejected"


def test_broken_challenger_is_rejected_and_the_champion_stays(
    client: MlflowClient, versions: dict[str, TrainingResult], holdout: pd.DataFrame, gate: GateConfig
) -> None:
    good, broken = versions["good"], versions["broken"]
    client.set_registered_model_alias(NAME, registry.CHAMPION, good.model_version)

    decision = registry.promote_if_better(NAME, broken.model_version, holdout, gate)

    assert not decision.promoted
    assert decision.champion_version == good.model_version
    assert decision.champion_score == pytest.approx(good.metrics["roc_auc"], abs=1e-9)
    assert decision.challenger_score < decision.champion_score
    aliases = client.get_registered_model(NAME).aliases
    assert str(aliases[registry.CHAMPION]) == good.model_version
    assert str(aliases[registry.CHALLENGER]) == broken.model_version
    for tags in (
        client.get_model_version(NAME, broken.model_version).tags,
        client.get_run(broken.run_id).data.tags,
    ):
        assert tags["gate.decision"] == "rejected"
        assert tags["gate.metric"] == "roc_auc"
        assert tags["gate.champion_version"] == good.model_version
        assert float(tags["gate.challenger_score"]) == pytest.approx(decision.challenger_score, abs=1e-6)
        assert float(tags["gate.champion_score"]) == pytest.approx(decision.champion_score, abs=1e-6)
        assert "does not beat" in tags["gate.reason"]
    record = _decision_artifact(client, broken)
    assert record["decision"] == "rejected" and record["champion_version"] == good.model_version


def test_better_challenger_replaces_a_worse_champion(
    client: MlflowClient, versions: dict[str, TrainingResult], holdout: pd.DataFrame, gate: GateConfig
) -> None:
    good, broken = versions["good"], versions["broken"]
    client.set_registered_model_alias(NAME, registry.CHAMPION, broken.model_version)

    decision = registry.promote_if_better(NAME, good.model_version, holdout, gate)

    assert decision.promoted and decision.champion_version == broken.model_version
    assert decision.challenger_score >= decision.champion_score + gate.min_improvement
    assert str(client.get_registered_model(NAME).aliases[registry.CHAMPION]) == good.model_version
    assert registry.load_model(registry.alias_uri(NAME)).metadata.run_id == good.run_id


def test_a_challenger_within_the_margin_is_rejected(
    client: MlflowClient, versions: dict[str, TrainingResult], holdout: pd.DataFrame, gate: GateConfig
) -> None:
    good = versions["good"]
    client.set_registered_model_alias(NAME, registry.CHAMPION, good.model_version)
    # Register the same logged model again: identical scores, so it cannot beat the champion by min_improvement.
    source = client.get_model_version(NAME, good.model_version).source
    twin = client.create_model_version(NAME, source, run_id=good.run_id)

    decision = registry.promote_if_better(NAME, twin.version, holdout, gate)

    assert not decision.promoted
    assert decision.challenger_score == pytest.approx(decision.champion_score)
    assert str(client.get_registered_model(NAME).aliases[registry.CHAMPION]) == good.model_version


def test_gate_refuses_an_empty_holdout(
    client: MlflowClient, versions: dict[str, TrainingResult], holdout: pd.DataFrame, gate: GateConfig
) -> None:
    with pytest.raises(ValueError, match="empty"):
        registry.promote_if_better(NAME, versions["good"].model_version, holdout.head(0), gate)
    assert registry.champion(NAME) is None


def test_train_command_trains_registers_and_gates(
    client: MlflowClient, versions: dict[str, TrainingResult], tiny_lake: Path, tmp_path: Path
) -> None:
    training_set = write_conversion_training_set(tiny_lake, tmp_path / "tiny.parquet")
    result = CliRunner().invoke(
        train_command,
        [
            "--model",
            "conversion",
            "--training-set",
            str(training_set),
            "--date",
            "2026-01-21",
            "--device",
            "cpu",
            "--gate",
        ],
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    version = summary["model_version"]
    assert int(version) > max(int(v.model_version) for v in versions.values())
    assert summary["holdout_uri"].startswith(f"runs:/{summary['run_id']}/holdout/")  # what the gate downloads
    assert "holdout_path" not in summary  # a worker's scratch copy never travels
    assert summary["gate"]["decision"] in ("promoted", "rejected")  # the tiny shop sits near the floor
    assert client.get_model_version(NAME, version).tags["gate.decision"] == summary["gate"]["decision"]


def test_the_gate_runs_on_another_worker_from_the_logged_holdout(
    versions: dict[str, TrainingResult], client: MlflowClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 19: the gate reads the challenger's holdout from the tracking server, not the trainer's disk."""
    from config.settings import get_settings
    from training.shared.pipeline import gate_and_promote

    record = versions["good"].to_dict()  # what XCom carries to the gate task
    assert "holdout_path" not in record and record["holdout_uri"].startswith("runs:/")
    # another worker: its own var_root (the trainer's scratch copy is not there), the same tracking server
    monkeypatch.setenv("STOREFRONT_MLFLOW_TRACKING_URI", get_settings().tracking_uri)
    monkeypatch.setenv("STOREFRONT_MLFLOW_ARTIFACT_ROOT", str(get_settings().artifact_root))
    monkeypatch.setenv("STOREFRONT_VAR_ROOT", str(tmp_path / "gate-worker"))
    get_settings.cache_clear()
    try:
        assert not (get_settings().var_root / "training").exists()
        decision = gate_and_promote(NAME, record)
    finally:
        get_settings.cache_clear()
    assert decision["challenger_version"] == versions["good"].model_version
    assert decision["decision"] in ("promoted", "rejected") and decision["challenger_score"] > 0.5


def test_a_rerun_reuses_its_version_and_an_unfinished_one_is_replaced(
    var_root: Path, demo_lake: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 19: a retried or re-run training of the same date and inputs leaves one registered version, not two."""
    import yaml

    from config.models import get_models_config
    from config.settings import get_settings
    from training.shared import pipeline, publish

    config = small_models_config()
    conversion = config.model(NAME)
    config.models[NAME] = conversion.model_copy(update={
        "kpi_impact": conversion.kpi_impact.model_copy(update={"enabled": False})})
    path = tmp_path / "models.yaml"
    path.write_text(yaml.safe_dump(config.model_dump(mode="json")))
    monkeypatch.setenv("STOREFRONT_MODELS_CONFIG", str(path))
    get_settings.cache_clear()
    get_models_config.cache_clear()
    training_set = tmp_path / "training_set.parquet"
    conversion_training_set(demo_lake).to_parquet(training_set, index=False)
    client = registry.configure_mlflow()

    def versions_of(day: dt.date) -> list[str]:
        key = publish.training_key(NAME, day, training_set, get_models_config().model(NAME))
        found = client.search_model_versions(f"name = '{NAME}' and tags.{publish.TRAINING_KEY_TAG} = '{key}'")
        return sorted(str(v.version) for v in found)

    try:
        day = dt.date(2026, 2, 12)
        first = pipeline.train_challenger(NAME, training_set, day, device="cpu")
        again = pipeline.train_challenger(NAME, training_set, day, device="cpu")  # Airflow's retry, or a re-run
        assert again == first and versions_of(day) == [first["model_version"]]

        # a worker killed after registering, before the task handed its record over
        other = dt.date(2026, 2, 13)
        orphan = train_conversion(training_set, other, device="cpu")
        assert versions_of(other) == [orphan.model_version]
        retried = pipeline.train_challenger(NAME, training_set, other, device="cpu")
        assert versions_of(other) == [retried["model_version"]] and retried["model_version"] != orphan.model_version
    finally:
        get_settings.cache_clear()
        get_models_config.cache_clear()


def test_train_command_rejects_a_bad_date(tmp_path: Path) -> None:
    (tmp_path / "set.parquet").write_bytes(b"")
    result = CliRunner().invoke(
        train_command, ["--model", "conversion", "--training-set", str(tmp_path / "set.parquet"), "--date", "14.2.26"]
    )
    assert result.exit_code != 0 and "is not a date" in result.output
