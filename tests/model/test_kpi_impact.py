"""KPI impact analysis: exact answers on a known logistic model, and the planted truth of three shops recovered.

Synthetic tests score a logistic model whose what-if has a closed form, so the analysis must reproduce it to
rounding. The demo tests train the nightly configuration (``config/models.yaml``) on the demo shop and check what
the run logs. The truth tests fit the nightly's model (``fit_conversion``: the two-stage funnel, its search,
calibration and 8 refits on bootstrap resamples of the training days) on the demo shops of lake seeds 7, 8 and 9,
analyse *every* simulated session (the population ``truth.json`` averages over) and compare with the planted
effects, using the interval that includes the refitted models' spread (the session-only interval holds the model
fixed and is far too narrow to be an interval for the true effect).

Measured 2026-12-07 (estimate / planted, 5% what-if on all sessions): seed 7 LCP 0.97, INP 0.77, checkout 0.96,
search 0.92, JS errors 1.05, 5xx 0.89; seed 8 0.90 / 1.05 / 0.76 / 1.34 / 1.01 / 1.01; seed 9 0.97 / 0.73 / 1.12 /
0.83 / 0.74 / 0.94. The planted six are exactly the top six on all three shops, every one is attributed to the
checkout stage where the simulator plants it, and every planted effect but one lies in its interval: seed 9's
JavaScript errors (``KNOWN_MISSES``, a strict xfail). Resampling sessions instead of days left seed 8's search
latency outside too (its interval 52.7-77.5 per 100k against 48.5): the day's backend load moves the latencies of
all of a day's sessions together.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from conversion_testdata import write_conversion_training_set
from pydantic import ValidationError

from config.models import KpiImpactConfig, ModelConfig, ModelsConfig, read_models_config
from feature_repo.contract.schema import KPI_NAMES
from simulator.truth import load_truth
from simulator.world import PLANTED_KPI_EFFECTS
from training.conversion.kpi_impact import KpiImpactResult, analyze_kpi_impact, improved_values
from training.conversion.kpi_impact_report import write_report
from training.conversion.model import (
    MODEL_NAME,
    TrainingResult,
    apply_platt,
    at_training_level,
    fit_conversion,
    kpi_impact_analysis,
    read_training_set,
    train_conversion,
)
from training.conversion.pyfunc import ConversionMLP
from training.shared import registry

RUN_DATE = dt.date(2026, 2, 14)  # last day of the demo lake
LABEL = "converted"


# --- a known model ---------------------------------------------------------------------------------------------------
def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def _logit(frame: pd.DataFrame) -> np.ndarray:
    """log-linear in LCP, linear in the error count, linear in the CDN hit ratio; FCP is ignored (noise)."""
    lcp = pd.to_numeric(frame["lcp_ms"]).to_numpy(float)
    errors = pd.to_numeric(frame["js_error_count"]).to_numpy(float)
    cdn = pd.to_numeric(frame["cdn_hit_ratio"]).to_numpy(float)
    return -3.0 - 0.9 * np.log(lcp / 2500.0) - 0.25 * errors + 0.8 * (cdn - 0.9)


def logistic(frame: pd.DataFrame) -> np.ndarray:
    return _sigmoid(_logit(frame))


def sessions(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    lcp = 2500.0 * np.exp(0.4 * rng.standard_normal(n))
    frame = pd.DataFrame(
        {
            "session_id": [f"S{i}" for i in range(n)],
            "lcp_ms": lcp,
            "fcp_ms": 0.6 * lcp * np.exp(0.1 * rng.standard_normal(n)),  # correlated with LCP, no effect
            "js_error_count": rng.poisson(1.2, n).astype("int64"),
            "cdn_hit_ratio": rng.beta(18.0, 2.0, n),
        }
    )
    frame[LABEL] = rng.random(n) < logistic(frame)
    return frame


SYNTHETIC_KPIS = ("lcp_ms", "fcp_ms", "js_error_count", "cdn_hit_ratio")


@pytest.fixture(scope="module")
def synthetic() -> pd.DataFrame:
    return sessions(6000, seed=1)


@pytest.fixture(scope="module")
def synthetic_result(synthetic: pd.DataFrame) -> KpiImpactResult:
    return analyze_kpi_impact(logistic, synthetic, SYNTHETIC_KPIS, label=LABEL, n_bootstrap=200, seed=3)


def _closed_form(frame: pd.DataFrame, kpi: str, x: float) -> np.ndarray:
    """Per-session change of P(convert) of :func:`logistic`, written out by hand."""
    z = _logit(frame)
    if kpi == "lcp_ms":
        return _sigmoid(z - 0.9 * np.log(1.0 - x)) - _sigmoid(z)
    if kpi == "cdn_hit_ratio":
        cdn = frame[kpi].to_numpy()
        return _sigmoid(z + 0.8 * (np.minimum(cdn * (1.0 + x), 1.0) - cdn)) - _sigmoid(z)
    if kpi == "js_error_count":  # linear in the count's logit: interpolating on the logit scale is exact
        return _sigmoid(z + 0.25 * x * frame[kpi].to_numpy(float)) - _sigmoid(z)
    return np.zeros(len(frame))


# --- synthetic: exact answers --------------------------------------------------------------------------------------
@pytest.mark.parametrize("kpi", SYNTHETIC_KPIS)
@pytest.mark.parametrize("population", ["all", "non_converted"])
def test_what_if_equals_the_closed_form_of_a_logistic_model(
    synthetic: pd.DataFrame, synthetic_result: KpiImpactResult, kpi: str, population: str
) -> None:
    rows = synthetic if population == "all" else synthetic[~synthetic[LABEL]]
    for x in (0.05, 0.06, 0.07, 0.08):
        row = synthetic_result.what_if_for(kpi, x, population)
        expected = _closed_form(rows, kpi, x).mean()
        assert row.delta_conversion_rate == pytest.approx(expected, rel=1e-9, abs=1e-15), (kpi, x)
        assert row.delta_per_100k == pytest.approx(1e5 * expected, rel=1e-9, abs=1e-10)
        assert row.sessions == len(rows)
        assert row.ci_low <= row.delta_conversion_rate <= row.ci_high
        assert row.model_ci_low is None  # no refits given
    if kpi == "fcp_ms":  # the model ignores it: exactly nothing, with certainty
        row = synthetic_result.what_if_for(kpi, population=population)
        assert (row.delta_conversion_rate, row.ci_low, row.ci_high) == (0.0, 0.0, 0.0)


def _whole_count_model(frame: pd.DataFrame) -> np.ndarray:
    """Agrees with :func:`logistic` at every whole error count, linear in log1p(count) in between: what a network
    fed log1p(count) can learn from data that only ever holds whole counts."""
    whole = np.arange(0, 100)
    c = frame["js_error_count"].to_numpy(float)
    return _sigmoid(_logit(frame) + 0.25 * c + np.interp(np.log1p(c), np.log1p(whole), -0.25 * whole))


def test_an_improved_count_is_scored_between_whole_counts(synthetic: pd.DataFrame) -> None:
    """A 5% lower error count is worth what a 5% lower error rate is worth, whatever the model does between counts."""
    z, c = _logit(synthetic), synthetic["js_error_count"].to_numpy(float)
    rate_effect = (_sigmoid(z + 0.25 * 0.05 * c) - _sigmoid(z)).mean()  # the simulator's definition
    np.testing.assert_allclose(_whole_count_model(synthetic), logistic(synthetic))  # same model on the data
    kwargs = {"label": LABEL, "improvements": (0.05,), "n_bootstrap": 50, "n_repeats": 0}
    interpolated = analyze_kpi_impact(_whole_count_model, synthetic, ("js_error_count",), **kwargs)
    read_off = analyze_kpi_impact(_whole_count_model, synthetic, ("js_error_count",), counts=(), **kwargs)
    assert interpolated.what_if_for("js_error_count").delta_conversion_rate == pytest.approx(rate_effect, rel=1e-9)
    assert read_off.what_if_for("js_error_count").delta_conversion_rate < 0.85 * rate_effect


def test_ranking_is_by_the_5pct_gain_over_all_sessions(synthetic: pd.DataFrame, synthetic_result: KpiImpactResult):
    gains = {k: _closed_form(synthetic, k, 0.05).mean() for k in SYNTHETIC_KPIS}
    assert synthetic_result.ranking == tuple(sorted(SYNTHETIC_KPIS, key=lambda k: -gains[k]))
    assert synthetic_result.ranking[0] == "lcp_ms" and synthetic_result.ranking[-1] == "fcp_ms"
    table = synthetic_result.ranking_table()
    assert list(table["kpi"]) == list(synthetic_result.ranking)
    assert table["delta_per_100k"].is_monotonic_decreasing


def test_improvements_scale_and_respect_bounds() -> None:
    values = pd.Series([100.0, None, 0.0])
    np.testing.assert_allclose(improved_values(values, "decrease", 0.05), [95.0, np.nan, 0.0])
    np.testing.assert_allclose(improved_values(pd.Series([0.5, 0.97, 1.0]), "increase", 0.05, 1.0), [0.525, 1.0, 1.0])
    with pytest.raises(ValueError, match="direction"):
        improved_values(values, "sideways", 0.05)  # type: ignore[arg-type]


def test_permutation_importance_sees_what_the_model_uses(
    synthetic: pd.DataFrame, synthetic_result: KpiImpactResult
) -> None:
    lcp, fcp = synthetic_result.importance_for("lcp_ms"), synthetic_result.importance_for("fcp_ms")
    assert lcp.roc_auc_drop > 3 * lcp.roc_auc_drop_std > 0
    assert lcp.log_loss_increase > 0
    assert (fcp.roc_auc_drop, fcp.log_loss_increase) == (0.0, 0.0)  # shuffling an unused column changes nothing
    assert synthetic_result.importance_repeats == 5
    # on a subsample, the unshuffled baseline is scored on the same sessions (exactly 0 again, not a sampling gap)
    sub = analyze_kpi_impact(
        logistic, synthetic, ("lcp_ms", "fcp_ms"), label=LABEL, improvements=(0.05,), importance_max_rows=2000
    )
    assert sub.importance_rows == 2000 and sub.importance_for("fcp_ms").roc_auc_drop == 0.0


def test_session_bootstrap_interval_covers_the_population_effect() -> None:
    """Over 200 holdouts of 1500 sessions from one population, the 95% interval holds the population's effect."""
    population = sessions(400_000, seed=99)
    effect = _closed_form(population, "lcp_ms", 0.05).mean()
    covered, widths = [], []
    for rep in range(200):
        sample = population.sample(1500, random_state=rep).reset_index(drop=True)
        result = analyze_kpi_impact(
            logistic, sample, ("lcp_ms",), label=LABEL, improvements=(0.05,), n_bootstrap=200, seed=rep, n_repeats=0
        )
        row = result.what_if_for("lcp_ms")
        covered.append(row.ci_low <= effect <= row.ci_high)
        widths.append(row.ci_high - row.ci_low)
    assert 0.89 <= np.mean(covered) <= 0.99
    assert np.mean(widths) < 0.5 * effect  # informative, not a trivially wide interval


def test_model_interval_adds_the_spread_between_refitted_models(synthetic: pd.DataFrame) -> None:
    def refit(scale: float):
        return lambda frame: _sigmoid(-3.0 - 0.9 * scale * np.log(frame["lcp_ms"].to_numpy() / 2500.0))

    refits = [refit(s) for s in np.linspace(0.8, 1.2, 8)]
    result = analyze_kpi_impact(
        logistic, synthetic, ("lcp_ms", "fcp_ms"), label=LABEL, improvements=(0.05,), n_repeats=0, refits=refits
    )
    lcp = result.what_if_for("lcp_ms")
    assert lcp.model_ci_low < lcp.ci_low <= lcp.delta_conversion_rate <= lcp.ci_high < lcp.model_ci_high
    assert lcp.interval == (lcp.model_ci_low, lcp.model_ci_high)
    # +-20% on the coefficient: the interval spans roughly that share of the effect on each side
    assert 0.15 < (lcp.model_ci_high - lcp.delta_conversion_rate) / lcp.delta_conversion_rate < 0.6
    fcp = result.what_if_for("fcp_ms")
    assert fcp.model_ci_low == pytest.approx(0.0, abs=1e-12) and fcp.model_ci_high == pytest.approx(0.0, abs=1e-12)
    single = analyze_kpi_impact(
        logistic, synthetic, ("lcp_ms",), label=LABEL, improvements=(0.05,), n_repeats=0, refits=refits[:1]
    )
    assert single.what_if_for("lcp_ms").model_ci_low is None  # one refit has no spread


def test_flip_counts_depend_on_the_threshold(synthetic: pd.DataFrame, synthetic_result: KpiImpactResult) -> None:
    flips = {f.threshold_name: f.flips for f in synthetic_result.flips if f.kpi == "lcp_ms"}
    assert flips["top 10%"] > 2 * flips["top 1%"] > 0
    assert flips["0.5"] == 0 and synthetic_result.p.max() < 0.5  # the threshold accuracy uses: nothing ever flips
    assert all(f.flips == 0 for f in synthetic_result.flips if f.kpi == "fcp_ms")
    p0 = logistic(synthetic)
    p1 = p0 + _closed_form(synthetic, "lcp_ms", 0.05)
    t = synthetic_result.threshold
    assert t == pytest.approx(np.quantile(p0, 1 - synthetic[LABEL].mean()))  # predicts as many buyers as there are
    assert synthetic_result.flips_for("lcp_ms").flips == int(((p0 < t) & (p1 >= t)).sum())
    fixed = analyze_kpi_impact(logistic, synthetic, ("lcp_ms",), label=LABEL, n_repeats=0, threshold=0.05)
    assert fixed.threshold == 0.05 and fixed.threshold_rule == "given by the caller"
    expected_value = fixed.what_if_for("lcp_ms").delta_conversion_rate  # the expected value has no threshold
    assert expected_value == synthetic_result.what_if_for("lcp_ms").delta_conversion_rate
    assert fixed.flips_for("lcp_ms").flips != synthetic_result.flips_for("lcp_ms").flips


def test_report_files_exist_and_are_readable(synthetic_result: KpiImpactResult, tmp_path: Path) -> None:
    paths = write_report(synthetic_result, tmp_path / "report", "KPI impact (synthetic)")
    assert set(paths) == {
        "markdown",
        "html",
        "json",
        "importance_plot",
        "what_if_plot",
        "flips_plot",
        "reliability_plot",
    }
    for name, path in paths.items():
        assert path.parent == tmp_path / "report" and path.stat().st_size > 1000, name
        if path.suffix == ".png":
            assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size < 200_000, name
    markdown = paths["markdown"].read_text()
    assert "## Ranking" in markdown and "flip count" in markdown and "ECE" in markdown
    assert all(k in markdown for k in SYNTHETIC_KPIS)
    assert "does not depend on a threshold" in markdown
    page = paths["html"].read_text()
    assert page.count("data:image/png;base64,") == 4 and "<table" in page
    data = json.loads(paths["json"].read_text(), parse_constant=lambda c: pytest.fail(f"{c} in impact.json"))
    assert data["ranking"] == list(synthetic_result.ranking)
    assert len(data["what_if"]) == len(SYNTHETIC_KPIS) * 4 * 2  # KPIs x improvements x populations


def _two_stage(frame: pd.DataFrame) -> np.ndarray:
    """A known funnel: LCP acts on the basket only, the error count on the checkout only; (n, 2) stage probabilities."""
    lcp = pd.to_numeric(frame["lcp_ms"]).to_numpy(float)
    errors = pd.to_numeric(frame["js_error_count"]).to_numpy(float)
    return np.column_stack([_sigmoid(-0.5 - 0.9 * np.log(lcp / 2500.0)), _sigmoid(-2.0 - 0.3 * errors)])


def test_a_funnel_change_is_split_between_the_stages_that_cause_it(synthetic: pd.DataFrame, tmp_path: Path) -> None:
    """Each KPI of a known two-stage model is credited to its own stage, exactly, and the parts add up."""
    result = analyze_kpi_impact(
        _two_stage, synthetic, ("lcp_ms", "js_error_count", "fcp_ms"), label=LABEL, stages=("basket", "checkout"),
        improvements=(0.05, 0.08), n_bootstrap=50, n_repeats=0, counts=(),
    )
    before = _two_stage(synthetic)
    for kpi, stage in (("lcp_ms", "basket"), ("js_error_count", "checkout")):
        row = result.what_if_for(kpi, 0.08)
        after = _two_stage(synthetic.assign(**{kpi: improved_values(synthetic[kpi], "decrease", 0.08)}))
        expected = (after.prod(axis=1) - before.prod(axis=1)).mean()
        assert row.delta_conversion_rate == pytest.approx(expected, rel=1e-9)
        assert row.main_stage == stage and row.stage_delta(stage) == pytest.approx(expected, rel=1e-9)
        other = next(p for p in row.stages if p.stage != stage)
        assert other.delta_conversion_rate == 0.0 and (other.ci_low, other.ci_high) == (0.0, 0.0)
        assert row.stage(stage).ci_low <= row.stage_delta(stage) <= row.stage(stage).ci_high
    assert all(p.delta_conversion_rate == 0.0 for p in result.what_if_for("fcp_ms").stages)
    table = result.ranking_table()
    assert {"basket_per_100k", "checkout_per_100k", "main_stage"} <= set(table.columns)
    paths = write_report(result, tmp_path / "report", "KPI impact (two stages)")
    assert paths["stages_plot"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    markdown = paths["markdown"].read_text()
    assert "By funnel stage, all holdout sessions" in markdown and "checkout stage" in markdown


def test_bad_inputs_are_refused(synthetic: pd.DataFrame) -> None:
    with pytest.raises(KeyError, match="not analysed"):
        analyze_kpi_impact(logistic, synthetic, ("lcp_ms",), label=LABEL, improve={"ttfb_ms": "decrease"})
    with pytest.raises(ValueError, match="one class"):
        analyze_kpi_impact(logistic, synthetic.assign(converted=False), ("lcp_ms",), label=LABEL)
    with pytest.raises(ValueError, match="rank_at"):
        analyze_kpi_impact(logistic, synthetic, ("lcp_ms",), label=LABEL, improvements=(0.06,))
    with pytest.raises(ValueError, match="returned"):
        analyze_kpi_impact(lambda f: logistic(f)[:-1], synthetic, ("lcp_ms",), label=LABEL)
    with pytest.raises(KeyError, match="lacks"):
        analyze_kpi_impact(logistic, synthetic, ("lcp_ms", "inp_ms"), label=LABEL)


def test_platt_scaling_is_folded_into_the_output_layer() -> None:
    torch.manual_seed(0)
    module = ConversionMLP(6, [8], 0.0).eval()
    x = torch.randn(50, 6)
    calibrated = apply_platt(module, 1.3, -0.2)
    with torch.no_grad():
        torch.testing.assert_close(calibrated(x), 1.3 * module(x) - 0.2)
        assert not torch.equal(calibrated(x), module(x))  # a copy: the trained module is left as it was


def test_models_config_kpi_impact_is_optional() -> None:
    versioned = read_models_config()
    conversion = versioned.model("conversion").model_dump()
    bare = ModelConfig.model_validate({k: v for k, v in conversion.items() if k not in ("kpi_impact", "calibration")})
    assert bare.kpi_impact == KpiImpactConfig() and not bare.kpi_impact.enabled and bare.calibration == "none"
    assert versioned.model("conversion").kpi_impact.enabled
    with pytest.raises(ValidationError, match="one refit"):
        KpiImpactConfig(enabled=True, model_refits=1)


# --- the demo shop ---------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def nightly_config() -> ModelsConfig:
    return read_models_config()


@pytest.fixture(scope="module")
def training_set(demo_lake: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_conversion_training_set(demo_lake, tmp_path_factory.mktemp("sets") / "conversion.parquet")


@pytest.fixture(scope="module")
def trained(var_root: Path, training_set: Path, nightly_config: ModelsConfig) -> TrainingResult:
    return train_conversion(training_set, RUN_DATE, models_config=nightly_config, device="cpu")


@pytest.fixture(scope="module")
def logged_impact(trained: TrainingResult) -> dict:
    """The analysis the training run logged: the served model on the nightly holdout."""
    return json.loads(registry.download_artifact(f"runs:/{trained.run_id}/kpi_impact/impact.json").read_text())


@pytest.fixture(scope="module")
def truth(demo_lake: Path) -> dict:
    return load_truth(demo_lake)["conversion"]


def test_training_logs_the_kpi_impact_report(trained: TrainingResult, logged_impact: dict) -> None:
    client = registry.configure_mlflow()
    run = client.get_run(trained.run_id)
    logged = {f.path for f in client.list_artifacts(trained.run_id, "kpi_impact")}
    assert logged == {
        f"kpi_impact/{name}"
        for name in (
            "report.md",
            "report.html",
            "impact.json",
            "importance.png",
            "what_if.png",
            "flips.png",
            "reliability.png",
            "stages.png",
        )
    }
    impact = logged_impact
    assert [run.data.tags[f"kpi_impact.top_{i}"] for i in (1, 2, 3)] == impact["ranking"][:3]
    assert impact["sessions"] == int(run.data.params["rows_holdout"]) and impact["n_refits"] == 8
    for kpi in KPI_NAMES:
        row = next(
            r for r in impact["what_if"] if r["kpi"] == kpi and r["improvement"] == 0.05 and r["population"] == "all"
        )
        assert run.data.metrics[f"what_if_5pct.{kpi}"] == pytest.approx(row["delta_conversion_rate"])
        parts = [run.data.metrics[f"what_if_5pct.{kpi}.{stage}"] for stage in impact["stages"]]
        assert sum(parts) == pytest.approx(row["delta_conversion_rate"], rel=1e-6, abs=1e-12)  # split by stage
    assert impact["stages"] == ["basket", "checkout"] and run.data.params["stages"] == "basket,checkout"
    assert run.data.params["calibration"] == "platt" and float(run.data.params["calibration.basket.slope"]) > 0
    assert run.data.metrics["ece"] < 0.01 and "uncalibrated_ece" in run.data.metrics
    assert run.data.metrics["kpi_impact_seconds"] > 0  # its speed is a benchmark figure, not a test


def test_the_cli_analyses_a_logged_model_as_training_did(
    trained: TrainingResult, logged_impact: dict, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``python -m training.conversion.kpi_impact_cli`` on the registered version and its logged holdout: the
    served pyfunc's what-if is the one training logged (the same model on the same sessions)."""
    from training.conversion import kpi_impact_cli

    kpi_impact_cli.main(
        [trained.model_uri, str(trained.holdout_path), str(tmp_path / "cli"), "--n-bootstrap", "20", "--seed", "1"]
    )
    printed = capsys.readouterr().out
    impact = json.loads((tmp_path / "cli" / "impact.json").read_text())
    assert (tmp_path / "cli" / "report.html").is_file() and str(tmp_path / "cli" / "report.html") in printed
    assert impact["sessions"] == logged_impact["sessions"]
    assert impact["ranking"] == logged_impact["ranking"]

    def five_pct(record: dict) -> dict[str, float]:
        return {
            r["kpi"]: r["delta_conversion_rate"]
            for r in record["what_if"]
            if r["improvement"] == 0.05 and r["population"] == "all"
        }

    assert five_pct(impact) == pytest.approx(five_pct(logged_impact), rel=1e-4, abs=1e-9)


# --- the planted truth, on three simulated shops ----------------------------------------------------------------------
TRUTH_SEEDS = (7, 8, 9)


@dataclass(frozen=True)
class Shop:
    """One simulated shop, the nightly's model fitted on it, and its what-if over every simulated session."""

    seed: int
    truth: dict
    impact: KpiImpactResult


@pytest.fixture(scope="module", params=TRUTH_SEEDS, ids=lambda seed: f"seed{seed}")
def shop(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, nightly_config: ModelsConfig
) -> Shop:
    """The nightly's fitting (``fit_conversion``: split, search, calibration, refits) on the shop of lake seed
    ``seed``, analysed on *every* simulated session (the population ``truth.json`` averages over) at 5%."""
    seed = request.param
    if seed == 7:
        lake = request.getfixturevalue("demo_lake")
    else:
        from simulator.shop import simulate

        lake = tmp_path_factory.mktemp(f"shop{seed}") / "raw"
        simulate(dt.date(2026, 1, 1), RUN_DATE, lake, seed=seed, scale="demo")
    config = nightly_config.model(MODEL_NAME)
    frame = read_training_set(write_conversion_training_set(lake, tmp_path_factory.mktemp("sets") / "set.parquet"))
    fitted = fit_conversion(frame, RUN_DATE, config, torch.device("cpu"))
    assert fitted.funnel
    refits = fitted.refits(config.kpi_impact.model_refits, torch.device("cpu"))
    # the population is six weeks of sessions: the model at its training days' level, not the served level of the
    # last days (``at_training_level``; the served checkout stage differs by its intercept alone)
    impact = kpi_impact_analysis(
        at_training_level(fitted.module), fitted.preprocessor, frame, [at_training_level(m) for m in refits],
        config.kpi_impact, int(fitted.chosen["seed"]), improvements=(0.05,), n_repeats=0,
    )
    return Shop(seed, load_truth(lake)["conversion"], impact)


def test_the_planted_kpis_are_exactly_the_top_of_the_ranking(shop: Shop) -> None:
    planted = set(shop.truth["planted_kpis"])
    assert planted == set(PLANTED_KPI_EFFECTS)
    assert set(shop.impact.ranking[: len(planted)]) == planted, shop.impact.ranking[:8]


def test_every_planted_kpi_is_attributable_and_detected(shop: Shop) -> None:
    """The shop gives every planted KPI variance of its own (R² < 0.9 on the others) and each is found."""
    for kpi in shop.truth["planted_kpis"]:
        assert shop.impact.collinearity_r2[kpi] < 0.9, (kpi, shop.impact.collinearity_r2[kpi])
        assert shop.impact.what_if_for(kpi).model_ci_low > 0, kpi


# (lake seed, KPI) -> why its planted effect lies outside the interval; a strict xfail each, in the README's gaps.
KNOWN_MISSES = {
    (9, "js_error_count"): (
        "lake seed 9's sessions carry less of the JavaScript-error effect than planted: the model estimates 23.4 per "
        "100k (interval 20.7-26.1) against 31.8. A plain logistic regression of conversion among basket sessions on "
        "the planted KPI forms finds its error coefficient a third below seed 8's on the same days (-0.16 +- 0.02 "
        "against -0.24 +- 0.02, 2.9 standard errors apart; the other KPIs' differ by less than two)"
    ),
}


@pytest.mark.parametrize("kpi", list(PLANTED_KPI_EFFECTS))
@pytest.mark.parametrize("population", ["all", "non_converted"])
def test_every_planted_effect_lies_in_its_interval(
    shop: Shop, population: str, kpi: str, request: pytest.FixtureRequest
) -> None:
    if (shop.seed, kpi) in KNOWN_MISSES:
        request.applymarker(pytest.mark.xfail(reason=KNOWN_MISSES[shop.seed, kpi], raises=AssertionError, strict=True))
    key = "delta_conversion_rate" if population == "all" else "delta_conversion_rate_non_converted"
    planted = shop.truth["what_if"][kpi]["0.05"][key]
    row = shop.impact.what_if_for(kpi, 0.05, population)
    assert row.model_ci_low <= planted <= row.model_ci_high, (
        f"seed {shop.seed} {kpi}: interval {1e5 * row.model_ci_low:.1f}-{1e5 * row.model_ci_high:.1f} per 100k, "
        f"estimate {1e5 * row.delta_conversion_rate:.1f}, planted {1e5 * planted:.1f}"
    )


def test_each_planted_kpi_is_attributed_to_the_stage_it_acts_on(shop: Shop) -> None:
    assert shop.impact.stages == ("basket", "checkout")
    for kpi, planted in shop.truth["planted_kpis"].items():
        row = shop.impact.what_if_for(kpi)
        assert row.main_stage == planted["stage"], (kpi, [(p.stage, 1e5 * p.delta_conversion_rate) for p in row.stages])
        # the two parts add up to the change
        assert sum(p.delta_conversion_rate for p in row.stages) == pytest.approx(row.delta_conversion_rate, rel=1e-9)


def test_the_most_important_kpis_on_the_holdout_are_planted(logged_impact: dict, truth: dict) -> None:
    """Permutation importance credits the count KPIs by how much they separate sessions, not by a 5% change."""
    by_auc_drop = sorted(logged_impact["importance"], key=lambda r: -r["roc_auc_drop"])
    assert {r["kpi"] for r in by_auc_drop[:4]} <= set(truth["planted_kpis"]), [r["kpi"] for r in by_auc_drop[:6]]


