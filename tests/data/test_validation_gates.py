"""The data quality gates: clean partitions pass, broken ones fail loudly, move to quarantine and say why.

Every test works on its own copy of the tiny simulated lake (the shared fixture is never modified) with the
settings pointed at it, so quarantines and data docs land in the test's temporary folder.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import shutil
from collections.abc import Iterable, Iterator
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from config.settings import Settings, get_settings
from feature_repo.contract.lake import PART_FILE, list_partitions, partition_dir
from feature_repo.contract.schema import ACQUISITION_CHANNELS, KPI_NAMES, TABLES
from feature_repo.expectations.config import ValidationConfig, read_validation_config
from feature_repo.expectations.suites import build_suite
from feature_repo.expectations.validate import (
    REASONS_FILE,
    FailedExpectation,
    ValidationFailed,
    partition_path,
    quarantine_path,
    validate_command,
    validate_day,
    validate_days,
    validate_partition,
)
from feature_repo.features.tables import EVENT_TIMESTAMP, FEATURE_TABLES, FeatureTable

if TYPE_CHECKING:
    from great_expectations import ExpectationSuite

DAY = dt.date(2026, 1, 5)


@pytest.fixture
def settings(tmp_path: Path, tiny_lake: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    """Settings whose raw lake is a private copy of the tiny lake under ``<tmp>/var``."""
    var = tmp_path / "var"
    shutil.copytree(tiny_lake, var / "lake" / "raw")
    monkeypatch.setenv("STOREFRONT_VAR_ROOT", str(var))
    for name in ("STOREFRONT_LAKE_ROOT", "STOREFRONT_REPORTS_ROOT"):
        monkeypatch.delenv(name, raising=False)
    get_settings.cache_clear()
    yield get_settings()
    get_settings.cache_clear()


def _failures(failed: Iterable[FailedExpectation]) -> set[tuple[str | None, str]]:
    return {(f.column, f.expectation) for f in failed}


# --- raw layer ---------------------------------------------------------------------------------------------------


def test_a_clean_day_passes_every_raw_table_and_renders_data_docs(
    settings: Settings, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    with caplog.at_level(logging.INFO, logger="feature_repo.expectations.validate"):
        outcomes = validate_day("raw", DAY)

    assert {o.table for o in outcomes} == set(TABLES)
    assert all(o.success and not o.failed and o.rows is not None for o in outcomes), [o.summary() for o in outcomes]
    assert all(o.evaluated > len(TABLES[o.table].columns) for o in outcomes)
    index = settings.reports / "data_docs" / "index.html"
    assert index.is_file()
    assert all(o.data_docs == index for o in outcomes)
    assert all(o.data_docs_page is not None and o.data_docs_page.is_file() for o in outcomes)
    assert "raw.sessions" in index.read_text()
    assert not settings.quarantine_root.exists()
    # one summary line per table, and Great Expectations kept quiet (no progress bars, no stdout)
    summaries = [r.getMessage() for r in caplog.records if "passed" in r.getMessage()]
    assert len(summaries) == len(TABLES)
    out, err = capfd.readouterr()
    assert out == ""
    assert "Calculating Metrics" not in err


def _corrupt_sessions(settings: Settings, day: dt.date) -> None:
    """Rewrite the day's sessions with a negative LCP, an unknown device, a duplicate id and null start times."""
    path = partition_dir(settings.raw_root, "sessions", day) / PART_FILE
    data = pq.read_table(path)
    frame = data.to_pandas()
    frame.loc[0, "lcp_ms"] = -12.5
    frame.loc[1, "device"] = "smartwatch"
    frame.loc[3, "session_id"] = frame.loc[2, "session_id"]
    frame.loc[[4, 5], "started_at"] = None
    # same column types as the contract (GE must see the values, not a type error); only the nullability relaxed
    schema = pa.schema([f.with_nullable(True) for f in data.schema])
    pq.write_table(pa.Table.from_pandas(frame, schema=schema, preserve_index=False), path)


EXPECTED_SESSION_FAILURES = {
    ("lcp_ms", "expect_column_values_to_be_between"),
    ("device", "expect_column_values_to_be_in_set"),
    ("session_id", "expect_column_values_to_be_unique"),
    ("started_at", "expect_column_values_to_not_be_null"),
}


def test_a_corrupt_partition_fails_and_moves_to_quarantine_with_its_reasons(
    settings: Settings, tiny_lake: Path
) -> None:
    _corrupt_sessions(settings, DAY)

    with pytest.raises(ValidationFailed) as raised:
        validate_day("raw", DAY)

    message = str(raised.value)
    for column, expectation in EXPECTED_SESSION_FAILURES:
        assert any(column in line and expectation in line for line in message.splitlines()), (column, message)
    assert "smartwatch" in message and "-12.5" in message
    [failed] = raised.value.failed
    assert failed.table == "sessions"
    assert _failures(failed.failed) >= EXPECTED_SESSION_FAILURES

    # the partition left the lake for the quarantine, with the reasons beside its file
    target = quarantine_path("raw", "sessions", DAY)
    assert failed.quarantined_to == target
    assert not partition_path("raw", "sessions", DAY).exists()
    assert (target / PART_FILE).is_file()
    reasons = json.loads((target / REASONS_FILE).read_text())
    assert reasons["suite"] == "raw.sessions" and reasons["day"] == DAY.isoformat()
    assert {(f["column"], f["expectation"]) for f in reasons["failed_expectations"]} >= EXPECTED_SESSION_FAILURES
    by_column = {f["column"]: f for f in reasons["failed_expectations"]}
    assert by_column["device"]["unexpected_values"] == ["smartwatch"]
    assert by_column["started_at"]["unexpected_count"] == 2
    assert reasons["data_docs"] and Path(reasons["data_docs"]).is_file()

    # the other tables of the day passed and stayed where they were
    others = [o for o in raised.value.outcomes if o.table != "sessions"]
    assert others and all(o.success and o.quarantined_to is None for o in others)
    assert all(partition_path("raw", o.table, DAY).is_dir() for o in others)
    assert sorted(p.name for p in (settings.quarantine_root / "raw").iterdir()) == ["sessions"]

    # a second bad delivery of the same partition replaces the older quarantine as a whole
    shutil.copytree(partition_dir(tiny_lake, "sessions", DAY), partition_dir(settings.raw_root, "sessions", DAY))
    path = partition_dir(settings.raw_root, "sessions", DAY) / PART_FILE
    data = pq.read_table(path)
    pq.write_table(
        data.set_column(
            data.schema.get_field_index("device"), "device", pc.replace_substring(data["device"], "mobile", "phablet")
        ),
        path,
    )
    with pytest.raises(ValidationFailed, match="phablet"):
        validate_day("raw", DAY, tables=["sessions"])
    reasons = json.loads((target / REASONS_FILE).read_text())
    assert {(f["column"], f["expectation"]) for f in reasons["failed_expectations"]} == {
        ("device", "expect_column_values_to_be_in_set")
    }
    assert sorted(p.name for p in target.parent.iterdir()) == [f"dt={DAY.isoformat()}"]


def _rewrite(settings: Settings, table: str, day: dt.date, column: str, row: int, value: object) -> None:
    path = partition_dir(settings.raw_root, table, day) / PART_FILE
    data = pq.read_table(path)
    values = data[column].to_pylist()
    values[row] = value
    index = data.schema.get_field_index(column)
    pq.write_table(
        data.set_column(index, data.schema.field(column), pa.array(values, data.schema.field(column).type)), path
    )


def test_row_rules_and_the_partition_date_are_enforced(settings: Settings) -> None:
    impressions = pq.read_table(partition_dir(settings.raw_root, "impressions", DAY) / PART_FILE)
    row = impressions["clicked"].to_pylist().index(False)
    _rewrite(settings, "impressions", DAY, "added_to_cart", row, True)  # carted without a click
    _rewrite(settings, "catalog", DAY, "launched_on", 0, DAY + dt.timedelta(days=3))  # launched after the snapshot
    next_day = dt.datetime.combine(DAY + dt.timedelta(days=1), dt.time(0, 0, 1), tzinfo=dt.UTC)
    _rewrite(settings, "sessions", DAY, "started_at", 0, next_day)  # belongs in tomorrow's partition

    with pytest.raises(ValidationFailed) as raised:
        validate_day("raw", DAY, tables=["impressions", "catalog", "sessions"])

    failures = {o.table: _failures(o.failed) for o in raised.value.failed}
    assert failures == {
        "impressions": {("clicked", "expect_column_values_to_be_in_set")},
        "catalog": {("snapshot_date, launched_on", "expect_column_pair_values_a_to_be_greater_than_b")},
        "sessions": {("started_at", "expect_column_values_to_be_between")},
    }


def test_a_missing_partition_fails_without_quarantine(settings: Settings) -> None:
    shutil.rmtree(partition_dir(settings.raw_root, "sessions", DAY))

    result = CliRunner().invoke(
        validate_command, ["--layer", "raw", "--date", DAY.isoformat(), "--table", "sessions", "--table", "orders"]
    )

    assert result.exit_code == 1, result.output
    assert "sessions" in result.output and "partition_present" in result.output
    assert "1 of 2 table(s)" in result.output and "orders (" not in result.output  # orders passed
    assert not settings.quarantine_root.exists()
    assert partition_path("raw", "orders", DAY).is_dir()

    with pytest.raises(ValidationFailed) as raised:
        validate_day("raw", DAY, tables=["sessions"])
    [outcome] = raised.value.outcomes
    assert outcome.missing and outcome.quarantined_to is None and outcome.rows is None


def test_an_empty_partition_of_an_event_table_that_may_be_empty_passes(settings: Settings) -> None:
    empty_days = [
        d
        for d in list_partitions(settings.raw_root, "promotion_offers")
        if pq.read_metadata(partition_dir(settings.raw_root, "promotion_offers", d) / PART_FILE).num_rows == 0
    ]
    assert empty_days, "the tiny lake should have a day without promotion offers"

    outcome = validate_partition("raw", "promotion_offers", empty_days[0])

    assert outcome.success, outcome.summary()
    assert outcome.rows == 0
    assert partition_path("raw", "promotion_offers", empty_days[0]).is_dir()


# --- history loads: several dates in one call -------------------------------------------------------------------


def _spy_on_great_expectations(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int]]:
    """Record (rows, expectations) of every Great Expectations validation the gate runs."""
    from feature_repo.expectations import validate

    runs: list[tuple[int, int]] = []
    run_suite = validate._Gate._run_suite

    def spy(self: Any, ds: Any, suite: Any, frame: Any, parameters: Any) -> Any:
        runs.append((len(frame), len(suite.expectations)))
        return run_suite(self, ds, suite, frame, parameters)

    monkeypatch.setattr(validate._Gate, "_run_suite", spy)
    return runs


def _set_rows(settings: Settings, table: str, day: dt.date, column: str, rows: Iterable[int], value: object) -> None:
    for row in rows:
        _rewrite(settings, table, day, column, row, value)


def test_a_history_load_gives_each_partition_the_verdict_and_reasons_it_gets_alone(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    days = [DAY + dt.timedelta(days=i) for i in range(-2, 4)]
    before, after, later, last = days[1], days[3], days[4], days[5]
    _corrupt_sessions(settings, DAY)  # row-wise failures: in set, between, unique, not null
    sessions = lambda day: pq.read_table(partition_dir(settings.raw_root, "sessions", day) / PART_FILE)  # noqa: E731
    # two slow pages: unexpected rows in a union of dates, yet within `mostly` (99%) for their partition alone
    _set_rows(settings, "sessions", before, "lcp_ms", [0, 1], 500_000.0)
    # 5% slow pages: beyond `mostly` for that partition
    _set_rows(settings, "sessions", after, "lcp_ms", range(sessions(after).num_rows // 20 + 1), 500_000.0)
    # a session id of one date repeated on another: a duplicate in a union, unique within each partition
    _rewrite(settings, "sessions", later, "session_id", 0, sessions(before)["session_id"][5].as_py())
    # another dtype (int32 page views) on the first date: judged by the type check as alone, never in a union
    first = sessions(days[0])
    index = first.schema.get_field_index("pageviews")
    first = first.set_column(index, "pageviews", pc.cast(first["pageviews"], pa.int32()))
    pq.write_table(first, partition_dir(settings.raw_root, "sessions", days[0]) / PART_FILE)
    shutil.rmtree(partition_dir(settings.raw_root, "sessions", last))  # missing: a gate failure, nothing moved

    alone = {day: validate_partition("raw", "sessions", day) for day in days}  # never moves anything
    runs = _spy_on_great_expectations(monkeypatch)
    with pytest.raises(ValidationFailed) as raised:
        validate_days("raw", days, tables=["sessions"])

    together = {o.day: o for o in raised.value.outcomes}
    assert {d for d in days if not alone[d].success} == {days[0], DAY, after, last}
    expectations = len(build_suite("raw", "sessions").expectations)
    for day in days:
        mine, reference = together[day], alone[day]
        assert (mine.success, mine.rows, mine.missing) == (reference.success, reference.rows, reference.missing), day
        assert mine.failed == reference.failed, day  # the same expectations, details and order
        assert mine.evaluated == reference.evaluated == (0 if day == last else expectations), day
        if not mine.success and not mine.missing:
            assert mine.quarantined_to == quarantine_path("raw", "sessions", day)
            reasons = json.loads((mine.quarantined_to / REASONS_FILE).read_text())
            assert reasons["failed_expectations"] == json.loads(
                json.dumps([asdict(f) for f in reference.failed], default=str)
            )
        else:
            assert mine.quarantined_to is None
    assert _failures(together[after].failed) == {("lcp_ms", "expect_column_values_to_be_between")}
    assert partition_path("raw", "sessions", before).is_dir() and partition_path("raw", "sessions", later).is_dir()
    # the four same-dtype readable partitions (before, DAY, after, later) went through one union validation
    union_rows = sum(together[d].rows or 0 for d in (before, DAY, after, later))
    assert [n for rows, n in runs if rows == union_rows], runs


def test_a_clean_history_load_costs_far_fewer_expectation_runs_than_one_per_date(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    days = [DAY + dt.timedelta(days=i) for i in range(7)]
    runs = _spy_on_great_expectations(monkeypatch)
    config = read_validation_config().model_copy(update={"data_docs_history": 20})  # fewer than this run's results

    outcomes = validate_days("raw", days, config=config)

    assert [(o.day, o.table) for o in outcomes] == [(d, t) for d in days for t in TABLES]
    assert all(o.success for o in outcomes)
    suites = {t: len(build_suite("raw", t).expectations) for t in TABLES}
    assert all(o.evaluated == suites[o.table] for o in outcomes)  # every expectation judged on every partition
    one_by_one = len(days) * sum(suites.values())
    assert sum(n for _, n in runs) < one_by_one / 2, (sum(n for _, n in runs), one_by_one)
    assert not settings.quarantine_root.exists()
    # every result of the run has its page, though the index lists only the latest data_docs_history
    assert all(o.data_docs_page is not None and o.data_docs_page.is_file() for o in outcomes)
    assert len({o.data_docs_page for o in outcomes}) == len(outcomes)


def test_a_run_split_over_processes_gives_each_partition_the_verdict_and_reasons_it_gets_alone(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A large run is cut into segments validated in spawned processes; the verdicts, reasons, quarantines and
    data docs pages are those of one process judging each partition alone."""
    import feature_repo.expectations.validate as validate

    days = [DAY + dt.timedelta(days=i) for i in range(-1, 3)]
    _corrupt_sessions(settings, DAY)
    alone = {(t, d): validate_partition("raw", t, d) for t in TABLES for d in days}  # never moves anything
    monkeypatch.setattr(validate.os, "cpu_count", lambda: 2)  # the split does not depend on the runner's CPUs
    config = read_validation_config().model_copy(update={"workers": 2, "parallel_min_mb": 0})
    assert len(validate._segments("raw", {t: days for t in TABLES}, settings, config)) == 2

    with caplog.at_level(logging.INFO, logger=validate.__name__), pytest.raises(ValidationFailed) as raised:
        validate_days("raw", days, config=config)

    assert any("in 2 processes" in r.getMessage() for r in caplog.records)
    outcomes = raised.value.outcomes
    assert [(o.day, o.table) for o in outcomes] == [(d, t) for d in days for t in TABLES]
    for outcome in outcomes:
        reference = alone[(outcome.table, outcome.day)]
        assert (outcome.success, outcome.rows, outcome.evaluated) == (reference.success, reference.rows,
                                                                      reference.evaluated), outcome.summary()
        assert outcome.failed == reference.failed, outcome.summary()
        assert (outcome.quarantined_to is not None) == (not reference.success)
        assert outcome.data_docs_page is not None and outcome.data_docs_page.is_file()
    assert not alone[("sessions", DAY)].success and all(o.success for o in outcomes if o.day != DAY)


def test_the_data_docs_index_is_great_expectations_default_one(settings: Settings, tmp_path: Path) -> None:
    from great_expectations.render.renderer.site_builder import SiteBuilder

    from feature_repo.expectations import validate

    validate_days("raw", [DAY, DAY + dt.timedelta(days=1)], tables=["orders", "catalog"])
    validate_day("raw", DAY + dt.timedelta(days=2), tables=["orders"])
    docs = settings.reports / "data_docs"
    config = read_validation_config().model_copy(update={"data_docs_history": 4})  # the index leaves some out
    gate = validate._Gate(settings, config)
    indexes = {}
    for kind in ("lean", "default"):
        site = validate._site_config(settings, config)
        del site["class_name"]
        if kind == "default":
            site["site_index_builder"] = {"class_name": "DefaultSiteIndexBuilder", "validation_results_limit": 4}
        site["store_backend"]["base_directory"] = str(shutil.copytree(docs, tmp_path / kind))
        SiteBuilder(data_context=gate.context, site_name="local_site", **site).site_index_builder.build()
        # the page stamps its build time into an asset URL (?d=<time>): the only difference allowed
        html = (tmp_path / kind / "index.html").read_text()
        indexes[kind] = "".join(part.split("&", 1)[-1] for part in html.split("?d="))
    assert indexes["lean"] == indexes["default"]
    assert indexes["lean"].count("raw.orders") >= 3


# --- feature layer -----------------------------------------------------------------------------------------------


def _feature_schema(table: FeatureTable) -> pa.Schema:
    return pa.schema(
        [
            pa.field(table.key, pa.string(), nullable=False),
            pa.field(EVENT_TIMESTAMP, pa.timestamp("us", tz="UTC"), nullable=False),
            *(c.field() for c in table.columns),
        ]
    )


def _write_like_spark(data: pa.Table, folder: Path) -> None:
    """Two part files plus Spark's _SUCCESS and .crc side files."""
    folder.mkdir(parents=True)
    half = data.num_rows // 2
    for i, part in enumerate((data.slice(0, half), data.slice(half))):
        name = f"part-{i:05d}-4c1d-c000.snappy.parquet"
        pq.write_table(part, folder / name, coerce_timestamps="us")
        (folder / f".{name}.crc").write_bytes(b"crc")
    (folder / "_SUCCESS").write_bytes(b"")


def _session_kpis(settings: Settings, day: dt.date) -> pa.Table:
    """The day's session_kpis rows derived from the raw sessions with pyarrow (no Spark)."""
    sessions = pq.read_table(partition_dir(settings.raw_root, "sessions", day) / PART_FILE)
    anonymous = pc.is_null(sessions["customer_id"])
    columns = {
        "session_id": sessions["session_id"],
        EVENT_TIMESTAMP: sessions["started_at"],
        "customer_id": pc.fill_null(sessions["customer_id"], "anonymous"),
        "device": sessions["device"],
        "channel": sessions["channel"],
        "is_anonymous": pc.cast(anonymous, pa.int64()),
        **{k: pc.cast(sessions[k], pa.float64()) for k in KPI_NAMES},
    }
    return pa.table(columns, schema=_feature_schema(FEATURE_TABLES["session_kpis"]))


def _customer_history(day: dt.date, n: int = 300) -> pa.Table:
    rng = np.random.default_rng(3)
    orders = rng.poisson(1.0, n)
    never = orders == 0
    revenue = np.round(orders * rng.gamma(2.0, 30.0, n), 2)
    columns = {
        "customer_id": [f"c{i:05d}" for i in range(n)],
        EVENT_TIMESTAMP: [dt.datetime.combine(day, dt.time.max, tzinfo=dt.UTC)] * n,
        "days_since_signup": rng.integers(0, 900, n),
        "days_since_last_order": pa.array(rng.integers(0, 300, n), mask=never),
        "orders_total": orders,
        "orders_30d": np.minimum(orders, rng.integers(0, 2, n)),
        "revenue_total": revenue,
        "revenue_90d": revenue / 2,
        "avg_order_value": pa.array(np.where(never, 0.0, revenue / np.maximum(orders, 1)), mask=never),
        "sessions_30d": rng.integers(0, 20, n),
        "conversion_rate_30d": pa.array(rng.uniform(0, 0.3, n), mask=rng.uniform(size=n) < 0.5),
        "coupon_offers_90d": rng.integers(0, 3, n),
        "coupon_orders_90d": np.minimum(orders, rng.integers(0, 2, n)),
        "coupon_order_share": pa.array(rng.uniform(0, 1, n), mask=never),
        "acquisition_channel": rng.choice(ACQUISITION_CHANNELS, n),
    }
    return pa.table(columns, schema=_feature_schema(FEATURE_TABLES["customer_history"]))


def test_feature_partitions_pass_and_an_out_of_range_value_fails(settings: Settings) -> None:
    kpis = _session_kpis(settings, DAY)
    _write_like_spark(kpis, partition_path("features", "session_kpis", DAY))
    _write_like_spark(_customer_history(DAY), partition_path("features", "customer_history", DAY))

    outcomes = validate_day("features", DAY, tables=["session_kpis", "customer_history"])  # the others: own tests
    assert all(o.success for o in outcomes), [o.summary() for o in outcomes]
    assert {o.table: o.rows for o in outcomes} == {"session_kpis": kpis.num_rows, "customer_history": 300}

    bad_day = DAY + dt.timedelta(days=1)
    bad = _session_kpis(settings, bad_day)
    bad = bad.set_column(
        bad.schema.get_field_index("is_anonymous"),
        bad.schema.field("is_anonymous"),
        pa.array([2] + [0] * (bad.num_rows - 1), pa.int64()),
    )
    _write_like_spark(bad, partition_path("features", "session_kpis", bad_day))

    with pytest.raises(ValidationFailed) as raised:
        validate_day("features", bad_day, tables=["session_kpis"])

    [outcome] = raised.value.failed
    assert _failures(outcome.failed) == {("is_anonymous", "expect_column_values_to_be_between")}
    assert outcome.failed[0].unexpected_values == [2]
    target = quarantine_path("features", "session_kpis", bad_day)
    assert outcome.quarantined_to == target and (target / REASONS_FILE).is_file() and (target / "_SUCCESS").is_file()
    assert not partition_path("features", "session_kpis", bad_day).exists()


def test_feature_columns_of_the_wrong_type_fail_the_type_checks(settings: Settings) -> None:
    kpis = _session_kpis(settings, DAY)
    index = kpis.schema.get_field_index
    kpis = kpis.set_column(index("is_anonymous"), "is_anonymous", pc.cast(kpis["is_anonymous"], pa.int32()))
    naive = pc.cast(kpis[EVENT_TIMESTAMP], pa.timestamp("us"))  # a Spark session without the UTC time zone
    kpis = kpis.set_column(index(EVENT_TIMESTAMP), EVENT_TIMESTAMP, naive)
    _write_like_spark(kpis, partition_path("features", "session_kpis", DAY))

    outcome = validate_partition("features", "session_kpis", DAY)

    assert not outcome.success
    types = {f.column: f.observed for f in outcome.failed if f.expectation == "expect_column_values_to_be_in_type_list"}
    assert types == {"is_anonymous": "int32", EVENT_TIMESTAMP: "datetime64"}
    assert partition_path("features", "session_kpis", DAY).is_dir()  # validate_partition never moves anything


# --- suite generation and config ---------------------------------------------------------------------------------


def _by_type(suite: ExpectationSuite, expectation_type: str) -> list[dict[str, Any]]:
    return [e.configuration.kwargs for e in suite.expectations if e.expectation_type == expectation_type]


def test_the_sessions_suite_is_generated_from_the_contract() -> None:
    sessions = TABLES["sessions"]
    suite = build_suite("raw", "sessions")

    not_null = {k["column"] for k in _by_type(suite, "expect_column_values_to_not_be_null")}
    assert not_null == {c.name for c in sessions.columns if not c.nullable}
    in_set = {k["column"]: k["value_set"] for k in _by_type(suite, "expect_column_values_to_be_in_set")}
    assert in_set == {c.name: list(c.allowed) for c in sessions.columns if c.allowed}
    assert [k["column"] for k in _by_type(suite, "expect_column_values_to_be_unique")] == ["session_id"]
    exists = {k["column"] for k in _by_type(suite, "expect_column_to_exist")}
    assert exists == set(sessions.column_names)
    regex = {k["column"] for k in _by_type(suite, "expect_column_values_to_match_regex")}
    assert regex == {c.name for c in sessions.columns if c.pattern}

    impressions = build_suite("raw", "impressions")
    assert [k["column_list"] for k in _by_type(impressions, "expect_compound_columns_to_be_unique")] == [
        ["list_id", "position"]
    ]
    implies = [k for k in _by_type(impressions, "expect_column_values_to_be_in_set") if k.get("row_condition")]
    assert {k["column"]: k["row_condition"]["column"]["name"] for k in implies} == {
        "clicked": "added_to_cart",
        "added_to_cart": "checked_out",
        "checked_out": "purchased",
    }


def test_the_validation_config_is_checked_against_the_definitions() -> None:
    document = read_validation_config().model_dump()
    document["raw"]["sessions"]["columns"]["no_such_column"] = {"max": 1.0}
    document["raw"]["sessions"]["columns"]["device"] = {"max_null_fraction": 0.1}
    with pytest.raises(ValueError, match="no_such_column: no such column") as raised:
        ValidationConfig.model_validate(document)
    assert "device: max_null_fraction on a column that must never be null" in str(raised.value)

    del document["raw"]["orders"]
    with pytest.raises(ValueError, match="no entry for table"):
        ValidationConfig.model_validate(document)
