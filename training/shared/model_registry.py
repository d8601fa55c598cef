"""The one list of models: what the nightly, ``storefront train`` and serving need from each, declared once.

Each model package declares one :class:`ModelSpec` as ``MODEL`` in its ``training/<name>/__init__.py``. Which models
exist, and in what order, is the ``models:`` block of ``config/models.yaml``: a model is its config key and the
package of that name. ``enabled: false`` there removes a model from the training DAG, the CLI and serving. Adding a
model is its package and its config block, nothing else.

Every reference in a spec is a ``"module:attribute"`` string, imported when a stage runs (:func:`resolve`): reading
the list (the DAG file at parse time) imports no torch, MLflow or Feast, and a task in a process of its own imports
only what its stage needs (building a training set needs Feast, not torch; the drift report not the model's code).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from config.models import ModelsConfig, get_models_config


@dataclass(frozen=True)
class ModelSpec:
    """What the shared stages and serving call for one model. Functions are ``"module:attribute"`` strings."""

    name: str  # the config key, the MLflow registered model, the DAG task group and the CLI choice
    label: str  # the holdout column the default gate scores P(positive) against
    build_training_set: str  # (day) -> Path of the training set, from Feast
    train: str  # (training_set, day[, device=]) -> a TrainingResult (run id, version, holdout path)
    score_day: str  # (day) -> Path | None: the champion scores the date's entities
    drift_feature_table: str  # the offline feature table whose date partition the drift report compares
    trains_on_device: bool = True  # False: ``train`` takes no ``device`` (a CPU-only estimator)
    # (gate) -> scorer(model, holdout) -> float; None: ``gate.metric`` as a binary metric of ``label``.
    gate_scorer: str | None = None
    read_holdout: str | None = None  # (path) -> holdout [default: pandas.read_parquet]
    # The drift_feature_table columns the drift report compares: a tuple, or a reference to a tuple constant of the
    # model's code [default: monitoring.drift.report.DEFAULT_COLUMNS].
    drift_columns: tuple[str, ...] | str | None = None
    serving_router: str | None = None  # (ServingContext) -> APIRouter; None: the model is not served
    serving_prepare: str | None = None  # (PyFuncModel, run_id) -> extras, once per loaded champion version

    def columns_for_drift(self) -> tuple[str, ...] | None:
        if isinstance(self.drift_columns, str):
            return tuple(resolve(self.drift_columns))
        return self.drift_columns


def resolve(reference: str) -> Any:
    """The object a ``"module:attribute"`` reference names, importing its module."""
    module, _, name = reference.partition(":")
    if not module or not name:
        raise ValueError(f"{reference!r}: expected 'module:attribute'")
    return getattr(importlib.import_module(module), name)


def function(reference: str | None) -> Callable[..., Any] | None:
    """A callable that imports ``reference`` when first called (None stays None)."""
    if reference is None:
        return None

    def call(*args: Any, **kwargs: Any) -> Any:
        return resolve(reference)(*args, **kwargs)

    call.__qualname__ = call.__name__ = reference
    return call


def model_specs(config: ModelsConfig | None = None) -> dict[str, ModelSpec]:
    """Every model of the config, enabled or not, in the config's order."""
    config = config or get_models_config()
    specs = {}
    for name in config.models:
        try:
            package = importlib.import_module(f"training.{name}")
        except ModuleNotFoundError as err:
            raise LookupError(f"models config names {name!r} but there is no package training/{name}/") from err
        spec = getattr(package, "MODEL", None)
        if not isinstance(spec, ModelSpec) or spec.name != name:
            raise LookupError(f"training/{name}/__init__.py must declare MODEL = ModelSpec(name={name!r}, ...)")
        specs[name] = spec
    return specs


def enabled_models(config: ModelsConfig | None = None) -> tuple[str, ...]:
    """The models the nightly trains, the CLI offers and serving loads: ``enabled: true`` in the config."""
    config = config or get_models_config()
    return tuple(name for name in model_specs(config) if config.models[name].enabled)


def model_spec(name: str, config: ModelsConfig | None = None) -> ModelSpec:
    specs = model_specs(config)
    try:
        return specs[name]
    except KeyError:
        raise KeyError(f"no model {name!r}; the models config has {', '.join(specs)}") from None
