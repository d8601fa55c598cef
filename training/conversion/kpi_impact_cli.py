"""``python -m training.conversion.kpi_impact_cli MODEL_URI HOLDOUT OUT_DIR``: the KPI impact analysis and report
of a logged conversion model on a labelled holdout (a training run's ``holdout.parquet``)."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from training.conversion.kpi_impact import analyze_kpi_impact
from training.conversion.kpi_impact_report import write_report


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m training.conversion.kpi_impact_cli MODEL_URI HOLDOUT OUT_DIR``: analyse a logged conversion model."""
    from feature_repo.contract.schema import KPI_NAMES
    from training.shared import registry

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("model_uri", help="models:/conversion/<version>, models:/conversion@champion or runs:/...")
    parser.add_argument("holdout", type=Path, help="parquet of labelled sessions (a training run's holdout)")
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--label", default="converted")
    parser.add_argument("--n-bootstrap", type=int, default=200)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    model = registry.load_model(args.model_uri)
    holdout = pd.read_parquet(args.holdout)

    def predict(frame: pd.DataFrame) -> np.ndarray:
        return np.asarray(model.predict(registry.model_input(model, frame)), dtype=np.float64)

    result = analyze_kpi_impact(
        predict, holdout, KPI_NAMES, label=args.label, n_bootstrap=args.n_bootstrap, seed=args.seed
    )
    paths = write_report(result, args.out_dir, f"KPI impact of {args.model_uri}")
    print(result.ranking_table().to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    print("\n".join(str(p) for p in paths.values()))


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    main()
