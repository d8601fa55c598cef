"""The drift monitor on simulated shops: silent without drift, loud with the planted drift, recorded everywhere.

Two tiny shops with the same seed; the second switches on a slower checkout and a mobile-heavy traffic mix from
``SWITCH``. The days before the switch are identical in both, so the reference is the first week of either.
The thresholds are given explicitly (not read from ``config/models.yaml``) so that these tests check the
monitor, not today's tuning of the config.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from config.models import DriftConfig
from config.settings import get_settings
from feature_repo.contract import lake
from feature_repo.contract.schema import KPI_NAMES, TABLES
from monitoring.drift.alerts import route_drift_alert
from monitoring.drift.report import (
    CATEGORICAL_STATTEST,
    COLUMN_KINDS,
    DEFAULT_COLUMNS,
    NUMERICAL_STATTEST,
    DriftResult,
    drift_report,
    drift_summary_line,
    log_drift_to_mlflow,
)
from simulator.shop import DriftSwitch, simulate

START, SWITCH, END = dt.date(2026, 1, 1), dt.date(2026, 1, 8), dt.date(2026, 1, 14)
SEED = 5
CONFIG = DriftConfig(stattest_threshold=0.1, drift_share_alert=0.3, reference_sample_rows=20_000)


def _sessions(raw_root: Path) -> pd.DataFrame:
    """Raw sessions shaped like the ``session_kpis`` features (is_anonymous derived as the Spark build does)."""
    sessions = lake.read_table(raw_root, TABLES["sessions"]).to_pandas()
    return sessions.assign(
        day=sessions.started_at.dt.date,
        is_anonymous=sessions.customer_id.isna().astype("int64"),
        customer_id=sessions.customer_id.fillna("anonymous"),
    )


@pytest.fixture(scope="module")
def frames(tmp_path_factory: pytest.TempPathFactory) -> dict[str, pd.DataFrame]:
    root = tmp_path_factory.mktemp("drift_lakes")
    simulate(START, END, root / "steady", seed=SEED, scale="tiny")
    simulate(
        START,
        END,
        root / "drifting",
        seed=SEED,
        scale="tiny",
        drift=(DriftSwitch("slow_checkout", SWITCH), DriftSwitch("mobile_shift", SWITCH)),
    )
    steady, drifting = _sessions(root / "steady"), _sessions(root / "drifting")
    return {
        "reference": steady[steady.day < SWITCH],
        "steady": steady[steady.day >= SWITCH],
        "drifting": drifting[drifting.day >= SWITCH],
    }


@pytest.fixture(scope="module")
def reports(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("drift_reports")


@pytest.fixture(scope="module")
def steady_result(frames: dict[str, pd.DataFrame], reports: Path) -> DriftResult:
    return drift_report(
        frames["reference"],
        frames["steady"],
        day=END,
        model="conversion",
        config=CONFIG,
        out_dir=reports / "steady" / "conversion" / f"dt={END}",
    )


@pytest.fixture(scope="module")
def drift_result(frames: dict[str, pd.DataFrame], reports: Path) -> DriftResult:
    return drift_report(
        frames["reference"],
        frames["drifting"],
        day=END,
        model="conversion",
        config=CONFIG,
        out_dir=reports / "drifting" / "conversion" / f"dt={END}",
    )


@pytest.fixture
def var_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Settings pointed at a fresh var root (reports, MLflow) for one test."""
    for name in ("STOREFRONT_MLFLOW_TRACKING_URI", "STOREFRONT_MLFLOW_ARTIFACT_ROOT", "STOREFRONT_REPORTS_ROOT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("STOREFRONT_VAR_ROOT", str(tmp_path / "var"))
    get_settings.cache_clear()
    yield tmp_path / "var"
    get_settings.cache_clear()


# --- what is compared, and how -------------------------------------------------------------------------------------


def test_columns_are_typed_by_us_from_the_feature_table() -> None:
    categorical = {c for c in DEFAULT_COLUMNS if COLUMN_KINDS[c] == "categorical"}
    assert categorical == {"device", "channel", "is_anonymous"}
    assert all(COLUMN_KINDS[k] == "numerical" for k in KPI_NAMES)
    assert "customer_id" not in DEFAULT_COLUMNS


def test_every_column_gets_the_pinned_stattest_and_threshold(steady_result: DriftResult) -> None:
    assert [c.name for c in steady_result.columns] == list(DEFAULT_COLUMNS)
    for column in steady_result.columns:
        expected = NUMERICAL_STATTEST if column.kind == "numerical" else CATEGORICAL_STATTEST
        assert (column.stattest, column.threshold) == (expected, CONFIG.stattest_threshold), column.name
        assert column.drifted == (column.score >= column.threshold), column.name  # both are distances


def test_unknown_missing_or_empty_inputs_fail_loudly(frames: dict[str, pd.DataFrame], tmp_path: Path) -> None:
    reference, current = frames["reference"], frames["steady"]
    with pytest.raises(ValueError, match="no column kind"):
        drift_report(reference, current, day=END, model="m", columns=["session_id"], config=CONFIG, out_dir=tmp_path)
    with pytest.raises(ValueError, match="current frame lacks"):
        drift_report(reference, current.drop(columns="device"), day=END, model="m", config=CONFIG, out_dir=tmp_path)
    with pytest.raises(ValueError, match="no rows"):
        drift_report(reference, current.iloc[:0], day=END, model="m", config=CONFIG, out_dir=tmp_path)
    assert not any(tmp_path.iterdir())


# --- (a) no drift, (b) the planted drift ---------------------------------------------------------------------------


def test_no_drift_stays_below_the_alert(steady_result: DriftResult) -> None:
    result = steady_result
    assert result.reference_rows > 1000 and result.current_rows > 1000
    assert result.drift_share < CONFIG.drift_share_alert, drift_summary_line(result)
    assert not result.alert
    scores = {c.name: c for c in result.columns}
    assert not scores["checkout_latency_ms"].drifted, scores["checkout_latency_ms"]
    assert not scores["device"].drifted, scores["device"]


def test_planted_drift_is_found_and_alerts(drift_result: DriftResult) -> None:
    result = drift_result
    assert {"checkout_latency_ms", "payment_latency_ms", "device"} <= set(result.drifted_names), result.drifted_names
    assert result.alert and result.drift_share >= CONFIG.drift_share_alert
    assert result.drift_share == pytest.approx(result.n_drifted / result.n_columns)
    checkout = next(c for c in result.columns if c.name == "checkout_latency_ms")
    assert checkout.score > 3 * CONFIG.stattest_threshold  # x1.8 on the latency is no borderline call
    line = drift_summary_line(result)
    assert "alert yes" in line and "checkout_latency_ms" in line and "device" in line


def test_reports_and_summary_are_written(drift_result: DriftResult) -> None:
    result = drift_result
    assert result.html_path.stat().st_size > 100_000
    evidently_json = json.loads(result.json_path.read_text())
    assert {"metrics", "tests"} <= set(evidently_json)
    summary = json.loads(result.summary_path.read_text())
    assert summary["schema_version"] == 1
    assert (summary["model"], summary["day"], summary["alert"]) == ("conversion", END.isoformat(), True)
    assert summary["drift_share"] == pytest.approx(result.drift_share)
    assert summary["n_drifted"] == result.n_drifted and summary["n_columns"] == len(DEFAULT_COLUMNS)
    assert [c["column"] for c in summary["drifted_columns"]] == result.drifted_names
    assert set(summary["drifted_columns"][0]) == {"column", "kind", "stattest", "score", "threshold"}
    assert summary["thresholds"] == {
        "stattest_threshold": 0.1,
        "drift_share_alert": 0.3,
        "numerical_stattest": NUMERICAL_STATTEST,
        "categorical_stattest": CATEGORICAL_STATTEST,
    }
    assert summary["rows"] == {"reference": result.reference_rows, "current": result.current_rows}
    assert summary["reports"] == {"html": "report.html", "json": "report.json"}
    assert sorted(p.name for p in result.summary_path.parent.iterdir()) == [
        "report.html",
        "report.json",
        "summary.json",
    ]


def test_small_inputs_keep_the_pinned_tests_and_a_rerun_writes_the_same_record(
    frames: dict[str, pd.DataFrame], tmp_path: Path
) -> None:
    small = CONFIG.model_copy(update={"reference_sample_rows": 500})
    current = frames["steady"].iloc[:400]
    first = drift_report(frames["reference"], current, day=END, model="m", config=small, out_dir=tmp_path)
    assert (first.reference_rows, first.current_rows) == (500, 400)  # the reference was sampled down
    # under 1000 reference rows Evidently would switch to p-value tests by itself; the pinned ones hold
    assert {c.stattest for c in first.columns} == {NUMERICAL_STATTEST, CATEGORICAL_STATTEST}
    before = (first.summary_path.read_bytes(), first.json_path.read_bytes())
    again = drift_report(frames["reference"], current, day=END, model="m", config=small, out_dir=tmp_path)
    assert (again.summary_path.read_bytes(), again.json_path.read_bytes()) == before


# --- (c) MLflow ----------------------------------------------------------------------------------------------------


def test_drift_is_logged_to_mlflow_once_per_model_and_day(drift_result: DriftResult, var_root: Path) -> None:
    from mlflow.tracking import MlflowClient

    run_id = log_drift_to_mlflow(drift_result, champion_version="3")
    assert log_drift_to_mlflow(drift_result, champion_version="3") == run_id  # a rerun reuses the day's run

    settings = get_settings()
    assert settings.tracking_uri.startswith(f"sqlite:///{var_root}")
    client = MlflowClient(tracking_uri=settings.tracking_uri)
    experiment = client.get_experiment_by_name("drift-conversion")
    assert experiment is not None and experiment.artifact_location.startswith(str(settings.artifact_root))
    runs = client.search_runs([experiment.experiment_id])
    assert [r.info.run_id for r in runs] == [run_id]
    run = runs[0]
    assert run.data.metrics["drift_share"] == pytest.approx(drift_result.drift_share)
    assert run.data.metrics["n_drifted"] == drift_result.n_drifted
    assert run.data.metrics["score.checkout_latency_ms"] > CONFIG.stattest_threshold
    assert run.data.tags["drift_day"] == END.isoformat()
    assert run.data.tags["champion_version"] == "3" and run.data.tags["alert"] == "true"
    assert "checkout_latency_ms" in run.data.tags["drifted_columns"].split(",")
    artifacts = {a.path for a in client.list_artifacts(run_id, "drift")}
    assert artifacts == {"drift/report.html", "drift/report.json", "drift/summary.json"}


# --- (d) alert routing ---------------------------------------------------------------------------------------------


def test_alert_file_only_on_alert(steady_result: DriftResult, drift_result: DriftResult, var_root: Path) -> None:
    assert route_drift_alert(steady_result) is None
    alerts = var_root / "lake" / "reports" / "alerts"
    assert not alerts.exists() or not any(alerts.iterdir())

    path = route_drift_alert(drift_result)
    assert path is not None and path.parent == alerts
    alert = json.loads(path.read_text())
    assert (alert["model"], alert["day"], alert["kind"]) == ("conversion", END.isoformat(), "drift")
    assert {c["column"] for c in alert["drifted_columns"]} == set(drift_result.drifted_names)
    assert alert["alerting_since"] == END.isoformat()  # no earlier summaries beside this report
    assert Path(alert["reports"]["summary"]) == drift_result.summary_path.resolve()
    assert Path(alert["reports"]["html"]).is_file()


def test_alert_says_since_when(drift_result: DriftResult, tmp_path: Path) -> None:
    """Earlier summaries beside the report: an unbroken run of alerting days, and per column of drifted days."""
    model_dir = drift_result.summary_path.parent.parent
    summary = json.loads(drift_result.summary_path.read_text())
    only_device = {**summary, "drifted_columns": [c for c in summary["drifted_columns"] if c["column"] == "device"]}
    earlier = {1: summary, 2: only_device, 3: {**summary, "alert": False, "drifted_columns": []}}
    written = []
    try:
        for back, record in earlier.items():
            folder = model_dir / f"dt={END - dt.timedelta(days=back)}"
            folder.mkdir()
            written.append(folder)
            (folder / "summary.json").write_text(json.dumps({**record, "day": str(END - dt.timedelta(days=back))}))
        path = route_drift_alert(drift_result, folder=tmp_path / "alerts")
    finally:
        for folder in written:
            (folder / "summary.json").unlink()
            folder.rmdir()
    assert path is not None
    alert = json.loads(path.read_text())
    assert alert["alerting_since"] == str(END - dt.timedelta(days=2)) and alert["consecutive_alert_days"] == 3
    since = {c["column"]: c["drifted_since"] for c in alert["drifted_columns"]}
    assert since["device"] == str(END - dt.timedelta(days=2))
    assert since["checkout_latency_ms"] == str(END - dt.timedelta(days=1))


# --- the CLI -------------------------------------------------------------------------------------------------------


def test_cli_writes_reports_and_alert(frames: dict[str, pd.DataFrame], tmp_path: Path, var_root: Path) -> None:
    from click.testing import CliRunner

    from monitoring.drift.cli import drift_command

    columns = [*KPI_NAMES, "device", "channel", "is_anonymous"]
    frames["reference"][columns].iloc[:800].to_parquet(tmp_path / "reference.parquet")
    frames["drifting"][columns].iloc[:800].to_parquet(tmp_path / "current.parquet")
    args = [
        "--reference",
        str(tmp_path / "reference.parquet"),
        "--current",
        str(tmp_path / "current.parquet"),
        "--date",
        END.isoformat(),
        "--model",
        "conversion",
    ]
    result = CliRunner().invoke(drift_command, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "alert yes" in result.output
    report_dir = var_root / "lake" / "reports" / "drift" / "conversion" / f"dt={END}"
    assert json.loads((report_dir / "summary.json").read_text())["alert"] is True
    assert (var_root / "lake" / "reports" / "alerts" / f"drift-conversion-{END}.json").is_file()

    bad = CliRunner().invoke(drift_command, [*args[:6], "--date", "14/01/2026", "--model", "conversion"])
    assert bad.exit_code == 2 and "not a date" in bad.output
