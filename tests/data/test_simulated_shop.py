"""The simulated shop: it writes the contract, deterministically, coherently, and with its planted truth visible.

The planted-effect tests use deliberately simple estimators (quartile gaps, binned rates, one-covariate GLMs):
if a simple estimator cannot see an effect, no model downstream should be expected to recover it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from feature_repo.contract import lake
from feature_repo.contract.conformance import conform
from feature_repo.contract.schema import KPI_NAMES, TABLES
from simulator.shop import DriftSwitch, simulate
from simulator.truth import load_truth


def _frame(root: Path, table: str) -> pd.DataFrame:
    return lake.read_table(root, TABLES[table]).to_pandas()


def _tree_digest(root: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(root)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


# --- the contract ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("table", list(TABLES))
def test_every_partition_conforms_to_its_schema(tiny_lake: Path, table: str) -> None:
    days = lake.list_partitions(tiny_lake, table)
    assert days, f"no partitions written for {table}"
    for day in days:
        path = lake.partition_dir(tiny_lake, table, day) / lake.PART_FILE
        data = pq.read_table(path)
        typed, violations = conform(TABLES[table], data)
        assert not violations, f"{table} dt={day}: " + "; ".join(map(str, violations))
        assert data.schema.equals(TABLES[table].arrow_schema(), check_metadata=False)
        dates = set(lake.partition_dates(TABLES[table], typed).to_pylist())
        assert dates <= {day}, f"{table} dt={day} holds rows of other dates"


def test_timestamps_are_stored_as_utc_microseconds(tiny_lake: Path) -> None:
    path = lake.partition_dir(tiny_lake, "sessions", dt.date(2026, 1, 5)) / lake.PART_FILE
    logical = pq.ParquetFile(path).schema.column(TABLES["sessions"].column_names.index("started_at")).logical_type
    stored = json.loads(logical.to_json())
    assert (stored["Type"], stored["isAdjustedToUTC"], stored["timeUnit"]) == ("Timestamp", True, "microseconds")


def test_daily_tables_cover_every_day(tiny_lake: Path) -> None:
    every_day = [dt.date(2026, 1, 1) + dt.timedelta(days=i) for i in range(21)]
    for table in ("catalog", "customers", "sessions", "impressions", "orders", "exposures", "promotion_offers"):
        assert lake.list_partitions(tiny_lake, table) == every_day, table


def test_sessions_carry_at_least_twenty_kpis_with_heavy_tails(tiny_lake: Path) -> None:
    sessions = _frame(tiny_lake, "sessions")
    assert len(KPI_NAMES) >= 20
    for kpi in ("page_load_ms", "lcp_ms", "inp_ms", "checkout_latency_ms", "search_latency_ms", "ttfb_ms"):
        values = sessions[kpi]
        assert values.min() > 0
        # heavy right tail: the p99 is far above the median, further than a normal body would put it
        assert values.quantile(0.99) > 2.5 * values.median(), kpi


# --- determinism -------------------------------------------------------------------------------------------------


def test_same_arguments_same_bytes(tmp_path: Path) -> None:
    args = dict(seed=3, scale="tiny", drift=(DriftSwitch("slow_checkout", dt.date(2026, 1, 6)),))
    simulate(dt.date(2026, 1, 1), dt.date(2026, 1, 10), tmp_path / "a", **args)
    simulate(dt.date(2026, 1, 1), dt.date(2026, 1, 10), tmp_path / "b", **args)
    assert _tree_digest(tmp_path / "a") == _tree_digest(tmp_path / "b")
    simulate(dt.date(2026, 1, 1), dt.date(2026, 1, 10), tmp_path / "c", seed=4, scale="tiny")
    assert _tree_digest(tmp_path / "a") != _tree_digest(tmp_path / "c")


def test_refuses_to_write_over_an_existing_lake_unless_asked(tmp_path: Path) -> None:
    simulate(dt.date(2026, 1, 1), dt.date(2026, 1, 3), tmp_path, scale="tiny")
    with pytest.raises(FileExistsError, match="already holds"):
        simulate(dt.date(2026, 1, 1), dt.date(2026, 1, 3), tmp_path, scale="tiny")
    simulate(dt.date(2026, 1, 2), dt.date(2026, 1, 3), tmp_path, scale="tiny", overwrite=True)
    assert lake.list_partitions(tmp_path, "sessions") == [dt.date(2026, 1, 2), dt.date(2026, 1, 3)]


def test_rejects_an_inverted_range(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="before start"):
        simulate(dt.date(2026, 1, 3), dt.date(2026, 1, 1), tmp_path, scale="tiny")


# --- coherence between tables ------------------------------------------------------------------------------------


def test_orders_match_purchased_impressions_and_session_outcomes(tiny_lake: Path) -> None:
    impressions = _frame(tiny_lake, "impressions")
    orders = _frame(tiny_lake, "orders")
    sessions = _frame(tiny_lake, "sessions").set_index("session_id")
    bought = set(map(tuple, impressions.loc[impressions.purchased, ["session_id", "product_id"]].to_numpy()))
    lines = set(map(tuple, orders[["session_id", "product_id"]].to_numpy()))
    assert bought == lines
    assert len(orders) > 50
    converted = set(sessions.index[sessions.converted])
    assert converted == set(orders.session_id)
    line_total = orders.unit_price_paid * orders.quantity - orders.discount
    assert (line_total >= -1e-9).all(), "a discount larger than its line"
    paid = line_total.groupby(orders.session_id).sum()
    np.testing.assert_allclose(sessions.loc[paid.index, "revenue"], paid.round(2), atol=0.011)
    assert (sessions.loc[~sessions.converted, "revenue"] == 0).all()


def test_ids_refer_to_entities_of_the_same_day(tiny_lake: Path) -> None:
    impressions = _frame(tiny_lake, "impressions")
    catalog = _frame(tiny_lake, "catalog")
    impressions["day"] = impressions.shown_at.dt.date
    catalog["day"] = catalog.snapshot_date
    on_sale = impressions.merge(catalog[["day", "product_id"]], on=["day", "product_id"], how="left", indicator=True)
    assert (on_sale["_merge"] == "both").all(), "a product was shown on a day it was not in the catalog"
    sessions = _frame(tiny_lake, "sessions").dropna(subset=["customer_id"])
    customers = _frame(tiny_lake, "customers")
    sessions["day"] = sessions.started_at.dt.date
    known = sessions.merge(customers.rename(columns={"snapshot_date": "day"}), on=["day", "customer_id"], how="left",
                           indicator=True)
    assert (known["_merge"] == "both").all(), "a session belongs to a customer not yet registered"
    assert sessions.customer_id.notna().all() and _frame(tiny_lake, "sessions").customer_id.isna().any()


def test_events_of_a_session_happen_inside_it(tiny_lake: Path) -> None:
    sessions = _frame(tiny_lake, "sessions").set_index("session_id")
    impressions = _frame(tiny_lake, "impressions")
    orders = _frame(tiny_lake, "orders")
    start = sessions.loc[impressions.session_id, "started_at"].to_numpy()
    assert (impressions.shown_at.to_numpy() >= start).all()
    assert (orders.ordered_at.to_numpy() >= sessions.loc[orders.session_id, "started_at"].to_numpy()).all()


# --- planted truth, seen with simple estimators -------------------------------------------------------------------


def test_truth_file_names_every_model_and_monitor(tiny_lake: Path) -> None:
    truth = load_truth(tiny_lake)
    for section in ("conversion", "ranking", "recommendation", "elasticity", "promotion", "experiments", "drift"):
        assert section in truth, section
    conversion = truth["conversion"]
    assert set(conversion["planted_kpis"]) | set(conversion["noise_kpis"]) == set(KPI_NAMES)
    assert len(conversion["planted_kpis"]) == 6
    for kpi in conversion["planted_kpis"]:
        assert conversion["what_if"][kpi]["0.05"]["delta_conversion_rate"] > 0
        effects = [conversion["what_if"][kpi][f"{p:.2f}"]["delta_conversion_rate"] for p in (0.05, 0.06, 0.07, 0.08)]
        assert effects == sorted(effects), f"{kpi}: a bigger improvement must help more"
    assert 0.015 < conversion["observed_conversion_rate"] < 0.06
    for name in ("products.parquet", "customers.parquet", "segment_relevance.parquet", "promotion_uplift.parquet"):
        assert (tiny_lake / "_truth" / name).is_file()
    json.dumps(truth)  # plain JSON, no numpy scalars


def _conversion_gap(sessions: pd.DataFrame, kpi: str) -> tuple[float, float]:
    """Conversion rate of the fastest quartile minus the slowest, and its standard error."""
    low, high = sessions[kpi].quantile([0.25, 0.75])
    fast = sessions.loc[sessions[kpi] <= low, "converted"]
    slow = sessions.loc[sessions[kpi] >= high, "converted"]
    gap = fast.mean() - slow.mean()
    se = np.sqrt(fast.mean() * (1 - fast.mean()) / len(fast) + slow.mean() * (1 - slow.mean()) / len(slow))
    return gap, se


def test_planted_kpis_move_conversion_and_noise_kpis_do_not(demo_lake: Path) -> None:
    sessions = _frame(demo_lake, "sessions")
    planted_gap, se = _conversion_gap(sessions, "lcp_ms")
    assert planted_gap > 6 * se
    for noise in ("cls", "cdn_hit_ratio", "http_4xx_count"):
        noise_gap, noise_se = _conversion_gap(sessions, noise)
        assert abs(noise_gap) < 3 * noise_se + 1e-9, noise
        assert planted_gap > 3 * abs(noise_gap), noise
    checkout_gap, checkout_se = _conversion_gap(sessions, "checkout_latency_ms")
    assert checkout_gap > 5 * checkout_se


def test_correlated_noise_kpis_are_correlated_with_planted_ones(demo_lake: Path) -> None:
    sessions = _frame(demo_lake, "sessions")
    for noise, planted in load_truth(demo_lake)["conversion"]["correlated_noise_kpis"].items():
        rho = sessions[[noise, planted]].corr(method="spearman").iloc[0, 1]
        assert rho > 0.4, f"{noise} vs {planted}: spearman {rho:.2f}"


def test_click_through_falls_with_position_as_planted(demo_lake: Path) -> None:
    impressions = _frame(demo_lake, "impressions")
    shuffled = impressions[(impressions.ranker == "randomized") & (impressions.position <= 8)]
    ctr = shuffled.groupby("position").clicked.mean()
    slope = np.polyfit(np.log(ctr.index.to_numpy(float)), np.log(ctr.to_numpy()), 1)[0]
    planted = -load_truth(demo_lake)["ranking"]["position_bias"]["exponent"]
    assert slope == pytest.approx(planted, abs=0.12)


def test_clicks_follow_true_affinity(demo_lake: Path) -> None:
    truth_dir = demo_lake / "_truth"
    impressions = _frame(demo_lake, "impressions")
    impressions = impressions[impressions.ranker == "randomized"]
    sessions = _frame(demo_lake, "sessions")[["session_id", "customer_id"]].dropna()
    relevance = pd.read_parquet(truth_dir / "segment_relevance.parquet")
    segments = pd.read_parquet(truth_dir / "customers.parquet", columns=["customer_id", "segment"])
    joined = (impressions.merge(sessions, on="session_id").merge(segments, on="customer_id")
              .merge(relevance, on=["segment", "product_id"]))
    assert len(joined) > 10_000
    top = joined.relevance >= joined.relevance.quantile(0.8)
    bottom = joined.relevance <= joined.relevance.quantile(0.2)
    assert joined[top].clicked.mean() > 2 * joined[bottom].clicked.mean()


def test_purchase_probability_follows_the_category_elasticity(demo_lake: Path) -> None:
    """Poisson fit of purchase on log(price / list price) among items that reached checkout, per category."""
    import statsmodels.api as sm

    impressions = _frame(demo_lake, "impressions")
    catalog = _frame(demo_lake, "catalog")[["product_id", "category", "list_price"]].drop_duplicates("product_id")
    at_checkout = impressions[impressions.checked_out].drop(columns="category").merge(catalog, on="product_id")
    planted = load_truth(demo_lake)["elasticity"]["by_category"]
    errors = []
    for category, rows in at_checkout.groupby("category"):
        x = sm.add_constant(np.log(rows.price_shown / rows.list_price))
        fit = sm.GLM(rows.purchased.astype(float), x, family=sm.families.Poisson()).fit()
        estimate, se = fit.params.iloc[1], fit.bse.iloc[1]
        print(f"{category}: planted {planted[category]}, estimated {estimate:.2f} ± {se:.2f} (n={len(rows)})")
        assert abs(estimate - planted[category]) < max(4 * se, 0.3), f"{category}: {estimate:.2f} ± {se:.2f}"
        errors.append(abs(estimate - planted[category]))
    assert len(errors) == len(planted)
    assert np.mean(errors) < 0.35


def test_naive_demand_fit_is_confounded_by_the_season(demo_lake: Path) -> None:
    """Prices rise with the season as traffic does: the price path itself co-moves with daily traffic."""
    catalog = _frame(demo_lake, "catalog")
    sessions = _frame(demo_lake, "sessions")
    daily_price = (catalog.price / catalog.list_price).groupby(catalog.snapshot_date).mean()
    daily_traffic = sessions.groupby(sessions.started_at.dt.date).size()
    truth = load_truth(demo_lake)["elasticity"]
    assert truth["seasonal_markup"] > 0
    assert daily_price.std() > 0.005 and len(daily_traffic) == len(daily_price)


def test_coupons_lift_visits_where_planted_and_not_for_loyal_customers(demo_lake: Path) -> None:
    offers = _frame(demo_lake, "promotion_offers")
    offers = offers[offers.assignment == "random"]
    sessions = _frame(demo_lake, "sessions").dropna(subset=["customer_id"])
    segments = pd.read_parquet(demo_lake / "_truth" / "customers.parquet", columns=["customer_id", "segment"])
    joined = offers.merge(sessions[["customer_id", "started_at"]], on="customer_id", how="left")
    in_window = (joined.started_at >= joined.offered_at) & (joined.started_at < joined.expires_at)
    visits = in_window.groupby(joined.offer_id).sum().rename("visits")
    per_offer = offers.set_index("offer_id").join(visits).merge(segments, on="customer_id")
    per_offer["coupon"] = per_offer.promotion_id != "none"

    def ratio(segs: list[str]) -> float:
        rows = per_offer[per_offer.segment.isin(segs)]
        return rows[rows.coupon].visits.mean() / rows[~rows.coupon].visits.mean()

    assert ratio(["deal_seeker", "occasional", "newcomer"]) > 1.2
    assert 0.75 < ratio(["loyal"]) < 1.25
    truth = load_truth(demo_lake)["promotion"]
    assert set(truth["subsidy_only_segments"]) == {"loyal", "high_value"}
    uplift = pd.read_parquet(demo_lake / "_truth" / "promotion_uplift.parquet")
    assert len(uplift) == len(_frame(demo_lake, "promotion_offers"))
    assert (uplift.delta_profit_none == 0).all()


def test_acquisition_channels_follow_each_segments_mix(demo_lake: Path) -> None:
    """The CRM's acquisition channel is what makes segments partly visible: drawn from the mix the truth records."""
    from scipy.stats import chisquare

    from feature_repo.contract.schema import ACQUISITION_CHANNELS

    mixes = {s: v["acquisition_mix"] for s, v in load_truth(demo_lake)["segments"].items()}
    customers = _frame(demo_lake, "customers").drop_duplicates("customer_id")
    segments = pd.read_parquet(demo_lake / "_truth" / "customers.parquet", columns=["customer_id", "segment"])
    joined = customers.merge(segments, on="customer_id")
    for segment, rows in joined.groupby("segment"):
        observed = rows["acquisition_channel"].value_counts().reindex(ACQUISITION_CHANNELS, fill_value=0)
        expected = np.array([mixes[segment][c] for c in ACQUISITION_CHANNELS]) * len(rows)
        assert chisquare(observed.to_numpy(), expected).pvalue > 1e-4, (segment, observed.to_dict())
    affiliate = joined[joined["acquisition_channel"] == "affiliate"]
    assert (affiliate["segment"] == "deal_seeker").mean() > 0.6  # coupon sites bring the deal seekers


def test_sample_ratio_mismatch_is_planted_only_where_declared(demo_lake: Path) -> None:
    from scipy.stats import chisquare

    exposures = _frame(demo_lake, "exposures")
    truth = load_truth(demo_lake)["experiments"]
    for exp_id, spec in truth.items():
        counts = exposures[exposures.experiment_id == exp_id].variant.value_counts()
        p_value = chisquare([counts["control"], counts["treatment"]]).pvalue
        if spec["sample_ratio_mismatch"]:
            assert p_value < 1e-4, exp_id
            share = counts["treatment"] / counts.sum()
            assert share == pytest.approx(spec["expected_logged_treatment_share"], abs=0.015)
        else:
            assert p_value > 1e-4, exp_id
    assert truth["aa_homepage"]["expected_relative_lift_in_conversion"] == 0
    assert truth["exp_checkout_redesign"]["expected_relative_lift_in_conversion"] > 0.03


def test_drift_switches_change_the_world_from_their_date(tmp_path: Path) -> None:
    switch_day = dt.date(2026, 1, 8)
    simulate(dt.date(2026, 1, 1), dt.date(2026, 1, 14), tmp_path, scale="tiny", seed=5,
             drift=(DriftSwitch("slow_checkout", switch_day), DriftSwitch("mobile_shift", switch_day)))
    sessions = _frame(tmp_path, "sessions")
    after = sessions.started_at.dt.date >= switch_day
    ratio = sessions.loc[after, "checkout_latency_ms"].median() / sessions.loc[~after, "checkout_latency_ms"].median()
    assert 1.5 < ratio < 2.1
    mobile = sessions.device == "mobile"
    assert mobile[after].mean() > mobile[~after].mean() + 0.12
    drift = load_truth(tmp_path)["drift"]
    assert {d["kind"] for d in drift} == {"slow_checkout", "mobile_shift"}
    assert all(d["start"] == "2026-01-08" for d in drift)


def test_cli_writes_a_shop(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from storefront.cli import main

    result = CliRunner().invoke(main, ["simulate", "--start", "2026-01-01", "--end", "2026-01-02", "--scale", "tiny",
                                       "--out", str(tmp_path), "--drift", "mobile_shift@2026-01-02"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output[result.output.index("{"):])["rows"]["sessions"] > 0
    bad = CliRunner().invoke(main, ["simulate", "--start", "2026-01-01", "--end", "2026-01-02", "--out",
                                    str(tmp_path / "x"), "--drift", "faster@2026-01-01"])
    assert bad.exit_code == 2 and "slow_checkout@YYYY-MM-DD" in bad.output


# --- campaign plans (issue 18) ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def file_campaign_lake(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The small shop over 18 weeks with the "file" campaign plan: most of the customer file, every week."""
    out = tmp_path_factory.mktemp("file-campaigns") / "raw"
    simulate(dt.date(2026, 1, 1), dt.date(2026, 5, 6), out, seed=3, scale="tiny", campaigns="file")
    return out


def test_file_campaigns_reach_most_customers_weekly_with_a_randomized_half(file_campaign_lake: Path) -> None:
    offers = _frame(file_campaign_lake, "promotion_offers")
    customers = _frame(file_campaign_lake, "customers")
    per_campaign = offers.groupby(offers.offered_at.dt.date)
    days = sorted(per_campaign.groups)
    assert len(days) == 17 and {(b - a).days for a, b in itertools.pairwise(days)} == {7}
    for day, rows in per_campaign:
        registered = customers[(customers.snapshot_date == day) & (customers.signup_date <= day)]
        # coupons last exactly one week: every registered customer is eligible for every campaign
        assert len(rows) == int(len(registered) * 0.8), day
    assert (offers.expires_at - offers.offered_at == pd.Timedelta(days=7)).all()
    randomized = offers[offers.assignment == "random"]
    assert len(randomized) / len(offers) == pytest.approx(0.5, abs=0.02)
    shares = randomized.promotion_id.value_counts(normalize=True)
    assert set(shares.index) == {"none", "pct5", "pct10", "pct20", "free_shipping"} and shares.max() < 0.23
    truth = load_truth(file_campaign_lake)["promotion"]
    assert truth["campaign_plan"] == "file" and truth["campaign_reach"] == 0.8


def test_file_campaign_coupons_add_units_only_where_planted(file_campaign_lake: Path) -> None:
    orders = _frame(file_campaign_lake, "orders").dropna(subset=["customer_id"])
    segments = pd.read_parquet(file_campaign_lake / "_truth" / "customers.parquet", columns=["customer_id", "segment"])
    lines = orders.merge(segments, on="customer_id")
    lines["coupon"] = lines.promotion_id.isin(["pct10", "pct20"])

    def extra_units(segs: list[str]) -> float:
        rows = lines[lines.segment.isin(segs)]
        return rows[rows.coupon].quantity.mean() - rows[~rows.coupon & rows.promotion_id.isna()].quantity.mean()

    assert extra_units(["deal_seeker", "occasional"]) > 0.5
    assert abs(extra_units(["loyal", "high_value"])) < 0.15


def test_the_truth_records_realized_outcomes_and_their_noise(file_campaign_lake: Path) -> None:
    truth = load_truth(file_campaign_lake)["promotion"]
    uplift = pd.read_parquet(file_campaign_lake / "_truth" / "promotion_uplift.parquet")
    closed = uplift[uplift.outcome_complete]
    assert len(closed) and closed.realized_profit_10w.notna().all()
    assert uplift.loc[~uplift.outcome_complete, "realized_profit_10w"].isna().all()
    counted = truth["randomized_offers_with_complete_windows"]
    assert sum(sum(v.values()) for v in counted.values()) == int((closed.assignment == "random").sum())
    # the realized margin of an offer's 10 weeks is the customer's order margin in them (contract tables)
    orders = _frame(file_campaign_lake, "orders")
    catalog = _frame(file_campaign_lake, "catalog")[["snapshot_date", "product_id", "unit_cost"]]
    orders["snapshot_date"] = orders.ordered_at.dt.date
    lines = orders.merge(catalog, on=["snapshot_date", "product_id"])
    lines["margin"] = lines.unit_price_paid * lines.quantity - lines.discount - lines.unit_cost * lines.quantity
    offer = closed.iloc[len(closed) // 2]
    start = pd.Timestamp(offer.offered_at).normalize()
    mine = lines[(lines.customer_id == offer.customer_id) & (lines.ordered_at >= start)
                 & (lines.ordered_at < start + pd.Timedelta(days=70))]
    assert offer.realized_profit_10w == pytest.approx(mine.margin.sum(), abs=0.01)
    assert 0.0 < truth["coupon_day_share"]["loyal"] < 1.0
