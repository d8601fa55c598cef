"""One typed settings object for the whole platform.

Read from ``STOREFRONT_*`` environment variables (and a ``.env`` file if present) with the embedded defaults
below. Nothing is read at import time: call ``get_settings()``. ``.env.example`` lists every setting.
Relative paths are resolved against the working directory when the settings are read.

Two profiles share the code: ``embedded`` (a laptop, CI: local files, SQLite, ``local[*]`` Spark, CPU) and
``production`` (PostgreSQL, Redis, a Spark cluster, accelerator workers). Secrets (database passwords) only
ever come from the environment, never from this file.
"""

from __future__ import annotations

import datetime as dt
import re
from functools import lru_cache
from pathlib import Path
from typing import Literal
from urllib.parse import urlparse
from urllib.request import url2pathname

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parents[1]
_URI_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")  # file:, s3:, mlflow-artifacts:, ... (a path has none)


class Settings(BaseSettings):
    """Where data lives, which services the profile uses, and how the simulated default shop is drawn."""

    model_config = SettingsConfigDict(env_prefix="STOREFRONT_", env_file=".env", extra="ignore")

    profile: Literal["embedded", "production"] = Field(
        "embedded", description="embedded: local files, SQLite and local Spark; production: the services"
    )
    # --- storage -------------------------------------------------------------------------------------------------
    var_root: Path = Field(Path("var"), description="Root of everything the platform writes locally")
    lake_root: Path | None = Field(None, description="Data lake root [default: <var_root>/lake]")
    reports_root: Path | None = Field(
        None, description="Reports, alerts and failure records (shared by every worker) [default: <lake>/reports]"
    )
    # --- simulated shop --------------------------------------------------------------------------------------------
    seed: int = Field(7, description="Seed of the simulated shop")
    scale: Literal["tiny", "demo", "large"] = Field("demo", description="Size of the simulated shop")
    # --- Spark -----------------------------------------------------------------------------------------------------
    spark_master: str = Field("local[*]", description="Spark master URL; local[*] runs inside the task")
    spark_driver_memory: str = Field("2g", description="Driver memory of the local Spark session")
    # --- Feast -----------------------------------------------------------------------------------------------------
    feast_repo_path: Path = Field(REPO_ROOT / "feature_repo", description="The Feast repo (feature_store*.yaml)")
    redis_connection: str = Field("127.0.0.1:6379,db=0", description="Feast Redis online store (production)")
    feast_registry_url: str = Field(
        "postgresql+psycopg2://postgres@127.0.0.1:5432/storefront_feast",
        description="Feast SQL registry (production); put the password in the environment, not here",
    )
    # --- MLflow ----------------------------------------------------------------------------------------------------
    mlflow_tracking_uri: str | None = Field(
        None, description="MLflow tracking URI [default: sqlite:///<var_root>/mlflow/mlflow.db]"
    )
    mlflow_artifact_root: str | None = Field(
        None,
        description="Artifact root of new experiments: a path or a URI (file://, s3://, mlflow-artifacts:/...) "
        "[default: <var_root>/mlflow/artifacts with the embedded SQLite store; the tracking server's own "
        "(proxied, --serve-artifacts) with an http(s) tracking URI]",
    )
    # --- pipeline --------------------------------------------------------------------------------------------------
    pipeline_start_date: dt.date = Field(dt.date(2026, 1, 1), description="First date the daily DAGs schedule")
    pipeline_end_date: dt.date | None = Field(None, description="Last date the daily DAGs schedule (none: open)")
    task_retries: int = Field(2, ge=0, description="Retries of every DAG task (tests set 0)")
    models_config: Path = Field(REPO_ROOT / "config" / "models.yaml", description="Hyperparameters, gates, drift")
    experiments_config: Path = Field(
        REPO_ROOT / "config" / "experiments.yaml", description="The A/B experiment registry (config/experiments.py)"
    )
    device: Literal["auto", "cpu", "cuda", "hpu"] = Field(
        "auto", description="Training device; auto picks hpu, then cuda, then cpu"
    )
    training_queue: Literal["cpu", "cuda", "hpu"] = Field(
        "cpu", description="Celery queue of the training tasks: the workers with that accelerator listen on it"
    )
    # --- serving (serving/) ----------------------------------------------------------------------------------------
    serving_host: str = Field("127.0.0.1", description="Address the serving API listens on")
    serving_port: int = Field(8000, ge=1, le=65535, description="Port of the serving API")
    serving_poll_seconds: float = Field(
        30.0, gt=0, description="How often the service checks whether a model's champion alias moved"
    )
    serving_log_flush_seconds: float = Field(
        2.0, gt=0, description="Longest time a prediction waits in memory before the log writes it"
    )
    serving_log_batch_rows: int = Field(2000, ge=1, description="Predictions per written log file at most")
    serving_admin_api_key: SecretStr | None = Field(
        None, description="API key of the serving admin calls (X-API-Key); unset: admin calls are refused"
    )
    airflow_api_url: str = Field("http://127.0.0.1:8080", description="Airflow 3 API server (REST API v2)")
    airflow_username: str = Field("admin", description="Airflow user the serving admin call signs in as")
    airflow_password: SecretStr | None = Field(None, description="That user's password (environment only)")

    @field_validator("var_root", "lake_root", "reports_root", mode="after")
    @classmethod
    def _absolute(cls, value: Path | None) -> Path | None:
        return None if value is None else value.expanduser().resolve()

    @field_validator("mlflow_artifact_root", mode="after")
    @classmethod
    def _artifact_uri(cls, value: str | None) -> str | None:
        """A URI as given (without a trailing slash); a plain path becomes an absolute ``file://`` URI."""
        if value is None or not value.strip():
            return None
        value = value.strip().rstrip("/")
        return value if _URI_SCHEME.match(value) else Path(value).expanduser().resolve().as_uri()

    @property
    def lake(self) -> Path:
        return self.lake_root or self.var_root / "lake"

    @property
    def raw_root(self) -> Path:
        """Raw tables of the contract, one folder per table, ``dt=`` partitions."""
        return self.lake / "raw"

    @property
    def features_root(self) -> Path:
        """Offline feature tables written by the Spark builds (the Feast offline store's files)."""
        return self.lake / "features"

    @property
    def quarantine_root(self) -> Path:
        """Partitions that failed validation, each with a ``reasons.json``."""
        return self.lake / "quarantine"

    @property
    def training_sets_root(self) -> Path:
        return self.lake / "training_sets"

    @property
    def reports(self) -> Path:
        """Reports, alerts and failure records: under the lake by default, which every worker shares."""
        return self.reports_root or self.lake / "reports"

    @property
    def feast_data(self) -> Path:
        """The embedded Feast registry and SQLite online store."""
        return self.var_root / "feast"

    @property
    def tracking_uri(self) -> str:
        return self.mlflow_tracking_uri or f"sqlite:///{self.var_root / 'mlflow' / 'mlflow.db'}"

    @property
    def tracking_server(self) -> bool:
        """True when MLflow is a tracking server (http/https), not a database or folder this process opens."""
        return self.tracking_uri.startswith(("http://", "https://"))

    @property
    def artifact_root(self) -> str | None:
        """URI under which new experiments keep their artifacts; None: the tracking server's default."""
        if self.mlflow_artifact_root is not None:
            return self.mlflow_artifact_root
        return None if self.tracking_server else (self.var_root / "mlflow" / "artifacts").as_uri()

    @property
    def local_artifact_root(self) -> Path | None:
        """The artifact root's folder when it is one on this machine (``file://``), else None."""
        root = self.artifact_root
        return Path(url2pathname(urlparse(root).path)) if root and root.startswith("file:") else None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
