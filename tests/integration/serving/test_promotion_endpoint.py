"""The promotion endpoint on a promotion pyfunc logged exactly as ``train_promotion`` logs it.

The tiny shop cannot train the real model (its labels need a 10-week outcome window), so the networks here are
seeded and untrained: what is tested is the serving contract (history from the online store, the model's policy
choice passed through, none with the reason), not the uplift quality (tests/model/test_promotion_*.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from fastapi.testclient import TestClient
from serving_stack import LAST_DAY, ServingStack, settings_env, wait_checked

from config.settings import Settings, get_settings
from serving.app import create_app

COUPONS = ("pct5", "pct10", "pct20", "free_shipping")


@pytest.fixture(scope="module")
def promotion_champion(serving_stack: ServingStack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    import torch

    from feature_repo.features.tables import CUSTOMER_HISTORY
    from training import promotion_pyfunc as pp
    from training import registry
    from training.promotion import FEATURE_COLUMNS

    mp = pytest.MonkeyPatch()
    settings_env(mp, serving_stack.var_root, serving_stack.lake_root, profile="embedded")
    columns = list(FEATURE_COLUMNS)
    history = pd.read_parquet(serving_stack.lake_root / "features" / "customer_history" / f"dt={LAST_DAY}")
    torch.manual_seed(0)
    pre = pp.UpliftPreprocessor.fit(history[columns].astype("float64"), columns, [])
    networks = [pp.UpliftNet(pre.n_features, len(COUPONS), [8]).eval() for _ in range(2)]
    model = pp.PromotionUpliftModel(pre, networks, 5.0, pp.CouponChoice(COUPONS, COUPONS, 1.0, 0.25, 0.0))
    files = pp.save_model_files(tmp_path_factory.mktemp("promotion"), model, [8], 0.0)
    with registry.training_run("promotion", "serving-test") as run:
        logged = run.log_pyfunc_model(
            name="model", python_model=Path(pp.__file__), artifacts=files,
            signature=registry.frame_signature(
                numeric_columns=columns, optional_columns=[c.name for c in CUSTOMER_HISTORY.columns if c.nullable],
                outputs={**{f"uplift_{c}": "double" for c in COUPONS}, "best_coupon": "string",
                         "expected_incremental_profit": "double"},
            ),
            pip_requirements=[registry.pinned_requirement(p) for p in ("torch", "pandas", "numpy")],
            registered_model_name="promotion",
        )
    registry.set_alias("promotion", logged.version)
    try:
        yield str(logged.version)
    finally:
        registry.configure_mlflow().delete_registered_model_alias("promotion", registry.CHAMPION)
        mp.undo()
        get_settings.cache_clear()


@pytest.fixture
def client(promotion_champion: str, stack_settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(stack_settings, models=("promotion",))) as client:
        assert wait_checked(client)
        yield client


def test_known_customers_get_the_models_choice_with_its_uplift(
    client: TestClient, serving_stack: ServingStack, promotion_champion: str
) -> None:
    answers = [client.get(f"/v1/promotions/{c}").json() for c in serving_stack.known_customers[:40]]
    for body in answers:
        assert body["model"]["version"] == promotion_champion and body["fallback"] is None
        assert set(body["uplift_by_coupon"]) == set(COUPONS)
        best = max(body["uplift_by_coupon"].values())
        if body["coupon"] is None:  # the policy's minimum (1 EUR) was not reached
            assert best <= 1.0 + 0.25 and "no coupon pays" in body["reason"]
        else:
            assert body["expected_incremental_profit"] == body["uplift_by_coupon"][body["coupon"]]
            assert body["expected_incremental_profit"] >= best - 0.25  # within the tolerance of the best
            assert body["coupon"] in body["reason"]


def test_customers_without_history_get_no_coupon_and_the_reason(client: TestClient) -> None:
    body = client.get("/v1/promotions/C-never-seen").json()
    assert body["coupon"] is None and body["uplift_by_coupon"] == {} and "no history" in body["reason"]
