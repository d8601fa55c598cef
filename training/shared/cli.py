"""``storefront train``: train one model for a date from its training set, log it to MLflow and register it.

Heavy imports (torch, MLflow) happen when the command runs, not when the CLI is built.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from pathlib import Path

import click

from config.cli_options import ISO_DATE
from training.shared.model_registry import enabled_models

logger = logging.getLogger(__name__)


@click.command("train")
@click.option(
    "--model", "model", type=click.Choice(enabled_models()), required=True,
    help="Which model to train (the enabled models of config/models.yaml).",
)
@click.option(
    "--training-set",
    type=click.Path(exists=True, path_type=Path),
    required=True,
    help="Parquet file (or folder) of the model's training set.",
)
@click.option("--date", "day", required=True, type=ISO_DATE, help="Run date: the last day of the training window.")
@click.option(
    "--device",
    type=click.Choice(["auto", "cpu", "cuda", "hpu"]),
    default=None,
    help="Training device [default: $STOREFRONT_DEVICE, auto]; a model that trains on no device ignores it.",
)
@click.option(
    "--gate/--no-gate",
    default=False,
    help="Then run the promotion gate on the run's holdout (moves the champion alias only if it passes).",
)
def train_command(model: str, training_set: Path, day: dt.date, device: str | None, gate: bool) -> None:
    """Train MODEL on TRAINING_SET for DATE; print the run id, model version, holdout and metrics as JSON.

    The same stages the nightly DAG runs: ``train_challenger``, then with ``--gate`` ``gate_and_promote`` (the
    model's gate metric and guardrail from config/models.yaml).
    """
    from training.shared.devices import DeviceUnavailableError
    from training.shared.pipeline import gate_and_promote, train_challenger

    try:
        summary = train_challenger(model, training_set, day, device=device)
        if gate:
            summary["gate"] = gate_and_promote(model, summary)
    except (DeviceUnavailableError, KeyError, ValueError) as err:
        raise click.ClickException(str(err)) from None
    click.echo(json.dumps(summary, indent=2, sort_keys=True, default=str))
