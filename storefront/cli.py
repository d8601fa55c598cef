"""``storefront``: the stages of the platform as subcommands, each also runnable without an orchestrator."""

from __future__ import annotations

import logging

import click

from feature_repo.contract.data_dictionary import data_dictionary_command
from feature_repo.contract.loader import load_export_command
from feature_repo.expectations.validate import validate_command
from feature_repo.features.jobs import build_features_command
from monitoring.ab_readouts.stages import ab_readout_command
from monitoring.drift.cli import drift_command
from serving.cli import serve_command
from simulator.cli import simulate_command
from storefront.main_job import main_job_command
from training.shared.cli import train_command


@click.group()
@click.version_option(package_name="storefront-ml")
@click.option("-q", "--quiet", is_flag=True, help="Only warnings and errors on stderr.")
def main(quiet: bool) -> None:
    """Storefront ML: simulate a shop, load exports, and run the pipeline's stages by hand."""
    logging.basicConfig(
        level=logging.WARNING if quiet else logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )


for command in (
    simulate_command,
    load_export_command,
    data_dictionary_command,
    validate_command,
    build_features_command,
    train_command,
    drift_command,
    ab_readout_command,
    main_job_command,
    serve_command,
):
    main.add_command(command)

if __name__ == "__main__":
    main()
