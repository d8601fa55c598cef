"""Our one door to MLflow: tracking set-up, run logging, model logging and registry, and the promotion gate.

Every MLflow call of the project goes through this module, so an MLflow upgrade touches one file. The traps
of MLflow 3.17 it handles: the tracking URI is always set explicitly (MLflow otherwise creates ``mlflow.db`` in
the working directory), experiments get an artifact location under ``settings.artifact_root`` (a URI; not
``./mlruns``; with a tracking server and no root set, the server's proxied store),
models are logged with ``name=`` and explicit ``pip_requirements``, and champions are aliases, not stages.

The gate, :func:`promote_if_better`, scores the challenger *and* the current champion on the same holdout
(recomputed, never read from logged metrics), moves the ``champion`` alias only when the challenger passes
``GateConfig``, and records every decision on the model version, on the challenger's run, and as a JSON
artifact. A model that does not pass never becomes champion.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import hashlib
import json
import logging
import math
import subprocess
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from importlib.metadata import version as installed_version
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.models import ModelSignature
from mlflow.protos.databricks_pb2 import RESOURCE_DOES_NOT_EXIST, ErrorCode
from mlflow.pyfunc import PyFuncModel
from mlflow.tracking import MlflowClient
from mlflow.types import ColSpec, DataType, Schema, TensorSpec

from config.models import GateConfig
from config.settings import REPO_ROOT, get_settings
from training.shared.metrics import binary_metric

logger = logging.getLogger(__name__)

CHAMPION = "champion"
CHALLENGER = "challenger"
DECISION_ARTIFACT_DIR = "gate"

Scorer = Callable[[PyFuncModel, pd.DataFrame], float]


class ScoreRefused(ValueError):
    """A scorer's guardrail refuses the model (e.g. wrong-signed elasticities): the gate rejects the challenger
    and records this message as its reason, instead of failing the task."""


# --- set-up --------------------------------------------------------------------------------------------------------
def configure_mlflow() -> MlflowClient:
    """Point MLflow at ``settings.tracking_uri`` (tracking and registry) and return a client for it.

    For the embedded SQLite database the folder is created first. Cheap to call again.
    """
    settings = get_settings()
    uri = settings.tracking_uri
    if uri.startswith("sqlite:///"):
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    if settings.local_artifact_root is not None:
        settings.local_artifact_root.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


class TrackingServerUnavailable(RuntimeError):
    """The MLflow tracking server does not answer: nothing was trained, logged or registered."""


def check_tracking_server(timeout_seconds: float = 5.0) -> None:
    """With an http(s) tracking URI, ask the server's ``/health`` first: a task whose server is down fails in
    seconds with the URI named, instead of training for minutes and then retrying MLflow calls for minutes more."""
    import httpx

    settings = get_settings()
    if not settings.tracking_server:
        return
    url = settings.tracking_uri.rstrip("/") + "/health"
    try:
        httpx.get(url, timeout=timeout_seconds).raise_for_status()
    except httpx.HTTPError as err:
        raise TrackingServerUnavailable(
            f"the MLflow tracking server {settings.tracking_uri} does not answer ({url}: {err or type(err).__name__}); "
            "nothing was trained or registered"
        ) from None


def ensure_experiment(name: str, client: MlflowClient | None = None) -> str:
    """The id of experiment ``name``, created with its artifacts under ``settings.artifact_root/<name>`` (with a
    tracking server and no artifact root set: where the server puts them, ``mlflow-artifacts:/`` when it proxies).

    ``client``: the client to use [default: :func:`configure_mlflow`'s, which also sets MLflow's global URIs].
    """
    client = client or configure_mlflow()
    root = get_settings().artifact_root
    location = None if root is None else f"{root}/{name}"
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        try:
            return client.create_experiment(name, artifact_location=location)
        except MlflowException:  # created by a parallel task between the lookup and here
            experiment = client.get_experiment_by_name(name)
            if experiment is None:
                raise
    if location is not None and experiment.artifact_location != location:
        logger.warning("experiment %r keeps its artifacts at %s, not %s", name, experiment.artifact_location, location)
    return experiment.experiment_id


def log_dated_run(
    experiment: str,
    *,
    key_tag: str,
    run_name: str,
    tags: Mapping[str, str],
    metrics: Mapping[str, float],
    timestamp_ms: int,
    artifacts: Iterable[Path] = (),
    artifact_path: str | None = None,
) -> str:
    """Log one run per value of ``tags[key_tag]`` (e.g. a day) in ``experiment``; returns the run id.

    Logging the same key again updates that run instead of adding one. Metrics are stamped ``timestamp_ms`` (so
    runs chart in key order). Uses a client of its own on ``settings.tracking_uri``: MLflow's global URIs are left
    as they are (the drift monitor runs inside processes that train too).
    """
    from mlflow.entities import Metric, RunTag

    settings = get_settings()
    uri = settings.tracking_uri
    if uri.startswith("sqlite:///"):  # MLflow does not create the database's folder
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    client = MlflowClient(tracking_uri=uri)
    if settings.local_artifact_root is not None:
        (settings.local_artifact_root / experiment).mkdir(parents=True, exist_ok=True)
    experiment_id = ensure_experiment(experiment, client)
    key = tags[key_tag]
    runs = client.search_runs([experiment_id], filter_string=f"tags.{key_tag} = '{key}'", max_results=1)
    if runs:
        run_id = runs[0].info.run_id
    else:
        run_id = client.create_run(experiment_id, run_name=run_name, tags=dict(tags)).info.run_id
    client.log_batch(
        run_id,
        metrics=[Metric(k, float(v), timestamp_ms, 0) for k, v in metrics.items()],
        tags=[RunTag(k, v) for k, v in tags.items()],
    )
    for path in artifacts:
        client.log_artifact(run_id, str(path), artifact_path=artifact_path)
    client.set_terminated(run_id, "FINISHED")
    return run_id


DATABASE_SCHEMES = frozenset({"sqlite", "postgresql", "mysql", "mssql"})  # MLflow's SQLAlchemy stores


def prepare_tracking_store(experiments: Iterable[str] = ()) -> dict[str, str]:
    """Create and migrate MLflow's backend store, and create ``experiments``: once, before parallel tasks use it.

    MLflow creates (or checks) its tables when a process first opens a store, and two processes doing that at
    once on a new store collide: on SQLite one of them fails with ``duplicate column name: step``. So the nightly
    DAG calls this in one task before the models' parallel tasks (``storefront.stores.prepare_stores``), after
    which every task finds a store at the current schema, with its experiment in it.

    * a database URI (``sqlite:///...``, ``postgresql://...``): the tables are created on an empty database, or
      migrated to this MLflow's schema when older (what ``mlflow db upgrade`` does), then the default experiment
      and ``experiments`` are created; all under a lock, so several processes may call this at once: a file
      lock beside a SQLite file, an advisory lock on PostgreSQL, a file lock under ``var_root`` otherwise (one
      host only);
    * a tracking server (``http(s)://``, ``databricks``): the server migrates its own store; only the
      experiments are created (a name taken by a parallel caller is looked up again).

    Idempotent. Returns ``{experiment name: id}``.
    """
    settings = get_settings()
    uri = settings.tracking_uri
    scheme = uri.split(":", 1)[0].split("+", 1)[0].lower()
    if uri.startswith("sqlite:///"):
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    with _store_lock(uri, scheme):
        if scheme in DATABASE_SCHEMES:
            _create_or_migrate_tables(uri)
        client = configure_mlflow()
        client.search_experiments(max_results=1)  # the tracking store's first open: its default experiment
        client.search_registered_models(max_results=1)  # and the registry store's
        ids = {name: ensure_experiment(name, client) for name in dict.fromkeys(experiments)}
    logger.info("MLflow store %s ready: experiments %s", _redacted(uri), ", ".join(ids) or "none")
    return ids


def _create_or_migrate_tables(uri: str) -> None:
    """MLflow's own schema steps (those of ``mlflow db upgrade``): create on an empty database, else migrate."""
    from mlflow.store.db import utils as db_utils  # private helpers, but the ones MLflow's CLI runs

    engine = db_utils.create_sqlalchemy_engine_with_retry(uri)
    try:
        if db_utils._is_empty_database(engine):
            logger.info("creating the MLflow tables in %s", _redacted(uri))
            db_utils._initialize_tables(engine)
            return
        current, head = db_utils._get_schema_version(engine), db_utils._get_latest_schema_revision()
        if current != head:
            logger.warning("migrating the MLflow tables of %s from %s to %s", _redacted(uri), current, head)
            db_utils._upgrade_db(engine)
    finally:
        engine.dispose()


@contextmanager
def _store_lock(uri: str, scheme: str) -> Iterator[None]:
    """Held while the store at ``uri`` is prepared: one preparer at a time, across processes."""
    if scheme == "postgresql":
        with _postgres_advisory_lock(uri):
            yield
        return
    if scheme == "sqlite":
        db = uri.removeprefix("sqlite:///")
        if not db or db == ":memory:":  # private to this process: nobody to race with
            yield
            return
        lock_file = Path(db + ".lock")
    elif scheme in DATABASE_SCHEMES:  # MySQL, SQL Server: serializes the preparers of this host only
        key = hashlib.sha256(uri.encode()).hexdigest()[:16]
        lock_file = get_settings().var_root / "locks" / f"mlflow-store-{key}.lock"
        lock_file.parent.mkdir(parents=True, exist_ok=True)
    else:  # a tracking server serializes its own writes
        yield
        return
    with lock_file.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextmanager
def _postgres_advisory_lock(uri: str) -> Iterator[None]:
    """A session-level advisory lock on the tracking database, released when the block ends (or the session dies)."""
    import sqlalchemy

    key = int.from_bytes(hashlib.sha256(b"storefront-mlflow-store").digest()[:8], "big", signed=True)
    engine = sqlalchemy.create_engine(uri, poolclass=sqlalchemy.pool.NullPool)
    try:
        with engine.connect() as conn:
            conn.execute(sqlalchemy.text("SELECT pg_advisory_lock(:key)"), {"key": key})
            conn.commit()
            try:
                yield
            finally:
                with contextlib.suppress(sqlalchemy.exc.DBAPIError):
                    conn.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:key)"), {"key": key})
                    conn.commit()
    finally:
        engine.dispose()


def _redacted(uri: str) -> str:
    """``uri`` without a password, for logs."""
    try:
        from sqlalchemy.engine import make_url

        return make_url(uri).render_as_string(hide_password=True)
    except Exception:  # not a database URL (a tracking server's address)
        return uri


# --- runs ----------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class LoggedModel:
    """A logged pyfunc model and, when it was registered, its registry version."""

    model_uri: str  # models:/<model id>, where MLflow 3 keeps it
    registered_name: str | None
    version: str | None

    @property
    def registry_uri(self) -> str:
        """``models:/<name>/<version>``, the address the gate and serving use."""
        if self.registered_name is None or self.version is None:
            raise ValueError(f"model {self.model_uri} was not registered")
        return model_version_uri(self.registered_name, self.version)


class TrainingRun:
    """Logging into one open MLflow run; use :func:`training_run` to get one."""

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Parameters as strings (lists and dicts as JSON); MLflow caps a value at 6000 characters."""
        mlflow.log_params({k: _param_text(v) for k, v in params.items()})

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        mlflow.log_metrics({k: float(v) for k, v in metrics.items()}, step=step)

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        mlflow.set_tags({k: str(v) for k, v in tags.items()})

    def log_artifact(self, local_path: Path, artifact_dir: str | None = None) -> str:
        """Upload a file; returns its ``runs:/`` URI."""
        mlflow.log_artifact(str(local_path), artifact_path=artifact_dir)
        relative = f"{artifact_dir}/{local_path.name}" if artifact_dir else local_path.name
        return f"runs:/{self.run_id}/{relative}"

    def log_dict(self, data: Mapping[str, Any], artifact_file: str) -> None:
        mlflow.log_dict(dict(data), artifact_file)

    def log_pyfunc_model(
        self,
        *,
        name: str,
        python_model: Path,
        artifacts: Mapping[str, str],
        signature: ModelSignature,
        pip_requirements: list[str],
        registered_model_name: str | None = None,
        input_example: pd.DataFrame | None = None,
        tags: Mapping[str, str] | None = None,
        code_paths: Iterable[Path] = (),
    ) -> LoggedModel:
        """Log a models-from-code pyfunc (``python_model`` is the file that calls ``mlflow.models.set_model``).

        ``pip_requirements`` must be explicit: MLflow's inference is slow and writes ``torch==X+cpu``, which
        would pull CUDA wheels into a serving image. ``code_paths``: files the model file imports, logged with it
        and put on ``sys.path`` (as top-level modules) when the model loads.
        """
        info = mlflow.pyfunc.log_model(
            name=name,
            python_model=str(python_model),
            code_paths=[str(p) for p in code_paths] or None,
            artifacts=dict(artifacts),
            signature=signature,
            input_example=input_example,
            pip_requirements=pip_requirements,
            registered_model_name=registered_model_name,
            tags=dict(tags or {}),
        )
        version = None if info.registered_model_version is None else str(info.registered_model_version)
        if registered_model_name and version is not None:
            client = configure_mlflow()
            for key, value in (tags or {}).items():
                client.set_model_version_tag(registered_model_name, version, key, value)
        logger.info("logged model %s%s", info.model_uri, f" as {registered_model_name} v{version}" if version else "")
        return LoggedModel(info.model_uri, registered_model_name, version)


@contextmanager
def training_run(experiment: str, run_name: str, tags: Mapping[str, Any] | None = None) -> Iterator[TrainingRun]:
    """Open a run in ``experiment`` (created if needed); it ends FAILED if the block raises."""
    experiment_id = ensure_experiment(experiment)
    with mlflow.start_run(
        experiment_id=experiment_id, run_name=run_name, tags={k: str(v) for k, v in (tags or {}).items()}
    ) as run:
        logger.info("MLflow run %s (%s) in experiment %r", run.info.run_id, run_name, experiment)
        yield TrainingRun(run.info.run_id)


def tabular_signature(
    string_columns: list[str],
    numeric_columns: list[str],
    optional_columns: list[str],
    output_name: str,
    params: Iterable[tuple[str, str, Any, tuple[int, ...] | None]] = (),
) -> ModelSignature:
    """A DataFrame-in, 1-d float64-out signature, with optional inference params (name, type, default, shape).

    Numbers are declared ``double``: a nullable integer column arrives as int64 on one day and float64 (with
    NaN) on another, and MLflow refuses to cast float to long but happily widens long to double.
    """
    from mlflow.types import ParamSchema, ParamSpec

    cols = [ColSpec("string", c, required=c not in optional_columns) for c in string_columns]
    cols += [ColSpec("double", c, required=c not in optional_columns) for c in numeric_columns]
    specs = [ParamSpec(name, kind, default, shape=shape) for name, kind, default, shape in params]
    return ModelSignature(
        inputs=Schema(cols),
        outputs=Schema([TensorSpec(np.dtype("float64"), (-1,), output_name)]),
        params=ParamSchema(specs) if specs else None,
    )


def frame_signature(
    numeric_columns: list[str],
    optional_columns: list[str],
    outputs: Mapping[str, str],
    string_columns: list[str] | None = None,
) -> ModelSignature:
    """A DataFrame-in, DataFrame-out signature; ``outputs`` maps each output column to ``double`` or ``string``.

    Inputs are typed as in :func:`tabular_signature`.
    """
    cols = [ColSpec("string", c, required=c not in optional_columns) for c in string_columns or []]
    cols += [ColSpec("double", c, required=c not in optional_columns) for c in numeric_columns]
    return ModelSignature(inputs=Schema(cols), outputs=Schema([ColSpec(kind, name) for name, kind in outputs.items()]))


def string_params_signature(
    columns: Mapping[str, bool], params: Iterable[tuple[str, str, Any, tuple[int, ...] | None]]
) -> ModelSignature:
    """A signature of string input columns (name -> required) and inference params (name, type, default, shape)."""
    from mlflow.types import ParamSchema, ParamSpec

    inputs = Schema([ColSpec("string", name, required=required) for name, required in columns.items()])
    specs = [ParamSpec(name, kind, default, shape=shape) for name, kind, default, shape in params]
    return ModelSignature(inputs=inputs, params=ParamSchema(specs))


def pinned_requirement(package: str) -> str:
    """``package==<installed version>`` without a local build tag (``torch==2.13.0``, never ``2.13.0+cpu``)."""
    return f"{package}=={installed_version(package).split('+')[0]}"


def run_tags(
    model: str, feature_service: str, window_start: dt.date, day: dt.date, **extra: str
) -> dict[str, str]:
    """The tags every nightly training run carries: model, features, the data interval [window_start, day] as
    UTC timestamps (end exclusive), the run date and the code's commit; ``extra`` adds model-specific ones."""
    return {
        "model": model,
        "feature_service": feature_service,
        "data_interval_start": dt.datetime.combine(window_start, dt.time(), dt.UTC).isoformat(),
        "data_interval_end": dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), dt.UTC).isoformat(),
        "run_date": day.isoformat(),
        "git_commit": git_commit(REPO_ROOT),
        **extra,
    }


def git_commit(repo: Path) -> str:
    """``git rev-parse HEAD`` in ``repo``, or ``unknown`` outside a git checkout."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True, timeout=10, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip() or "unknown"


# --- registry ------------------------------------------------------------------------------------------------------
def model_version_uri(name: str, version: str | int) -> str:
    return f"models:/{name}/{version}"


def alias_uri(name: str, alias: str = CHAMPION) -> str:
    return f"models:/{name}@{alias}"


def champion(name: str) -> ModelVersion | None:
    """The version behind ``name@champion``, or None when the model has no champion (or is not registered)."""
    client = configure_mlflow()
    try:
        registered = client.get_registered_model(name)
    except MlflowException as err:
        if err.error_code == ErrorCode.Name(RESOURCE_DOES_NOT_EXIST):
            return None
        raise
    version = registered.aliases.get(CHAMPION)
    return None if version is None else client.get_model_version(name, str(version))


def model_version(name: str, version: str | int) -> ModelVersion:
    return configure_mlflow().get_model_version(name, str(version))


def version_with_tag(name: str, tag: str, value: str) -> ModelVersion | None:
    """The newest version of ``name`` whose tag ``tag`` is ``value`` (None when none is, or no such model)."""
    if "'" in value or "'" in tag:
        raise ValueError(f"a tag filter cannot hold a quote: {tag}={value!r}")
    found = configure_mlflow().search_model_versions(f"name = '{name}' and tags.{tag} = '{value}'")
    return max(found, key=lambda v: int(v.version), default=None)


def log_run_json(run_id: str, artifact_file: str, data: Mapping[str, Any]) -> None:
    """Write ``data`` as the JSON artifact ``artifact_file`` of a finished run."""
    configure_mlflow().log_dict(run_id, dict(data), artifact_file)


def read_run_json(run_id: str, artifact_file: str) -> dict[str, Any] | None:
    """The JSON artifact ``artifact_file`` of a run, or None when the run has none."""
    import mlflow.artifacts

    configure_mlflow()
    try:
        return mlflow.artifacts.load_dict(f"runs:/{run_id}/{artifact_file}")
    except (MlflowException, OSError):
        return None


def discard_version(name: str, version: str | int, reason: str) -> None:
    """Delete a registered version its training never finished handing over (a worker died after registering)."""
    client = configure_mlflow()
    mv = client.get_model_version(name, str(version))
    if CHAMPION in (mv.aliases or []):
        raise RuntimeError(f"{name} v{version} is the champion: it is never discarded ({reason})")
    logger.warning("discarding %s v%s (run %s): %s", name, version, mv.run_id, reason)
    client.delete_model_version(name, str(version))


def set_alias(name: str, version: str | int, alias: str = CHAMPION) -> None:
    """Point ``name@alias`` at ``version`` by hand, outside the gate: an operator's rollback (serving follows)."""
    configure_mlflow().set_registered_model_alias(name, alias, str(version))


def load_model(uri: str) -> PyFuncModel:
    """Load a pyfunc model from ``models:/name/version``, ``models:/name@alias``, ``runs:/...`` or a path."""
    configure_mlflow()
    return mlflow.pyfunc.load_model(uri)


def download_artifact(uri: str, dst: Path | None = None) -> Path:
    """A local copy of the artifact at ``uri`` (``runs:/<run id>/<path>`` or a store URI)."""
    configure_mlflow()
    return Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=None if dst is None else str(dst)))


def model_input(model: PyFuncModel, frame: pd.DataFrame) -> pd.DataFrame:
    """The columns of ``frame`` that the model's signature names (ids and labels dropped), in types it accepts.

    MLflow's schema enforcement refuses pandas' nullable extension types ("Can not safely convert Int64 to
    float64"), which is what Feast training sets hold for integer features: those become float64 (NA -> NaN),
    and nullable strings become objects (NA -> None).
    """
    schema = model.metadata.get_input_schema()
    if schema is None or not schema.has_input_names():
        return frame
    specs = {spec.name: spec for spec in schema.inputs}
    out = frame[[c for c in schema.input_names() if c in frame.columns]].copy()
    for name in out.columns:
        dtype, kind = out[name].dtype, specs[name].type
        if kind in (DataType.double, DataType.float) and isinstance(dtype, pd.api.extensions.ExtensionDtype):
            out[name] = pd.to_numeric(out[name]).astype("float64")
        elif kind == DataType.string and isinstance(dtype, pd.StringDtype):
            out[name] = out[name].astype(object).where(out[name].notna(), None)
    return out


def binary_scorer(metric: str, label: str) -> Scorer:
    """Score a P(positive) model on a holdout with the binary metric ``metric`` against column ``label``."""

    def score(model: PyFuncModel, holdout: pd.DataFrame) -> float:
        if label not in holdout.columns:
            raise KeyError(f"the holdout has no label column {label!r}")
        p = np.asarray(model.predict(model_input(model, holdout)), dtype=np.float64).reshape(-1)
        return binary_metric(metric, holdout[label].to_numpy(), p)

    return score


# --- the gate ------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class GateDecision:
    """What the gate decided for one challenger, and why."""

    model_name: str
    challenger_version: str
    champion_version: str | None  # the champion it was compared with (None: first model)
    metric: str
    direction: str
    challenger_score: float
    champion_score: float | None
    floor: float
    min_improvement: float
    promoted: bool
    reason: str
    holdout_rows: int
    # the optional guardrail (GateConfig.guardrail): a second metric the challenger may not lose by much
    guardrail_metric: str | None = None
    guardrail_max_loss: float | None = None
    challenger_guardrail: float | None = None
    champion_guardrail: float | None = None

    @property
    def decision(self) -> str:
        return "promoted" if self.promoted else "rejected"

    def to_dict(self) -> dict[str, Any]:
        # JSON-safe for XCom: a refused challenger's score is NaN, which JSON cannot carry (null instead)
        return {
            "decision": self.decision,
            **{k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in asdict(self).items()},
        }

    def tags(self) -> dict[str, str]:
        tags = {
            "gate.decision": self.decision,
            "gate.reason": self.reason,
            "gate.metric": self.metric,
            "gate.challenger_score": f"{self.challenger_score:.6f}",
            "gate.champion_score": "none" if self.champion_score is None else f"{self.champion_score:.6f}",
            "gate.champion_version": self.champion_version or "none",
            "gate.holdout_rows": str(self.holdout_rows),
        }
        if self.guardrail_metric is not None:
            tags["gate.guardrail.metric"] = self.guardrail_metric
            tags["gate.guardrail.challenger_score"] = f"{self.challenger_guardrail:.6f}"
            tags["gate.guardrail.champion_score"] = (
                "none" if self.champion_guardrail is None else f"{self.champion_guardrail:.6f}"
            )
        return tags


def _decide(
    gate: GateConfig, challenger: float, champion_version: str | None, champion_score: float | None
) -> tuple[bool, str]:
    """Promote only above the floor and, when there is a champion, only by at least ``min_improvement``."""
    m = gate.metric
    if not math.isfinite(challenger):
        return False, f"challenger {m} is not a number ({challenger})"
    has_champion = champion_version is not None and champion_score is not None
    compared = f"{m} {challenger:.4f}"
    if has_champion:
        compared += f" vs champion v{champion_version} {champion_score:.4f} ({challenger - champion_score:+.4f})"
    else:
        compared += " (first model)"
    failures = []
    if not gate.passes_floor(challenger):
        side = "above" if gate.direction == "higher_is_better" else "below"
        failures.append(f"is not {side} the floor {gate.floor:.4f}")
    if has_champion and not gate.beats(challenger, champion_score):  # type: ignore[arg-type]
        failures.append(f"does not beat the champion by {gate.min_improvement:.4f}")
    if failures:
        return False, f"{compared}: {' and '.join(failures)}"
    if has_champion:
        return True, f"{compared}: beats the champion by at least {gate.min_improvement:.4f}"
    return True, f"{compared}: passes the floor {gate.floor:.4f}"


def _check_guardrail(
    gate: GateConfig, promoted: bool, reason: str, challenger: float, champion: float | None
) -> tuple[bool, str]:
    """The gate's verdict after the guardrail: a promotion stands only if the guardrail metric holds too."""
    guard = gate.guardrail
    assert guard is not None
    m = guard.metric
    if not math.isfinite(challenger):
        return False, f"{reason}; guardrail {m} is not a number ({challenger})"
    if champion is None:
        return promoted, f"{reason}; guardrail {m} {challenger:.4f} (first model: nothing to guard)"
    compared = f"guardrail {m} {challenger:.4f} vs champion {champion:.4f} ({challenger - champion:+.4f})"
    if guard.holds(challenger, champion):
        return promoted, f"{reason}; {compared}: within the allowed loss {guard.max_loss:.4f}"
    return False, f"{reason}; {compared}: loses more than the allowed {guard.max_loss:.4f}"


def promote_if_better(
    name: str,
    challenger_version: str,
    holdout: pd.DataFrame,
    gate: GateConfig,
    *,
    label: str = "converted",
    scorer: Scorer | None = None,
    guardrail_scorer: Scorer | None = None,
) -> GateDecision:
    """Score challenger and champion on ``holdout``, move ``name@champion`` only if the challenger passes ``gate``.

    Args:
        name: registered model name.
        challenger_version: the version just trained.
        holdout: rows both models are scored on (feature columns plus ``label``).
        gate: floor for a first model; ``min_improvement`` over the champion afterwards (the floor still holds).
        label: the label column for the default binary scorer.
        scorer: ``scorer(model, holdout) -> score`` for models that are not binary classifiers
            [default: ``gate.metric`` as a binary metric of ``label``].
        guardrail_scorer: the same for ``gate.guardrail.metric`` when the gate has a guardrail [default: that
            metric as a binary metric of ``label``]. With a guardrail, a challenger that passes the gate is still
            rejected when it loses more than ``guardrail.max_loss`` of that metric against the champion.

    A rejected challenger gets the ``challenger`` alias; the champion alias is left where it was. Every decision
    is recorded as ``gate.*`` tags on the model version and its run and as ``gate/decision-v<version>.json`` in the
    run. Scoring errors propagate: a gate that could not run never passes.
    """
    client = configure_mlflow()
    challenger_version = str(challenger_version)
    candidate = client.get_model_version(name, challenger_version)
    score = scorer or binary_scorer(gate.metric, label)
    if holdout.empty:
        raise ValueError(f"the holdout for {name} v{challenger_version} is empty: the gate cannot run")

    challenger_model = load_model(model_version_uri(name, challenger_version))
    refusal = None
    try:
        challenger_score = score(challenger_model, holdout)
    except ScoreRefused as err:  # the scorer's own guardrail: the challenger is rejected with its reason
        challenger_score, refusal = math.nan, str(err)
    current = champion(name)
    champion_version = champion_score = None
    champion_model = None
    if current is not None and str(current.version) == challenger_version:
        champion_version, champion_score = challenger_version, challenger_score
    elif current is not None:
        champion_version = str(current.version)
        champion_model = load_model(model_version_uri(name, champion_version))
        champion_score = score(champion_model, holdout)

    if champion_version == challenger_version:
        promoted, reason = False, f"v{challenger_version} already is the champion; nothing to do"
    else:
        promoted, reason = _decide(gate, challenger_score, champion_version, champion_score)
    if refusal is not None:
        promoted, reason = False, f"refused before scoring {gate.metric}: {refusal}"
    guard: dict[str, Any] = {}
    if gate.guardrail is not None and champion_version != challenger_version:
        guard_score = guardrail_scorer or binary_scorer(gate.guardrail.metric, label)
        challenger_guard = guard_score(challenger_model, holdout)
        champion_guard = None if champion_model is None else guard_score(champion_model, holdout)
        promoted, reason = _check_guardrail(gate, promoted, reason, challenger_guard, champion_guard)
        guard = {
            "guardrail_metric": gate.guardrail.metric,
            "guardrail_max_loss": gate.guardrail.max_loss,
            "challenger_guardrail": challenger_guard,
            "champion_guardrail": champion_guard,
        }
    decision = GateDecision(
        model_name=name,
        challenger_version=challenger_version,
        champion_version=champion_version,
        metric=gate.metric,
        direction=gate.direction,
        challenger_score=challenger_score,
        champion_score=champion_score,
        floor=gate.floor,
        min_improvement=gate.min_improvement,
        promoted=promoted,
        reason=reason,
        holdout_rows=len(holdout),
        **guard,
    )

    if promoted:
        client.set_registered_model_alias(name, CHAMPION, challenger_version)
        if str(client.get_registered_model(name).aliases.get(CHALLENGER)) == challenger_version:  # values are ints
            client.delete_registered_model_alias(name, CHALLENGER)
    elif champion_version != challenger_version:
        client.set_registered_model_alias(name, CHALLENGER, challenger_version)

    for key, value in decision.tags().items():
        client.set_model_version_tag(name, challenger_version, key, value)
        if candidate.run_id:
            client.set_tag(candidate.run_id, key, value)
    if candidate.run_id:
        client.log_dict(
            candidate.run_id, decision.to_dict(), f"{DECISION_ARTIFACT_DIR}/decision-v{challenger_version}.json"
        )
    log = logger.info if promoted else logger.warning
    log("gate %s v%s: %s (%s)", name, challenger_version, decision.decision, reason)
    return decision


def _param_text(value: Any) -> str:
    return json.dumps(value, sort_keys=True) if isinstance(value, list | tuple | dict) else str(value)
