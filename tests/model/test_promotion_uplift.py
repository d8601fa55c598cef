"""The promotion uplift model against planted truth.

1. Recovery where the data can support it: randomized offers with planted per-segment coupon effects and a
   signal-to-noise ratio a few thousand offers resolve. The policy must reach 80% of the oracle's profit, beat
   every blanket policy and leave the subsidy-only segment without coupons.
2. The simulated shop, through the real path (Spark outcomes, Feast point-in-time features, training, MLflow,
   the gate, the policy run). Its planted coupon effects (0.1..0.9 EUR of 10-week profit per offer) sit under a
   profit noise of 20..130 EUR per offer, and the demo shop's closed windows hold about 1,400 randomized offers
   (about 50 per segment and coupon): no estimator can find the coupons that pay there. What must hold is that
   the policy then does no harm: it beats every blanket policy on the truth and gives the subsidy-only segments
   no coupons. Reaching 80% of the oracle there is marked as an expected failure with that reason.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from config.models import get_models_config
from training.promotion.model import OUTCOME, fit_uplift_model
from training.promotion.pyfunc import NO_COUPON, CouponChoice

COUPONS = ["pct5", "pct10", "pct20", "free_shipping"]
# segment -> incremental profit of each coupon, EUR (segment 0 only subsidizes)
PLANTED = np.array([
    [-2.0, -4.0, -8.0, -1.5],
    [0.5, 0.8, -1.0, 3.0],
    [1.0, 3.0, 2.0, 0.0],
    [0.0, -0.5, -2.0, -0.5],
])
NOISE_EUR = 3.0  # standard deviation of the profit noise: a 1 EUR effect needs about 300 offers per arm to show


def _planted_offers(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    segment = rng.integers(0, len(PLANTED), n)
    arm = rng.integers(0, len(COUPONS) + 1, n)  # 0: none
    frame = pd.DataFrame({
        # what the segment shows in the history: order counts and recency differ, with overlap
        "orders_total": rng.poisson(np.array([12.0, 1.0, 4.0, 0.3])[segment]),
        "days_since_signup": rng.gamma(2.0, np.array([300.0, 20.0, 120.0, 200.0])[segment]),
        "revenue_90d": rng.gamma(1.5, np.array([120.0, 15.0, 40.0, 5.0])[segment]),
        "noise": rng.normal(size=n),
    })
    effect = np.where(arm == 0, 0.0, PLANTED[segment, np.maximum(arm - 1, 0)])
    base = 5.0 + 0.1 * frame["revenue_90d"].to_numpy()
    frame[OUTCOME] = base + effect + rng.normal(0.0, NOISE_EUR, n)
    frame["promotion_id"] = np.array([NO_COUPON, *COUPONS], dtype=object)[arm]
    frame["segment"] = segment
    return frame


@pytest.mark.slow
def test_the_policy_recovers_planted_coupon_effects() -> None:
    """With the shipped hyperparameters, ensemble and confidence rule (config/models.yaml)."""
    config = get_models_config().model("promotion")
    promo = config.promotion
    train, validation, test = _planted_offers(12_000, 1), _planted_offers(3_000, 2), _planted_offers(4_000, 3)
    choice = CouponChoice(tuple(COUPONS), ("pct5", "free_shipping", "pct10", "pct20"),
                          promo.policy.min_incremental_profit, promo.policy.tolerance, promo.policy.confidence_z)
    model, _, _ = fit_uplift_model(train, validation, COUPONS, dict(config.hyperparameters), ensemble=promo.ensemble,
                                   choice=choice,
                                   numeric_columns=["orders_total", "days_since_signup", "revenue_90d", "noise"])
    chosen = model.predict_frame(test)["best_coupon"].to_numpy()
    truth = np.column_stack([np.zeros(len(PLANTED)), PLANTED])[test["segment"].to_numpy()]
    index = np.array([[NO_COUPON, *COUPONS].index(c) for c in chosen])
    value = truth[np.arange(len(test)), index].mean()
    oracle = truth.max(axis=1).mean()
    blankets = truth[:, 1:].mean(axis=0)
    assert value >= 0.8 * oracle, (value, oracle)
    assert value > blankets.max() + 0.5
    assert (chosen[test["segment"].to_numpy() == 0] != NO_COUPON).mean() <= 0.02  # the subsidy-only segment


# --- the simulated shop, end to end ---------------------------------------------------------------------------------
RUN_DATE = dt.date(2026, 4, 26)  # the offers of 2026-01-11..02-15 (six campaigns) have closed 10-week windows
HISTORY_DAYS = [dt.date(2026, 1, 10) + dt.timedelta(days=7 * i) for i in range(6)] + [RUN_DATE]


@pytest.fixture(scope="module")
def shop(var_root: Path) -> dict:
    """Simulate the demo shop to the run date, build the history rows the offers need, train and gate once."""
    from config import get_settings
    from feature_repo import store
    from feature_repo.features.jobs import build_features_for_days
    from simulator.shop import simulate
    from training.shared import pipeline

    raw = get_settings().raw_root
    simulate(dt.date(2026, 1, 1), RUN_DATE, raw, seed=7, scale="demo")
    # only the days the point-in-time join reads (the day before each campaign) and the run date's scoring input
    build_features_for_days(HISTORY_DAYS, ["customer_history"])
    store.apply()
    training_set = pipeline.build_training_set("promotion", RUN_DATE)
    challenger = pipeline.train_challenger("promotion", training_set, RUN_DATE)
    decision = pipeline.gate_and_promote("promotion", challenger)
    scores = pipeline.score_sessions("promotion", RUN_DATE)
    return {"raw": raw, "training_set": training_set, "challenger": challenger, "decision": decision,
            "scores": scores}


@pytest.fixture(scope="module")
def truth_of_policy(shop: dict) -> pd.DataFrame:
    """The policy's coupon for every policy-assigned offer (never trained on) next to the planted truth."""
    from training.promotion.model import read_training_set
    from training.shared import registry

    frame = read_training_set(Path(shop["training_set"]))
    frame = frame[(frame["assignment"] == "policy") & frame["days_since_signup"].notna()].reset_index(drop=True)
    model = registry.load_model(registry.model_version_uri("promotion", shop["challenger"]["model_version"]))
    chosen = pd.DataFrame(model.predict(registry.model_input(model, frame)))["best_coupon"].to_numpy()
    uplift = pd.read_parquet(shop["raw"] / "_truth" / "promotion_uplift.parquet").set_index("offer_id")
    return uplift.loc[frame["offer_id"]].reset_index().assign(chosen=chosen)


def _true_value(rows: pd.DataFrame, coupons: np.ndarray) -> float:
    return float(np.mean([rows.iloc[i][f"delta_profit_{c}"] for i, c in enumerate(coupons)]))


@pytest.mark.slow
def test_training_set_labels_only_closed_windows_with_point_in_time_features(shop: dict) -> None:
    frame = pd.read_parquet(shop["training_set"])
    assert frame["offered_at"].max() + pd.Timedelta(days=70) <= pd.Timestamp(RUN_DATE + dt.timedelta(days=1),
                                                                             tz="UTC")
    assert sorted(frame["offered_at"].dt.date.unique()) == [d + dt.timedelta(days=1) for d in HISTORY_DAYS[:-1]]
    assert (frame["assignment"] == "random").sum() > 1000
    # the history row is the one of the day before the offer: no order of the offer day is counted
    assert frame["days_since_signup"].notna().mean() > 0.99


@pytest.mark.slow
def test_the_policy_beats_every_blanket_policy_and_skips_subsidy_segments(shop: dict, truth_of_policy) -> None:
    rows = truth_of_policy
    policy = _true_value(rows, rows["chosen"].to_numpy())
    blankets = {c: float(rows[f"delta_profit_{c}"].mean()) for c in ["pct5", "pct10", "pct20", "free_shipping"]}
    assert policy >= max(blankets.values()) + 0.1, (policy, blankets)
    truth = json.loads((shop["raw"] / "_truth" / "truth.json").read_text())["promotion"]
    subsidy = rows["segment"].isin(truth["subsidy_only_segments"])
    assert subsidy.any()
    assert (rows.loc[subsidy, "chosen"] != NO_COUPON).mean() <= 0.05


@pytest.mark.slow
@pytest.mark.xfail(strict=True, raises=AssertionError,
                   reason="about 50 randomized offers per segment and coupon cannot resolve 0.1-0.9 EUR "
                          "effects under 20-130 EUR of profit noise (docs/promotion.md, power; issue 18)")
def test_the_policy_reaches_80_percent_of_the_oracle_on_the_simulated_shop(truth_of_policy) -> None:
    rows = truth_of_policy
    deltas = rows[[c for c in rows.columns if c.startswith("delta_profit_")]].to_numpy()
    assert _true_value(rows, rows["chosen"].to_numpy()) >= 0.8 * deltas.max(axis=1).mean()


@pytest.mark.slow
def test_the_model_is_registered_gated_on_policy_auuc_and_runs_the_policy(shop: dict) -> None:
    from training.shared import registry

    decision, challenger = shop["decision"], shop["challenger"]
    assert decision["metric"] == "policy_auuc" and decision["challenger_version"] == challenger["model_version"]
    assert decision["challenger_score"] == pytest.approx(challenger["metrics"]["policy_auuc"], abs=1e-9)
    tags = registry.model_version("promotion", challenger["model_version"]).tags
    assert tags["gate.decision"] == decision["decision"]
    metrics = challenger["metrics"]
    for key in ("auuc.pct5", "auuc.free_shipping", "policy_auuc_vs_random", "profit_per_1000.policy.low",
                "profit_per_1000.all_pct20"):
        assert np.isfinite(metrics[key]), key
    assert metrics["profit_per_1000.policy.low"] <= metrics["profit_per_1000.policy"] <= (
        metrics["profit_per_1000.policy.high"])
    run = registry.configure_mlflow().get_run(challenger["run_id"])
    artifacts = {a.path for a in registry.configure_mlflow().list_artifacts(run.info.run_id, "report")}
    assert {"report/report.md", "report/report.html", "report/policy_curve.png", "report/qini_per_coupon.png"} <= (
        artifacts)
    if decision["promoted"]:
        scores = pd.read_parquet(shop["scores"])
        assert set(scores["coupon"]) <= {NO_COUPON, *COUPONS}
        assert scores["customer_id"].is_unique and len(scores) > 5000
