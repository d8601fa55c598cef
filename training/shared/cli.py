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

logger = logging.getLogger(__name__)

MODELS = ("conversion", "ranking", "elasticity", "recommendation")




@click.command("train")
@click.option("--model", "model", type=click.Choice(MODELS), required=True, help="Which model to train.")
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
    help="Training device [default: $STOREFRONT_DEVICE, auto].",
)
@click.option(
    "--gate/--no-gate",
    default=False,
    help="Then run the promotion gate on the run's holdout (moves the champion alias only if it passes).",
)
def train_command(model: str, training_set: Path, day: dt.date, device: str | None, gate: bool) -> None:
    """Train MODEL on TRAINING_SET for DATE; print the run id, model version, holdout and metrics as JSON."""
    from training.shared.devices import DeviceUnavailableError

    try:
        if model == "conversion":
            from training.conversion.model import read_holdout, train_conversion

            result = train_conversion(training_set, day, device=device)
            summary = result.to_dict()
            if gate:
                from config.models import get_models_config
                from training.shared.registry import promote_if_better

                decision = promote_if_better(
                    result.model_name,
                    result.model_version,
                    read_holdout(result.holdout_path),
                    get_models_config().model(model).gate,
                )
                summary["gate"] = decision.to_dict()
        elif model == "ranking":
            from training.ranking.model import train_ranking
            from training.shared.pipeline import gate_and_promote

            summary = train_ranking(training_set, day, device=device).to_dict()
            if gate:  # NDCG@20 with the NDCP@20 guardrail, as the nightly DAG does
                summary["gate"] = gate_and_promote(model, summary)
        elif model == "elasticity":
            from training.elasticity.model import train_elasticity
            from training.shared.pipeline import gate_and_promote

            summary = train_elasticity(training_set, day).to_dict()  # Newton on the CPU: no device to pick
            if gate:  # forecast deviance with the sign guardrail, as the nightly DAG does
                summary["gate"] = gate_and_promote(model, summary)
        elif model == "recommendation":
            from training.recommendation.model import train_recommendation
            from training.shared.pipeline import gate_and_promote

            summary = train_recommendation(training_set, day, device=device).to_dict()
            if gate:  # NDCG@10 with the Recall@20 guardrail, as the nightly DAG does
                summary["gate"] = gate_and_promote(model, summary)
        else:  # pragma: no cover - click.Choice keeps this out
            raise click.BadParameter(f"unknown model {model!r}")
    except (DeviceUnavailableError, KeyError, ValueError) as err:
        raise click.ClickException(str(err)) from None
    click.echo(json.dumps(summary, indent=2, sort_keys=True, default=str))
