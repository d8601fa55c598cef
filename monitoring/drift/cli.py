"""``storefront drift-report``: the daily drift monitor by hand, the same code the DAG's task runs."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import click

from config.cli_options import ISO_DATE


@click.command("drift-report")
@click.option(
    "--reference",
    required=True,
    type=click.Path(exists=True, path_type=Path),
    help="The champion's training reference sample: a parquet file or a folder of them.",
)
@click.option(
    "--current",
    required=True,
    type=click.Path(exists=True, path_type=Path),
    help="The date's features: a parquet file or a folder (e.g. <lake>/features/session_kpis/dt=DATE).",
)
@click.option("--date", "day", required=True, type=ISO_DATE, help="The date the report is about (YYYY-MM-DD).")
@click.option("--model", required=True, help="The model whose inputs these are (names the report folder).")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Folder for report.html, report.json and summary.json [default: <reports>/drift/<model>/dt=<date>].",
)
@click.option(
    "--mlflow/--no-mlflow", "log_mlflow", default=False, show_default=True, help="Also record the run in MLflow."
)
@click.option("--champion-version", default=None, help="Registry version the reference belongs to (MLflow tag).")
def drift_command(
    reference: Path,
    current: Path,
    day: dt.date,
    model: str,
    out: Path | None,
    log_mlflow: bool,
    champion_version: str | None,
) -> None:
    """Compare a date's features with a model's reference; write the reports and, on drift, an on-call alert.

    Prints the summary line and the path of summary.json. Exits 0 whether or not the data drifted: the alert
    file and the summary say that; a failure to compare exits non-zero.
    """
    import pandas as pd

    from monitoring.drift.alerts import route_drift_alert
    from monitoring.drift.report import drift_report, drift_summary_line, log_drift_to_mlflow

    try:
        result = drift_report(pd.read_parquet(reference), pd.read_parquet(current), day=day, model=model, out_dir=out)
    except ValueError as err:
        raise click.ClickException(str(err)) from err
    alert = route_drift_alert(result)
    if log_mlflow:
        log_drift_to_mlflow(result, champion_version)
    click.echo(drift_summary_line(result))
    click.echo(f"summary: {result.summary_path}")
    if alert is not None:
        click.echo(f"alert: {alert}")
