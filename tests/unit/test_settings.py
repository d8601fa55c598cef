"""The settings object: embedded defaults, environment overrides, and .env.example listing every setting."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from config.models import read_models_config
from config.settings import REPO_ROOT, Settings


def test_embedded_defaults_need_no_services(tmp_path: Path) -> None:
    settings = Settings(var_root=tmp_path)
    assert settings.profile == "embedded"
    assert settings.tracking_uri.startswith("sqlite:///")
    assert settings.raw_root == tmp_path.resolve() / "lake" / "raw"
    assert settings.spark_master.startswith("local")


def test_environment_overrides_with_types(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("STOREFRONT_VAR_ROOT", str(tmp_path))
    monkeypatch.setenv("STOREFRONT_TASK_RETRIES", "0")
    monkeypatch.setenv("STOREFRONT_PIPELINE_END_DATE", "2026-02-01")
    settings = Settings()
    assert settings.task_retries == 0 and settings.pipeline_end_date.isoformat() == "2026-02-01"
    monkeypatch.setenv("STOREFRONT_PROFILE", "staging")
    with pytest.raises(ValueError, match="profile"):
        Settings()


def test_env_example_lists_every_setting() -> None:
    text = (REPO_ROOT / ".env.example").read_text()
    listed = set(re.findall(r"^#? ?(STOREFRONT_[A-Z_]+)=", text, flags=re.MULTILINE))
    expected = {f"STOREFRONT_{name.upper()}" for name in Settings.model_fields}
    assert expected <= listed, f"missing from .env.example: {sorted(expected - listed)}"


def test_models_config_validates() -> None:
    config = read_models_config(REPO_ROOT / "config" / "models.yaml")
    gate = config.model("conversion").gate
    assert gate.passes_floor(gate.floor) and not gate.passes_floor(gate.floor - 0.01)
    assert gate.beats(0.7 + gate.min_improvement, 0.7) and not gate.beats(0.7, 0.7)
    with pytest.raises(KeyError, match="no model"):
        config.model("nonexistent")


def test_artifact_roots_are_uris_and_shared_outputs_live_under_the_lake(tmp_path: Path) -> None:
    """Issue 19: nothing a task hands to another is under the worker's var_root."""
    embedded = Settings(var_root=tmp_path)
    assert embedded.artifact_root == (tmp_path.resolve() / "mlflow" / "artifacts").as_uri()
    assert embedded.local_artifact_root == tmp_path.resolve() / "mlflow" / "artifacts"
    assert embedded.reports == embedded.lake / "reports"
    # a tracking server with no root: the server's own (proxied) store, nothing local to create
    server = Settings(var_root=tmp_path, mlflow_tracking_uri="http://127.0.0.1:5000")
    assert server.tracking_server and server.artifact_root is None and server.local_artifact_root is None
    for uri in ("s3://bucket/mlflow", "mlflow-artifacts:/storefront", "gs://bucket/a/"):
        settings = Settings(var_root=tmp_path, mlflow_artifact_root=uri)
        assert settings.artifact_root == uri.rstrip("/") and settings.local_artifact_root is None
    relative = Settings(var_root=tmp_path, mlflow_artifact_root="shared/artifacts")
    assert relative.artifact_root == (Path.cwd() / "shared" / "artifacts").as_uri()
    assert relative.local_artifact_root == Path.cwd() / "shared" / "artifacts"
