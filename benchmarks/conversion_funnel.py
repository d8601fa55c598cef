"""The conversion funnel on simulated shops: the nightly's training beside the single-stage model, and the truth.

For each lake seed, the demo shop is simulated (2026-01-01..2026-02-14, ``--work``), its conversion training set
built from raw sessions and impressions, and two things are measured on it in the same run:

* **the nightly's training** (``train_conversion`` with ``config/models.yaml``, into a private MLflow): the
  funnel's holdout ROC-AUC, log loss and ECE beside the single-stage model of before, searched and calibrated in
  the same run on the same rows, with the paired bootstrap intervals over sessions the run logs
  (``funnel_minus_single.*``), and the run's seconds;
* **the planted truth**: the nightly's fitting (``fit_conversion`` and its 8 refits on resamples of the training
  days) analysed on every simulated session at the training days' level (``at_training_level``, as the truth
  tests do), each planted KPI's 5% what-if against ``truth.json``: estimate, interval, ratio, stage, rank.

    python benchmarks/conversion_funnel.py                       # seeds 7 8 9, about 4 minutes a seed
    python benchmarks/conversion_funnel.py --seeds 7 --work /tmp/funnel
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

FIRST_DAY, RUN_DATE = dt.date(2026, 1, 1), dt.date(2026, 2, 14)
REPO = Path(__file__).resolve().parents[1]


def training_set(seed: int, work: Path) -> Path:
    """The demo shop of lake ``seed`` and its conversion training set (``tests/model/conversion_testdata.py``)."""
    sys.path.insert(0, str(REPO / "tests" / "model"))
    from conversion_testdata import write_conversion_training_set

    from simulator.shop import simulate

    raw = work / f"seed{seed}" / "raw"
    if not raw.is_dir():
        simulate(FIRST_DAY, RUN_DATE, raw, seed=seed, scale="demo")
    return write_conversion_training_set(raw, work / f"seed{seed}" / "conversion.parquet")


def holdout_comparison(seed: int, path: Path, work: Path) -> list[str]:
    from config.settings import get_settings
    from training.conversion.model import train_conversion
    from training.shared import registry

    os.environ["STOREFRONT_VAR_ROOT"] = str(work / f"seed{seed}" / "var")
    get_settings.cache_clear()
    started = time.perf_counter()
    result = train_conversion(path, RUN_DATE, device="cpu")
    seconds = time.perf_counter() - started
    metrics = registry.configure_mlflow().get_run(result.run_id).data.metrics
    impact_seconds = metrics["kpi_impact_seconds"]
    lines = [f"seed {seed}: train_conversion {seconds:.1f} s (KPI impact with refits {impact_seconds:.1f} s)",
             f"  {'holdout':<10}{'funnel':>9}{'single':>9}{'funnel - single [95% paired]':>36}"]
    for name in ("roc_auc", "log_loss", "ece"):
        gap = f"{metrics[f'funnel_minus_single.{name}']:+.4f} [{metrics[f'funnel_minus_single.{name}_ci_low']:+.4f}, "
        gap += f"{metrics[f'funnel_minus_single.{name}_ci_high']:+.4f}]"
        lines.append(f"  {name:<10}{metrics[name]:>9.4f}{metrics[f'single_stage.{name}']:>9.4f}{gap:>36}")
    return lines


def truth_recovery(seed: int, path: Path, work: Path) -> list[str]:
    import torch

    from config.models import read_models_config
    from simulator.truth import load_truth
    from training.conversion.model import at_training_level, fit_conversion, kpi_impact_analysis, read_training_set

    config = read_models_config().model("conversion")
    frame = read_training_set(path)
    truth = load_truth(work / f"seed{seed}" / "raw")["conversion"]
    fitted = fit_conversion(frame, RUN_DATE, config, torch.device("cpu"))
    refits = fitted.refits(config.kpi_impact.model_refits, torch.device("cpu"))
    impact = kpi_impact_analysis(
        at_training_level(fitted.module), fitted.preprocessor, frame, [at_training_level(m) for m in refits],
        config.kpi_impact, int(fitted.chosen["seed"]), improvements=(0.05,), n_repeats=0,
    )
    planted = truth["planted_kpis"]
    top = set(impact.ranking[: len(planted)])
    lines = [f"  truth: planted six = top six: {top == set(planted)}; ranking {', '.join(impact.ranking[:7])}",
             f"  {'KPI (5%, per 100k sessions)':<26}{'estimate':>9}{'interval':>16}{'planted':>9}{'ratio':>7}"
             f"{'in':>5}{'stage':>10}{'non-conv in':>13}"]
    for kpi in planted:
        row, quiet = impact.what_if_for(kpi, 0.05), impact.what_if_for(kpi, 0.05, "non_converted")
        true, true_quiet = (truth["what_if"][kpi]["0.05"][k] for k in
                            ("delta_conversion_rate", "delta_conversion_rate_non_converted"))
        inside = row.model_ci_low <= true <= row.model_ci_high
        quiet_inside = quiet.model_ci_low <= true_quiet <= quiet.model_ci_high
        interval = f"{1e5 * row.model_ci_low:.1f}-{1e5 * row.model_ci_high:.1f}"
        lines.append(f"  {kpi:<26}{1e5 * row.delta_conversion_rate:>9.1f}{interval:>16}{1e5 * true:>9.1f}"
                     f"{row.delta_conversion_rate / true:>7.2f}{'yes' if inside else 'NO':>5}{row.main_stage:>10}"
                     f"{'yes' if quiet_inside else 'NO':>13}")
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[7, 8, 9])
    parser.add_argument("--work", type=Path, help="where the shops and MLflow go [default: a temporary folder]")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    work = args.work or Path(tempfile.mkdtemp(prefix="conversion_funnel_"))
    for seed in args.seeds:
        path = training_set(seed, work)
        print("\n".join(holdout_comparison(seed, path, work) + truth_recovery(seed, path, work)), flush=True)


if __name__ == "__main__":
    main()
