"""The ranking model on the demo shop, through the real path: Spark features, Feast, LambdaRank, MLflow, the gate.

One module-scoped environment: the demo lake (linked, read only), ``product_ranking`` built by Spark for the
days a short window needs, the training set from Feast, and a private MLflow. The truth checks compare with what
the simulator planted: the position-bias curve and the relevance of every (customer segment, product).
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from config.settings import REPO_ROOT

RUN_DATE = dt.date(2026, 2, 14)  # last day of the demo lake
WINDOW_DAYS, HOLDOUT_DAYS = 9, 3

pytestmark = pytest.mark.slow


def _clear_caches() -> None:
    from config.models import get_models_config
    from config.settings import get_settings

    get_settings.cache_clear()
    get_models_config.cache_clear()


@pytest.fixture(scope="module")
def training_set(demo_lake: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The ranking training set of RUN_DATE over a 9-day window (3 holdout days), built by the real stages.

    The module's settings (var root, lake, models config) stay in the environment until the module ends.
    """
    root = tmp_path_factory.mktemp("ranking")
    (root / "lake").mkdir()
    (root / "lake" / "raw").symlink_to(demo_lake, target_is_directory=True)
    models = yaml.safe_load((REPO_ROOT / "config" / "models.yaml").read_text())
    ranking = models["models"]["ranking"]
    ranking.update(training_window_days=WINDOW_DAYS, holdout_days=HOLDOUT_DAYS)
    ranking["ranking"]["validation_days"] = 2
    ranking["hyperparameters"].update(max_epochs=8)
    models_file = root / "models.yaml"
    models_file.write_text(yaml.safe_dump(models))
    env = {"STOREFRONT_VAR_ROOT": str(root / "var"), "STOREFRONT_LAKE_ROOT": str(root / "lake"),
           "STOREFRONT_MODELS_CONFIG": str(models_file)}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    _clear_caches()
    try:
        from feature_repo import store
        from feature_repo.features.jobs import build_features_for_days
        from training.ranking.data import build_ranking_training_set

        first = RUN_DATE - dt.timedelta(days=WINDOW_DAYS)  # the day before the window: its first lists' features
        build_features_for_days([first + dt.timedelta(days=i) for i in range(WINDOW_DAYS)], ["product_ranking"])
        store.apply()
        yield build_ranking_training_set(RUN_DATE)
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        _clear_caches()


@pytest.fixture(scope="module")
def split(training_set: Path):
    from config.models import get_models_config
    from training.ranking.model import read_training_set, split_by_date

    cfg = get_models_config().model("ranking")
    return split_by_date(read_training_set(training_set), RUN_DATE, HOLDOUT_DAYS, cfg.ranking.validation_days)


@pytest.fixture(scope="module")
def rankers(split) -> dict:
    from config.models import get_models_config
    from training.ranking.model import fit_ranker

    cfg = get_models_config().model("ranking")
    cpu = torch.device("cpu")
    return {"corrected": fit_ranker(split, cfg, cpu, corrected=True),
            "uncorrected": fit_ranker(split, cfg, cpu, corrected=False)}


def test_estimated_position_propensities_are_within_20_percent_of_the_planted_curve(
    training_set: Path, demo_lake: Path
) -> None:
    from simulator.ranking_truth import planted_position_bias

    estimate = json.loads((training_set.parent / "propensities.json").read_text())
    theta = np.asarray(estimate["theta"])
    planted = planted_position_bias(demo_lake)[: len(theta)]
    assert len(theta) == 16  # demo lists are 8..16 items long
    relative_error = np.abs(theta / planted - 1.0)
    assert relative_error.max() < 0.20, dict(enumerate(np.round(relative_error, 3), start=1))


def test_bias_correction_orders_lists_closer_to_the_planted_relevance(split, rankers: dict, demo_lake: Path) -> None:
    from simulator.ranking_truth import planted_relevance
    from training.ranking.metrics import mean_defined, ndcg_with_gains, pad_lists

    holdout = split.holdout
    padded = pad_lists(holdout["list_id"], holdout["position"])
    true_gain = padded.gather(planted_relevance(holdout, demo_lake))

    def truth_ndcg(key: np.ndarray) -> float:
        return mean_defined(ndcg_with_gains(true_gain, padded.gather(key), padded.mask, 10))[0]

    corrected = truth_ndcg(rankers["corrected"].scores(holdout))
    uncorrected = truth_ndcg(rankers["uncorrected"].scores(holdout))
    logged = truth_ndcg(-holdout["position"].to_numpy(np.float64))
    assert corrected > uncorrected + 0.003, (corrected, uncorrected)
    assert uncorrected > logged, (uncorrected, logged)


def test_lists_without_a_positive_are_left_out_of_training_and_metrics(split, rankers: dict) -> None:
    from training.ranking.model import LOGGED, RELEVANCE, evaluate_orderings

    per_list_max = split.train.groupby("list_id")["grade"].max()
    assert rankers["corrected"].dropped_train_lists == int((per_list_max == 0).sum()) > 0
    holdout = split.holdout
    evaluation = evaluate_orderings(holdout, {LOGGED: -holdout["position"].to_numpy(float),
                                              RELEVANCE: rankers["corrected"].scores(holdout)})
    zero = int((holdout.groupby("list_id")["grade"].max() == 0).sum())
    assert evaluation.lists_without_positive == zero > 0
    ndcg = evaluation.per_list[RELEVANCE]["ndcg@20"]
    assert int(np.isnan(ndcg).sum()) == zero and np.nanmax(ndcg) <= 1.0
    # the counterfactual metric ranks the corrected model above the logged order it was learned from
    assert evaluation.table.loc[RELEVANCE, "ndcg@10"] > evaluation.table.loc[LOGGED, "ndcg@10"]


def test_impressions_get_the_product_features_of_the_day_before(training_set: Path) -> None:
    from config import get_settings
    from feature_repo.features.partitions import read_feature_partition

    frame = pd.read_parquet(training_set)
    day = RUN_DATE - dt.timedelta(days=1)
    shown = frame.loc[frame["shown_at"].dt.date == day].drop_duplicates("product_id").set_index("product_id")
    before = read_feature_partition(get_settings().features_root, "product_ranking", day - dt.timedelta(days=1))
    before = before.to_pandas().set_index("product_id")
    common = shown.index.intersection(before.index)
    assert len(common) > 500
    for column in ("ctr_debiased", "impressions_28d", "price"):
        assert np.allclose(shown.loc[common, column].astype(float), before.loc[common, column].astype(float)), column


def test_train_ranking_reports_logs_registers_and_gates(training_set: Path) -> None:
    from config.models import get_models_config
    from training.ranking.model import gate_scorer, hybrid_name, read_holdout, train_ranking
    from training.shared import registry

    result = train_ranking(training_set, RUN_DATE, device="cpu")
    report = result.report_dir
    for name in ("report.md", "report.html", "ecdf_at_20.png", "alpha_tradeoff.png", "metrics.csv"):
        assert (report / name).is_file(), name
    assert "NDCG@20 AUC (change)" in (report / "report.md").read_text()
    client = registry.configure_mlflow()
    run = client.get_run(result.run_id).data
    assert {"ndcg_at_20", "ndcp_at_20", "avg_price_at_20", "tradeoff.ndcg_at_20"} <= set(run.metrics)
    assert run.params["alpha"] == str(get_models_config().model("ranking").ranking.alpha)

    holdout = read_holdout(result.holdout_path)
    model = registry.load_model(result.model_uri)
    gate = get_models_config().model("ranking").gate
    served = result.evaluation.table.loc[hybrid_name(get_models_config().model("ranking").ranking.alpha)]
    assert gate_scorer(gate)(model, holdout) == pytest.approx(served["ndcg@20"], rel=1e-9)

    decision = registry.promote_if_better(
        "ranking", result.model_version, holdout, gate, label="grade", scorer=gate_scorer(gate),
        guardrail_scorer=gate_scorer(gate.model_copy(update={"metric": gate.guardrail.metric})),
    )
    assert decision.promoted and "guardrail ndcp@20" in decision.reason
    assert decision.challenger_guardrail == pytest.approx(served["ndcp@20"], rel=1e-9)
