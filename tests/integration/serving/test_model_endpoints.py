"""The ranking, recommendation, price and promotion endpoints on champions trained on the tiny shop.

Each model was trained by its real nightly stages (Feast training set, trainer, MLflow registration) and its
champion's nightly scoring run wrote the day's batch (``serving_stack.build_stack``). The answers are checked
against what the same champion computes offline: the nightly batch of the same date (recommendations, prices,
promotion uplifts) or the logged model on the offline feature rows the online store was materialized from
(ranking). Model quality is tested in ``tests/model``; here it is the serving contract with real models.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from serving_stack import LAST_DAY, OTHER_MODELS, ServingStack, champions, wait_ready

from config.settings import Settings
from serving.app import create_app

RANK = "/v1/rankings"


@pytest.fixture(scope="module")
def served(serving_stack: ServingStack) -> Iterator[dict[str, str]]:
    """The stack's ranking, recommendation, elasticity and promotion versions as champions for this module."""
    with champions(serving_stack, *OTHER_MODELS) as versions:
        yield versions


@pytest.fixture
def client(served: dict[str, str], stack_settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(stack_settings), raise_server_exceptions=False) as client:
        ready = wait_ready(client)
        assert ready["ready"], ready
        assert {m: ready["models"][m]["version"] for m in served} == served, ready
        yield client


def _batch(stack: ServingStack, model: str) -> pd.DataFrame:
    return pd.read_parquet(stack.lake_root / "scores" / model / f"dt={LAST_DAY}" / "scores.parquet")


def _offline(stack: ServingStack, table: str) -> pd.DataFrame:
    return pd.read_parquet(stack.lake_root / "features" / table / f"dt={LAST_DAY}")


# --- ranking -------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def ranking_rows(serving_stack: ServingStack) -> pd.DataFrame:
    """Twelve products of the last day's product_ranking partition (what the online store holds), by id."""
    rows = _offline(serving_stack, "product_ranking").sort_values("product_id").reset_index(drop=True)
    return rows.iloc[np.linspace(0, len(rows) - 1, 12).astype(int)].reset_index(drop=True)


def _relevance(stack: ServingStack, rows: pd.DataFrame) -> np.ndarray:
    """The champion's relevance of ``rows`` computed offline through the logged model."""
    from training.shared import registry

    model = registry.load_model(registry.model_version_uri("ranking", stack.models["ranking"]))
    inner = model.unwrap_python_model()
    code = sys.modules[type(inner).__module__]  # the logged code, as MLflow loaded it (as the endpoint finds it)
    frame = rows.assign(list_id="offline", price_shown=rows["price"].astype("float64"))
    return code.relevance_scores(inner.module, inner.preprocessor.transform(registry.model_input(model, frame)))


def test_relevance_orders_by_the_champions_relevance_of_the_online_features(
    client: TestClient, serving_stack: ServingStack, ranking_rows: pd.DataFrame
) -> None:
    ids = list(ranking_rows["product_id"])
    body = client.post(RANK, json={"product_ids": ids, "objective": "relevance", "list_id": "L-test"}).json()
    assert body["model"] == {"name": "ranking", "version": serving_stack.models["ranking"]}
    assert body["fallback"] is None and body["alpha"] is None and all(it["known"] for it in body["items"])
    relevance = _relevance(serving_stack, ranking_rows)
    assert body["product_ids"] == [ids[i] for i in np.argsort(-relevance, kind="stable")]
    keys = {it["product_id"]: it["sort_key"] for it in body["items"]}
    assert [keys[p] for p in ids] == pytest.approx(relevance.tolist(), rel=1e-5, abs=1e-6)
    assert [it["position"] for it in body["items"]] == list(range(1, len(ids) + 1))


def test_the_hybrid_goes_from_relevance_alone_to_price_alone_and_defaults_to_the_models_alpha(
    client: TestClient, serving_stack: ServingStack, ranking_rows: pd.DataFrame
) -> None:
    ids = list(ranking_rows["product_id"])
    relevance_order = client.post(RANK, json={"product_ids": ids, "objective": "relevance"}).json()["product_ids"]
    at_one = client.post(RANK, json={"product_ids": ids, "objective": "hybrid", "alpha": 1.0}).json()
    assert at_one["product_ids"] == relevance_order and at_one["alpha"] == 1.0
    at_zero = client.post(RANK, json={"product_ids": ids, "objective": "hybrid", "alpha": 0.0}).json()
    prices = ranking_rows.set_index("product_id")["price"].astype(float)
    assert list(prices[at_zero["product_ids"]]) == sorted(prices, reverse=True)  # dearest first
    # prices sent with the request replace today's: cheapest-first prices turn the price-only order around
    sent = [float(i + 1) for i in range(len(ids))]
    by_sent = client.post(RANK, json={"product_ids": ids, "objective": "hybrid", "alpha": 0.0, "prices": sent}).json()
    assert by_sent["product_ids"] == ids[::-1]
    default = client.post(RANK, json={"product_ids": ids}).json()
    from config.models import read_models_config

    assert default["objective"] == "hybrid" and default["alpha"] == read_models_config().model("ranking").ranking.alpha


def test_expected_revenue_is_the_debiased_purchase_rate_times_the_price(
    client: TestClient, ranking_rows: pd.DataFrame
) -> None:
    ids = list(ranking_rows["product_id"])
    p = ranking_rows["purchase_rate_debiased"].astype(float).fillna(0.0).to_numpy()
    price = ranking_rows["price"].astype(float).to_numpy()
    for transform, g in (("identity", price), ("ln", np.log(price))):
        body = client.post(RANK, json={"product_ids": ids, "objective": "expected_revenue",
                                       "revenue_transform": transform}).json()
        keys = {it["product_id"]: it["sort_key"] for it in body["items"]}
        assert [keys[i] for i in ids] == pytest.approx((p * g).tolist(), rel=1e-9, abs=1e-12)
        assert [keys[i] for i in body["product_ids"]] == sorted(keys.values(), reverse=True)


def test_unknown_products_come_last_in_request_order_and_bad_lists_get_a_422(
    client: TestClient, ranking_rows: pd.DataFrame
) -> None:
    ids = ["P-not-sold-1", *ranking_rows["product_id"][:4], "P-not-sold-2"]
    body = client.post(RANK, json={"product_ids": ids, "objective": "relevance"}).json()
    assert body["product_ids"][-2:] == ["P-not-sold-1", "P-not-sold-2"]
    assert [it["known"] for it in body["items"]] == [True] * 4 + [False] * 2
    for bad, field in (
        ({"product_ids": ids[:2] + ids[1:2]}, "body.product_ids"),
        ({"product_ids": ids, "prices": [1.0]}, "body.prices"),
        ({"product_ids": ids, "objective": "relevance", "alpha": 0.5}, "body.alpha"),
        ({"product_ids": ids, "alpha": 1.5}, "body.alpha"),
        ({"product_ids": []}, "body.product_ids"),
    ):
        response = client.post(RANK, json=bad)
        assert response.status_code == 422, (bad, response.text)
        assert field in [e["field"] for e in response.json()["errors"]], (bad, response.json())


# --- recommendations -------------------------------------------------------------------------------------------------
def test_a_customer_gets_the_champions_nightly_recommendations(
    client: TestClient, serving_stack: ServingStack
) -> None:
    """The nightly batch ranks today's catalogue for each customer's main device; the endpoint ranks every product
    the model knows: on the catalogue's products, in the same context, both give the same order."""
    from feature_repo.contract import lake
    from feature_repo.contract.schema import TABLES

    batch = _batch(serving_stack, "recommendation")
    personal = batch[batch["source"] == "personal"]
    customers = sorted(personal["customer_id"].unique())[:15]
    assert customers, "the nightly batch has no personal recommendations"
    sessions = lake.read_table(serving_stack.raw_root, TABLES["sessions"], [LAST_DAY]).to_pandas()
    catalog = set(lake.read_table(serving_stack.raw_root, TABLES["catalog"], [LAST_DAY]).column("product_id")
                  .to_pylist())
    for customer in customers:
        device = sessions.loc[sessions["customer_id"] == customer, "device"].mode().iloc[0]
        response = client.get(f"/v1/recommendations/{customer}", params={"k": 100, "device": device})
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["source"] == "personal" and body["model"]["version"] == serving_stack.models["recommendation"]
        served = [p["product_id"] for p in body["products"]]
        scores = [p["score"] for p in body["products"]]
        assert len(set(served)) == len(served) and scores == sorted(scores, reverse=True)
        expected = personal[personal["customer_id"] == customer].sort_values("rank")["product_id"].tolist()
        on_sale = [p for p in served if p in catalog]
        assert on_sale[: len(expected)] == expected, customer
        top = client.get(f"/v1/recommendations/{customer}", params={"k": 3, "device": device}).json()
        assert [p["product_id"] for p in top["products"]] == served[:3]


def test_anonymous_and_unknown_customers_get_the_popular_fallback_and_categories_filter(
    client: TestClient, serving_stack: ServingStack
) -> None:
    from feature_repo.contract import lake
    from feature_repo.contract.schema import TABLES

    anonymous = client.get("/v1/recommendations/anonymous", params={"k": 5, "device": "mobile"}).json()
    unknown = client.get("/v1/recommendations/C-never-seen", params={"k": 5, "device": "mobile"}).json()
    assert anonymous["source"] == unknown["source"] == "popular"
    assert [p["product_id"] for p in anonymous["products"]] == [p["product_id"] for p in unknown["products"]]
    assert len(anonymous["products"]) == 5
    catalog = lake.read_table(serving_stack.raw_root, TABLES["catalog"], [LAST_DAY]).to_pandas()
    category = catalog["category"].value_counts().index[0]
    in_category = set(catalog.loc[catalog["category"] == category, "product_id"])
    filtered = client.get("/v1/recommendations/anonymous", params={"k": 5, "category": category}).json()
    assert filtered["products"] and {p["product_id"] for p in filtered["products"]} <= in_category
    nothing = client.get("/v1/recommendations/anonymous", params={"category": "no-such-category"}).json()
    assert nothing["products"] == []
    for params in ({"k": 0}, {"k": 101}, {"device": "fridge"}):
        response = client.get("/v1/recommendations/anonymous", params=params)
        assert response.status_code == 422, (params, response.text)


# --- prices -----------------------------------------------------------------------------------------------------------
def test_prices_are_the_champions_nightly_recommendations_within_the_guardrails(
    client: TestClient, serving_stack: ServingStack
) -> None:
    from config.models import read_models_config

    guardrails = read_models_config().model("elasticity").elasticity.guardrails
    batch = _batch(serving_stack, "elasticity").set_index("product_id")
    assert (batch["model_version"].astype(str) == serving_stack.models["elasticity"]).all()
    for product in batch.index[:: max(1, len(batch) // 12)]:
        response = client.get(f"/v1/prices/{product}")
        assert response.status_code == 200, response.text
        body, row = response.json(), batch.loc[product]
        assert body["model"]["version"] == serving_stack.models["elasticity"] and body["scored_on"] == str(LAST_DAY)
        rec = body["recommendation"]
        assert rec["recommended_price"] == pytest.approx(row["recommended_price"])
        assert rec["elasticity"]["estimate"] == pytest.approx(row["elasticity"])
        assert rec["elasticity"]["low"] <= rec["elasticity"]["estimate"] <= rec["elasticity"]["high"]
        assert rec["binding"] == row["binding"] and row["binding"] in body["reason"]
        for name in ("units_per_day_change", "revenue_per_day_change", "profit_per_day_change"):
            assert rec[name]["low"] <= rec[name]["estimate"] <= rec[name]["high"], name
        price = rec["current_price"]
        # within the guardrails, up to a cent of rounding
        assert abs(rec["recommended_price"] - price) <= guardrails.max_change * price + 0.01
        assert rec["recommended_price"] >= row["unit_cost"] * (1 + guardrails.min_margin) - 0.01
        assert rec["recommended_price"] <= row["list_price"] * guardrails.max_list_multiple + 0.01


def test_a_product_without_a_recommendation_keeps_its_price_with_the_reason(client: TestClient) -> None:
    response = client.get("/v1/prices/P-not-sold")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["recommendation"] is None and "keep its current price" in body["reason"]
    assert client.get("/v1/prices/P 1").status_code in (404, 422)


# --- promotions -------------------------------------------------------------------------------------------------------
def test_promotions_match_the_nightly_policy_run_of_the_same_history(
    client: TestClient, serving_stack: ServingStack
) -> None:
    """The online store holds the same customer_history rows the nightly policy run scored: the uplifts agree, and
    so does the coupon wherever the nightly run's choice was the model's (not an offer limit or budget)."""
    batch = _batch(serving_stack, "promotion").set_index("customer_id")
    coupons = [c.removeprefix("uplift_") for c in batch.columns if c.startswith("uplift_")]
    with_coupon, without = batch[batch["reason"] == "model"], batch[batch["reason"] == "not_paying"]
    assert len(with_coupon) >= 5 and len(without) >= 5, batch["reason"].value_counts()  # both paths are served
    picked = pd.concat([with_coupon.head(10), without.head(10)])
    for customer, row in picked.iterrows():
        response = client.get(f"/v1/promotions/{customer}")
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["model"]["version"] == serving_stack.models["promotion"] and body["fallback"] is None
        # (online rows round-trip through the store: agreement to a tenth of a cent)
        assert body["uplift_by_coupon"] == pytest.approx({c: row[f"uplift_{c}"] for c in coupons}, abs=1e-3)
        if row["reason"] == "model":
            assert body["coupon"] == row["coupon"] and body["coupon"] in body["reason"]
            assert body["expected_incremental_profit"] == pytest.approx(row["expected_incremental_profit"], abs=1e-3)
        else:
            assert body["coupon"] is None and body["expected_incremental_profit"] == 0.0
            assert "no coupon pays" in body["reason"]


def test_customers_without_history_get_no_coupon_and_the_reason(client: TestClient) -> None:
    body = client.get("/v1/promotions/C-never-seen").json()
    assert body["coupon"] is None and body["uplift_by_coupon"] == {} and "no history" in body["reason"]
