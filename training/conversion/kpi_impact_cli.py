"""``python -m training.conversion.kpi_impact_cli MODEL_URI HOLDOUT OUT_DIR``: the KPI impact analysis and report
of a logged conversion model on a labelled holdout (a training run's ``holdout.parquet``)."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from training.conversion.kpi_impact_report import write_report


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m training.conversion.kpi_impact_cli MODEL_URI HOLDOUT OUT_DIR``: analyse a logged conversion model.

    The logged pyfunc's own network and preprocessing are analysed the way training analyses them
    (:func:`training.conversion.model.kpi_impact_analysis`: a funnel's what-if split by stage, counts read where the
    network puts them), with session intervals only: the refitted models of a training run are not logged.
    """
    from config.models import KpiImpactConfig
    from training.conversion.model import kpi_impact_analysis, load_logged_model

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("model_uri", help="models:/conversion/<version>, models:/conversion@champion or runs:/...")
    parser.add_argument("holdout", type=Path, help="parquet of labelled sessions (a training run's holdout)")
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--label", default="converted")
    parser.add_argument("--n-bootstrap", type=int, default=200)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)

    try:
        preprocessor, module = load_logged_model(args.model_uri)
    except KeyError as missing:
        parser.error(f"{args.model_uri} is not a conversion model (no {missing} artifact)")
    holdout = pd.read_parquet(args.holdout)
    if args.label not in holdout.columns:
        parser.error(f"{args.holdout} has no label column {args.label!r}")
    config = KpiImpactConfig(enabled=True, n_bootstrap=args.n_bootstrap)
    result = kpi_impact_analysis(module, preprocessor, holdout, [], config, args.seed, label=args.label)
    paths = write_report(result, args.out_dir, f"KPI impact of {args.model_uri}")
    print(result.ranking_table().to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    print("\n".join(str(p) for p in paths.values()))


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    main()
