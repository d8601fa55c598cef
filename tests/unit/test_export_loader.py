"""The export loader: a conforming export lands in the lake partition by partition; anything else writes nothing."""

from __future__ import annotations

import csv
import datetime as dt
import json
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from feature_repo.contract.conformance import ContractError, Violation
from feature_repo.contract.lake import PART_FILE, partition_dir, read_table, write_parquet
from feature_repo.contract.loader import load_export, load_export_command, parse_csv_column
from feature_repo.contract.schema import SESSION_KPIS, TABLES

UTC = dt.UTC
CEST = dt.timezone(dt.timedelta(hours=2))  # CSV timestamps are written in a non-UTC offset on purpose
DAY1, DAY2 = dt.date(2024, 5, 1), dt.date(2024, 5, 2)

Tables = dict[str, pa.Table]


def _at(day: dt.date, hour: int, minute: int = 0, second: int = 0, micro: int = 0) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, hour, minute, second, micro, tzinfo=UTC)


def _kpis(scale: float) -> dict[str, object]:
    values: dict[str, object] = {}
    for i, kpi in enumerate(SESSION_KPIS):
        if kpi.dtype == "int64":
            values[kpi.name] = int(scale * (i % 4))
        elif kpi.max is not None:
            values[kpi.name] = round(kpi.max * 0.1 * scale, 6)
        else:
            values[kpi.name] = round(100.0 * scale + i + 0.25, 6)
    return values


def valid_tables() -> Tables:
    """A tiny shop over two days, in date order, conforming to the contract."""
    session_rows = [
        ("s-1", "c-1", _at(DAY1, 9, 15, 0, 123_456), "desktop", "direct", 5, 310.5, False, 0.0, 1.0),
        # the last microsecond of DAY1 in UTC: written as 01:59:59.999999+02:00 of DAY2 in the CSV export
        ("s-2", None, _at(DAY1, 23, 59, 59, 999_999), "mobile", "paid_search", 2, 12.0, False, 0.0, 2.5),
        ("s-3", "c-2", _at(DAY2, 0, 0), "tablet", "email", 9, 901.25, True, 59.97, 0.7),
        ("s-4", "c-1", _at(DAY2, 18, 30), "mobile", "social", 3, 60.0, True, 19.99, 1.3),
    ]
    sessions = [
        {
            "session_id": sid, "customer_id": cid, "started_at": ts, "device": device, "channel": channel,
            "pageviews": pages, "duration_s": duration, **_kpis(scale), "converted": converted, "revenue": revenue,
        }
        for sid, cid, ts, device, channel, pages, duration, converted, revenue, scale in session_rows
    ]
    impressions = [
        {
            "list_id": list_id, "session_id": sid, "shown_at": ts, "list_type": list_type, "ranker": ranker,
            "query": query, "category": category, "product_id": pid, "position": pos, "price_shown": price,
            "clicked": funnel >= 1, "added_to_cart": funnel >= 2, "checked_out": funnel >= 3, "purchased": funnel >= 4,
        }
        for list_id, sid, ts, list_type, ranker, query, category, pid, pos, price, funnel in [
            ("l-1", "s-1", _at(DAY1, 9, 16), "search", "personalized", "red shoes", None, "p-1", 1, 39.99, 1),
            ("l-1", "s-1", _at(DAY1, 9, 16), "search", "personalized", "red shoes", None, "p-2", 2, 19.99, 0),
            ("l-2", "s-3", _at(DAY2, 0, 1), "category_page", "randomized", None, "shoes", "p-1", 1, 39.99, 4),
            ("l-2", "s-3", _at(DAY2, 0, 1), "category_page", "randomized", None, "shoes", "p-2", 2, 19.99, 4),
            ("l-3", "s-4", _at(DAY2, 18, 31), "recommendation", "popularity", None, None, "p-2", 1, 19.99, 4),
        ]
    ]
    orders = [
        {
            "order_id": oid, "ordered_at": ts, "session_id": sid, "customer_id": cid, "product_id": pid,
            "quantity": qty, "unit_price_paid": price, "discount": discount, "promotion_id": promo,
        }
        for oid, ts, sid, cid, pid, qty, price, discount, promo in [
            ("o-1", _at(DAY2, 0, 5), "s-3", "c-2", "p-1", 1, 39.99, 0.0, None),
            ("o-1", _at(DAY2, 0, 5), "s-3", "c-2", "p-2", 1, 19.99, 0.0, None),
            ("o-2", _at(DAY2, 18, 40), "s-4", "c-1", "p-2", 1, 19.99, 2.0, "promo-10"),
        ]
    ]
    catalog = [
        {
            "snapshot_date": day, "product_id": pid, "category_path": path, "category": path.split("/")[0],
            "brand": brand, "list_price": list_price, "price": price, "unit_cost": cost,
            "is_repeat_purchase": repeat, "launched_on": dt.date(2023, 1, 15),
        }
        for day in (DAY1, DAY2)
        for pid, path, brand, list_price, price, cost, repeat in [
            ("p-1", "shoes/running", "Acme", 49.99, 39.99, 18.0, False),
            ("p-2", "shoes/socks", "Sockr", 19.99, 19.99 if day == DAY1 else 17.99, 4.5, True),
        ]
    ]
    experiments = [
        {
            "snapshot_date": DAY1, "experiment_id": "exp-checkout", "name": "One-page checkout, \"v2\"",
            "unit_type": "customer", "variants": ["control", "one_page"], "planned_weights": [0.5, 0.5],
            "start_date": dt.date(2024, 4, 20), "end_date": dt.date(2024, 5, 20), "primary_metric": "conversion_rate",
            "guardrail_metrics": ["page_load_ms", "http_5xx_rate"], "min_detectable_effect": 0.02,
        }
    ]
    rows = {
        "sessions": sessions, "impressions": impressions, "orders": orders, "catalog": catalog,
        "experiments": experiments,
    }
    return {name: pa.Table.from_pylist(r, schema=TABLES[name].arrow_schema()) for name, r in rows.items()}


def _csv_text(value: object) -> str:
    """How an exporter following the contract writes one value."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dt.datetime):
        return value.astimezone(CEST).isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, list):
        return json.dumps(value)
    if isinstance(value, float):
        return repr(value)
    return str(value)


def write_csv(data: pa.Table, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(data.column_names)
        for row in data.to_pylist():
            writer.writerow([_csv_text(v) for v in row.values()])


def write_export(folder: Path, tables: Tables, fmt: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in tables.items():
        if fmt == "parquet":
            pq.write_table(data, folder / f"{name}.parquet")
        else:
            write_csv(data, folder / f"{name}.csv")
    return folder


def tree(root: Path) -> dict[str, bytes | None]:
    """Every file (with its bytes) and folder under ``root``."""
    if not root.exists():
        return {}
    return {p.relative_to(root).as_posix(): (p.read_bytes() if p.is_file() else None) for p in root.rglob("*")}


# --- a conforming export --------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_export_lands_in_date_partitions_and_reads_back_equal(fmt: str, tmp_path: Path) -> None:
    tables = valid_tables()
    source = write_export(tmp_path / "export", tables, fmt)
    raw_root = tmp_path / "lake"

    report = load_export(source, raw_root)

    loads = {t.table: t for t in report.tables}
    assert set(loads) == set(tables)
    assert loads["sessions"].partitions == (DAY1, DAY2)
    assert loads["impressions"].partitions == (DAY1, DAY2)
    assert loads["orders"].partitions == (DAY2,)
    assert loads["experiments"].partitions == (DAY1,)
    assert loads["orders"].source_files == (f"orders.{fmt}",)
    assert loads["sessions"].rows == 4
    assert (partition_dir(raw_root, "sessions", DAY1) / PART_FILE).is_file()
    assert sorted(p.name for p in raw_root.iterdir()) == sorted(tables)
    for name, data in tables.items():
        assert read_table(raw_root, TABLES[name]).equals(data), name
    # the session at 23:59:59.999999 UTC belongs to DAY1 even though the CSV wrote it as DAY2 in +02:00
    day1 = read_table(raw_root, TABLES["sessions"], [DAY1])
    assert day1["session_id"].to_pylist() == ["s-1", "s-2"]


def test_csv_and_parquet_exports_of_the_same_rows_give_the_same_bytes(tmp_path: Path) -> None:
    tables = valid_tables()
    load_export(write_export(tmp_path / "pq", tables, "parquet"), tmp_path / "lake_pq")
    load_export(write_export(tmp_path / "csv", tables, "csv"), tmp_path / "lake_csv")
    assert tree(tmp_path / "lake_pq") == tree(tmp_path / "lake_csv")


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_reloading_the_same_export_is_byte_identical(fmt: str, tmp_path: Path) -> None:
    source = write_export(tmp_path / "export", valid_tables(), fmt)
    raw_root = tmp_path / "lake"
    load_export(source, raw_root)
    first = tree(raw_root)

    load_export(source, raw_root)

    assert tree(raw_root) == first
    assert not [p for p in first if ".staging" in p or ".replaced" in p]


def test_a_table_folder_of_several_files_is_concatenated_in_name_order(tmp_path: Path) -> None:
    sessions = valid_tables()["sessions"]
    source = tmp_path / "export"
    write_csv(sessions.slice(0, 2), source / "sessions" / "part-0.csv")
    write_csv(sessions.slice(2), source / "sessions" / "part-1.csv")
    (source / "sessions" / "_SUCCESS").touch()

    report = load_export(source, tmp_path / "lake")

    assert report.tables[0].source_files == ("sessions/part-0.csv", "sessions/part-1.csv")
    assert report.skipped_files == ("sessions/_SUCCESS",)
    assert read_table(tmp_path / "lake", TABLES["sessions"]).equals(sessions)


def test_an_export_of_one_table_leaves_other_tables_and_dates_alone(tmp_path: Path) -> None:
    tables = valid_tables()
    raw_root = tmp_path / "lake"
    load_export(write_export(tmp_path / "full", tables, "parquet"), raw_root)
    before = tree(raw_root)
    changed = tables["orders"].set_column(
        tables["orders"].schema.get_field_index("quantity"), TABLES["orders"].arrow_schema().field("quantity"),
        pa.array([2, 3, 4], pa.int64()),
    )

    load_export(write_export(tmp_path / "orders_only", {"orders": changed}, "parquet"), raw_root)

    after = tree(raw_root)
    assert {k for k in after if after[k] != before.get(k)} == {f"orders/dt={DAY2}/{PART_FILE}"}
    assert read_table(raw_root, TABLES["orders"]).equals(changed)


def test_a_table_with_a_header_and_no_rows_loads_without_partitions(tmp_path: Path) -> None:
    source = tmp_path / "export"
    write_csv(valid_tables()["orders"].slice(0, 0), source / "orders.csv")
    write_csv(valid_tables()["catalog"], source / "catalog.csv")

    report = load_export(source, tmp_path / "lake")

    loads = {t.table: t for t in report.tables}
    assert (loads["orders"].rows, loads["orders"].partitions) == (0, ())
    assert loads["catalog"].partitions == (DAY1, DAY2)
    assert not (tmp_path / "lake" / "orders").exists()


def test_parquet_with_lossless_representations_is_accepted(tmp_path: Path) -> None:
    orders = valid_tables()["orders"]
    wider = orders.cast(
        pa.schema([
            pa.field(f.name, pa.int32() if f.name == "quantity" else f.type)
            for f in orders.schema
        ])
    )
    source = tmp_path / "export"
    source.mkdir()
    pq.write_table(wider, source / "orders.parquet", coerce_timestamps="ms")

    load_export(source, tmp_path / "lake")

    assert read_table(tmp_path / "lake", TABLES["orders"]).equals(orders)


@pytest.mark.parametrize(
    ("dtype", "text", "expected"),
    [
        ("int64", "-42", -42),
        ("int64", "9223372036854775807", 9223372036854775807),
        ("float64", "1.5e3", 1500.0),
        ("float64", ".5", 0.5),
        ("bool", "TRUE", True),
        ("bool", "False", False),
        ("date", "2024-02-29", dt.date(2024, 2, 29)),
        ("timestamp", "2024-05-01T13:45:00Z", dt.datetime(2024, 5, 1, 13, 45, tzinfo=UTC)),
        ("timestamp", "2024-05-01 15:45:00.25+02:00", dt.datetime(2024, 5, 1, 13, 45, 0, 250_000, tzinfo=UTC)),
        ("timestamp", "2024-05-01T15:45:00+0200", dt.datetime(2024, 5, 1, 13, 45, tzinfo=UTC)),
        ("list<string>", '["a", "b"]', ["a", "b"]),
        ("list<float64>", "[1, 0.5]", [1.0, 0.5]),
        ("list<string>", "[]", []),
        ("string", "", None),
        ("int64", "", None),
    ],
)
def test_csv_text_parses_to_the_contract_type(dtype: str, text: str, expected: object) -> None:
    values = pa.chunked_array([pa.array([None if text == "" else text], pa.string())])
    parsed, bad = parse_csv_column(dtype, values)  # type: ignore[arg-type]
    assert not pc.any(bad).as_py()
    assert parsed.to_pylist() == [expected]


@pytest.mark.parametrize(
    ("dtype", "text"),
    [
        ("int64", "1.0"), ("int64", "1e3"), ("int64", "+5"), ("int64", " 5"), ("int64", "9223372036854775808"),
        ("float64", "nan"), ("float64", "inf"), ("float64", "1,5"), ("float64", "0x10"),
        ("bool", "1"), ("bool", "0"), ("bool", "t"), ("bool", "yes"),
        ("date", "2024-02-30"), ("date", "2024-5-1"), ("date", "01/05/2024"), ("date", "2024-05-01T00:00:00Z"),
        ("timestamp", "2024-05-01T13:45:00"), ("timestamp", "2024-05-01"), ("timestamp", "2024-05-01T13:45Z"),
        ("timestamp", "2024-05-01T13:45:00.1234567Z"), ("timestamp", "1714571100"),
        ("list<string>", "a,b"), ("list<string>", '["a", 1]'), ("list<string>", '{"a": 1}'),
        ("list<float64>", "[NaN]"), ("list<float64>", "[1e400]"), ("list<float64>", "[true]"),
        ("list<float64>", '["0.5"]'),
    ],
)
def test_csv_text_that_does_not_parse_strictly_is_flagged(dtype: str, text: str) -> None:
    values = pa.chunked_array([pa.array(["", text][1:], pa.string())])
    parsed, bad = parse_csv_column(dtype, values)  # type: ignore[arg-type]
    assert bad.to_pylist() == [True]
    assert parsed.to_pylist() == [None]


# --- bad exports: ContractError naming the table, column and problem, and nothing written -----------------------


def _with(name: str, column: str, values: list[object], type_: pa.DataType | None = None) -> Callable[[Tables], None]:
    """A mutation replacing one column of one table (with a type of its own if given)."""

    def mutate(tables: Tables) -> None:
        data = tables[name]
        index = data.schema.get_field_index(column)
        array = pa.array(values, type_ or data.schema.field(column).type)
        tables[name] = data.set_column(index, pa.field(column, array.type), array)

    return mutate


def _row_values(name: str, column: str, change: dict[int, object]) -> list[object]:
    values = valid_tables()[name][column].to_pylist()
    for i, v in change.items():
        values[i] = v
    return values


def _drop(name: str, column: str) -> Callable[[Tables], None]:
    def mutate(tables: Tables) -> None:
        tables[name] = tables[name].drop_columns([column])

    return mutate


def _add(name: str, column: str) -> Callable[[Tables], None]:
    def mutate(tables: Tables) -> None:
        tables[name] = tables[name].append_column(column, pa.array(["x"] * tables[name].num_rows))

    return mutate


BOTH = ("parquet", "csv")
PARQUET = ("parquet",)
CSV = ("csv",)

# (id, export formats that can carry the fault, mutation, expected table, column, problem, text in the message)
_BAD_EXPORTS: list[tuple[str, tuple[str, ...], Callable[[Tables], None], str, str, str, str]] = [
    (
        "string-in-int-column", PARQUET, _with("sessions", "pageviews", ["5", "2", "9", "3"], pa.string()),
        "sessions", "pageviews", "type", "got string",
    ),
    (
        "naive-timestamp", PARQUET,
        _with("orders", "ordered_at", _row_values("orders", "ordered_at", {}), pa.timestamp("us")),
        "orders", "ordered_at", "type", "got timestamp[us]",
    ),
    (
        "list-of-strings-for-floats", PARQUET,
        _with("experiments", "planned_weights", [["0.5", "0.5"]], pa.list_(pa.string())),
        "experiments", "planned_weights", "type", "string>",
    ),
    (
        "text-in-int-column", CSV, _with("sessions", "pageviews", ["5", "abc", "9", "3"], pa.string()),
        "sessions", "pageviews", "type", "'abc'",
    ),
    (
        "naive-timestamp", CSV,
        _with("orders", "ordered_at", ["2024-05-02T00:05:00", "2024-05-02T00:05:00Z", "2024-05-02T18:40:00Z"],
              pa.string()),
        "orders", "ordered_at", "type", "naive timestamps are rejected",
    ),
    (
        "bool-as-digit", CSV, _with("impressions", "clicked", ["1", "0", "true", "true", "true"], pa.string()),
        "impressions", "clicked", "type", "'1'",
    ),
    ("missing-column", BOTH, _drop("sessions", "revenue"), "sessions", "revenue", "missing column", "contract"),
    (
        "unexpected-column", BOTH, _add("orders", "coupon_code"),
        "orders", "coupon_code", "unexpected column", "contract",
    ),
    (
        "null-in-required-column", BOTH, _with("orders", "product_id", _row_values("orders", "product_id", {1: None})),
        "orders", "product_id", "nulls", "1 null",
    ),
    (
        "negative-unit-price-paid", BOTH,
        _with("orders", "unit_price_paid", _row_values("orders", "unit_price_paid", {0: -39.99})),
        "orders", "unit_price_paid", "range", "-39.99",
    ),
    (
        "negative-list-price", BOTH, _with("catalog", "list_price", _row_values("catalog", "list_price", {3: -5.0})),
        "catalog", "list_price", "range", "-5.0",
    ),
    (
        "infinite-kpi", PARQUET,
        _with("sessions", "page_load_ms", _row_values("sessions", "page_load_ms", {0: float("inf")})),
        "sessions", "page_load_ms", "range", "inf",
    ),
    (
        "unknown-device", BOTH, _with("sessions", "device", _row_values("sessions", "device", {2: "smartwatch"})),
        "sessions", "device", "unknown category", "smartwatch",
    ),
    (
        "duplicate-session-id", BOTH,
        _with("sessions", "session_id", _row_values("sessions", "session_id", {3: "s-1"})),
        "sessions", "session_id", "duplicate key", "s-1",
    ),
    (
        "purchase-skips-checkout", BOTH,
        _with("impressions", "checked_out", _row_values("impressions", "checked_out", {4: False})),
        "impressions", "checked_out", "rule", "`purchased` implies `checked_out`",
    ),
    (
        "id-breaks-pattern", BOTH, _with("sessions", "customer_id", _row_values("sessions", "customer_id", {0: "c 1"})),
        "sessions", "customer_id", "pattern", "'c 1'",
    ),
]

BAD_EXPORTS = [
    pytest.param(fmt, *case, id=f"{fmt}-{ident}") for ident, formats, *case in _BAD_EXPORTS for fmt in formats
]


def _assert_rejected(error: ContractError, table: str, column: str | None, problem: str, detail: str) -> Violation:
    matching = [v for v in error.violations if (v.table, v.column, v.problem) == (table, column, problem)]
    assert matching, f"no {problem!r} violation for {table}.{column} among:\n{error}"
    assert detail in str(matching[0]), str(matching[0])
    where = f"{table}.{column}" if column else table
    assert f"{where}: {problem}" in str(error)
    return matching[0]


@pytest.fixture
def lake_with_history(tmp_path: Path) -> Path:
    """A lake that already holds one partition, which a rejected export must leave byte for byte."""
    raw_root = tmp_path / "lake"
    old = valid_tables()["catalog"].slice(0, 2)
    write_parquet(TABLES["catalog"], old, partition_dir(raw_root, "catalog", DAY1) / PART_FILE)
    return raw_root


@pytest.mark.parametrize(("fmt", "mutate", "table", "column", "problem", "detail"), BAD_EXPORTS)
def test_a_bad_export_is_rejected_and_writes_nothing(
    fmt: str,
    mutate: Callable[[Tables], None],
    table: str,
    column: str,
    problem: str,
    detail: str,
    tmp_path: Path,
    lake_with_history: Path,
) -> None:
    tables = valid_tables()
    mutate(tables)
    source = write_export(tmp_path / "export", tables, fmt)
    before = tree(lake_with_history)

    with pytest.raises(ContractError) as caught:
        load_export(source, lake_with_history)

    _assert_rejected(caught.value, table, column, problem, detail)
    assert tree(lake_with_history) == before


def test_a_type_violation_in_csv_names_the_row_and_file(tmp_path: Path) -> None:
    tables = valid_tables()
    _with("sessions", "pageviews", ["5", "2", "9", "1.0"], pa.string())(tables)
    source = write_export(tmp_path / "export", {"sessions": tables["sessions"]}, "csv")

    with pytest.raises(ContractError) as caught:
        load_export(source, tmp_path / "lake")

    violation = _assert_rejected(caught.value, "sessions", "pageviews", "type", "'1.0'")
    assert "data row 4" in violation.detail and "sessions.csv" in violation.detail
    assert not (tmp_path / "lake").exists()


def test_an_unknown_file_in_the_export_is_named(tmp_path: Path) -> None:
    source = write_export(tmp_path / "export", {"orders": valid_tables()["orders"]}, "csv")
    (source / "returns.csv").write_text("order_id\no-1\n", encoding="utf-8")
    (source / "notes.txt").write_text("hello\n", encoding="utf-8")

    with pytest.raises(ContractError) as caught:
        load_export(source, tmp_path / "lake")

    _assert_rejected(caught.value, "returns", None, "export layout", "returns.csv")
    _assert_rejected(caught.value, "notes", None, "export layout", "notes.txt")
    assert not (tmp_path / "lake").exists()


@pytest.mark.parametrize(
    ("layout", "detail"),
    [
        ({"orders.csv": "csv", "orders.parquet": "parquet"}, "several sources"),
        ({"orders/a.csv": "csv", "orders/b.parquet": "parquet"}, "mixes"),
        ({"orders/": None}, "holds no"),
        ({"orders/nested/a.csv": "csv"}, "orders/nested"),
    ],
    ids=["two-files", "mixed-folder", "empty-folder", "nested-folder"],
)
def test_an_ambiguous_table_layout_is_rejected(layout: dict[str, str | None], detail: str, tmp_path: Path) -> None:
    orders = valid_tables()["orders"]
    source = tmp_path / "export"
    for rel, fmt in layout.items():
        path = source / rel
        if fmt is None:
            path.mkdir(parents=True)
        elif fmt == "csv":
            write_csv(orders, path)
        else:
            pq.write_table(orders, path)

    with pytest.raises(ContractError) as caught:
        load_export(source, tmp_path / "lake")

    _assert_rejected(caught.value, "orders", None, "export layout", detail)
    assert not (tmp_path / "lake").exists()


def test_an_export_with_no_table_is_rejected(tmp_path: Path) -> None:
    source = tmp_path / "export"
    source.mkdir()
    (source / ".DS_Store").touch()

    with pytest.raises(ContractError) as caught:
        load_export(source, tmp_path / "lake")

    assert caught.value.violations[0].problem == "export layout"
    assert "no contract table" in str(caught.value)


def test_an_unreadable_file_is_reported(tmp_path: Path) -> None:
    source = tmp_path / "export"
    source.mkdir()
    (source / "orders.parquet").write_bytes(b"not parquet at all")
    (source / "sessions.csv").write_text("session_id,customer_id\ns-1,c-1,extra\n", encoding="utf-8")

    with pytest.raises(ContractError) as caught:
        load_export(source, tmp_path / "lake")

    _assert_rejected(caught.value, "orders", None, "unreadable", "orders.parquet")
    _assert_rejected(caught.value, "sessions", None, "unreadable", "sessions.csv")


def test_a_failing_table_next_to_a_valid_one_writes_nothing_at_all(tmp_path: Path, lake_with_history: Path) -> None:
    tables = valid_tables()
    _with("sessions", "device", _row_values("sessions", "device", {0: "smartwatch"}))(tables)
    _with("orders", "unit_price_paid", _row_values("orders", "unit_price_paid", {2: -1.0}))(tables)
    source = write_export(tmp_path / "export", tables, "csv")
    before = tree(lake_with_history)

    with pytest.raises(ContractError) as caught:
        load_export(source, lake_with_history)

    # every violation of every table is reported, not only the first table's
    _assert_rejected(caught.value, "sessions", "device", "unknown category", "smartwatch")
    _assert_rejected(caught.value, "orders", "unit_price_paid", "range", "-1.0")
    assert tree(lake_with_history) == before
    assert not any(".staging" in p for p in tree(lake_with_history))


def test_a_duplicate_key_across_two_files_of_one_table_is_caught(tmp_path: Path) -> None:
    sessions = valid_tables()["sessions"]
    source = tmp_path / "export"
    write_csv(sessions, source / "sessions" / "part-0.csv")
    write_csv(sessions.slice(0, 1), source / "sessions" / "part-1.csv")

    with pytest.raises(ContractError) as caught:
        load_export(source, tmp_path / "lake")

    violation = _assert_rejected(caught.value, "sessions", "session_id", "duplicate key", "s-1")
    assert "part-0.csv" in violation.detail and "part-1.csv" in violation.detail


# --- the command line -----------------------------------------------------------------------------------------


def test_cli_exits_2_and_lists_violations_on_stderr(tmp_path: Path) -> None:
    tables = valid_tables()
    _with("sessions", "device", _row_values("sessions", "device", {0: "smartwatch"}))(tables)
    source = write_export(tmp_path / "export", tables, "csv")
    raw_root = tmp_path / "lake"

    result = CliRunner().invoke(load_export_command, [str(source), "--raw-root", str(raw_root)])

    assert result.exit_code == 2, result.output
    assert "sessions.device: unknown category" in result.stderr
    assert "smartwatch" in result.stderr
    assert "nothing written" in result.stderr
    assert not raw_root.exists()


def test_cli_loads_and_summarises(tmp_path: Path) -> None:
    source = write_export(tmp_path / "export", valid_tables(), "parquet")
    raw_root = tmp_path / "lake"

    result = CliRunner().invoke(load_export_command, [str(source), "--raw-root", str(raw_root)])

    assert result.exit_code == 0, result.output
    assert "loaded 5 table(s)" in result.stdout
    assert f"sessions: 4 row(s) from sessions.parquet; 2 partition(s): {DAY1}..{DAY2}" in result.stdout
    assert read_table(raw_root, TABLES["orders"]).num_rows == 3


def test_cli_requires_raw_root(tmp_path: Path) -> None:
    source = write_export(tmp_path / "export", valid_tables(), "parquet")
    result = CliRunner().invoke(load_export_command, [str(source)])
    assert result.exit_code == 2 and "--raw-root" in result.output
