"""The raw contract's schemas: they survive the lake writer unchanged, and their declarations are coherent."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from feature_repo.contract.data_dictionary import data_dictionary_command, render_data_dictionary
from feature_repo.contract.lake import write_parquet
from feature_repo.contract.schema import KPI_NAMES, SESSION_KPIS, TABLES, Implies, NotBefore, Table

REPO_ROOT = Path(__file__).resolve().parents[2]
DATA_DICTIONARY = REPO_ROOT / "docs" / "data_dictionary.md"
UTC = dt.UTC

# Two rows per dtype; the second row is null where the column allows it, so nullability is exercised too.
_SAMPLE_VALUES: dict[str, tuple[object, object]] = {
    "string": ("a-1", "b_2"),
    "int64": (1, 9_007_199_254_740_993),  # above 2**53: would change if anything went through a float
    "float64": (0.1, 1234.5),
    "bool": (True, False),
    "date": (dt.date(2024, 5, 1), dt.date(2024, 12, 31)),
    "timestamp": (
        dt.datetime(2024, 5, 1, 0, 0, 0, 1, tzinfo=UTC),
        dt.datetime(2024, 5, 1, 23, 59, 59, 999_999, tzinfo=UTC),
    ),
    "list<string>": (["control", "treatment"], []),
    "list<float64>": ([0.5, 0.5], [1.0]),
}


def _sample(table: Table) -> pa.Table:
    columns = {}
    for col in table.columns:
        first, second = _SAMPLE_VALUES[col.dtype]
        columns[col.name] = [first, None if col.nullable else second]
    return pa.Table.from_pydict(columns, schema=table.arrow_schema())


@pytest.mark.parametrize("name", list(TABLES))
def test_schema_round_trips_through_the_lake_writer(name: str, tmp_path: Path) -> None:
    table = TABLES[name]
    data = _sample(table)
    path = tmp_path / "part.parquet"
    write_parquet(table, data, path)

    back = pq.read_table(path)  # no schema passed: what the file itself declares

    assert back.schema.equals(table.arrow_schema()), f"{back.schema}\n!=\n{table.arrow_schema()}"
    assert back.equals(data)
    for field in back.schema:
        if pa.types.is_timestamp(field.type):
            assert field.type == pa.timestamp("us", tz="UTC")
        assert field.nullable == table.column(field.name).nullable


@pytest.mark.parametrize("name", list(TABLES))
def test_lake_writer_is_deterministic(name: str, tmp_path: Path) -> None:
    table = TABLES[name]
    write_parquet(table, _sample(table), tmp_path / "a.parquet")
    write_parquet(table, _sample(table), tmp_path / "b.parquet")
    assert (tmp_path / "a.parquet").read_bytes() == (tmp_path / "b.parquet").read_bytes()


@pytest.mark.parametrize("name", list(TABLES))
def test_key_and_partition_column_are_declared_columns(name: str) -> None:
    table = TABLES[name]
    names = table.column_names
    assert len(names) == len(set(names)), "duplicate column names"
    assert table.key and set(table.key) <= set(names)
    assert not any(table.column(k).nullable for k in table.key)
    partition = table.column(table.partition_by)
    assert not partition.nullable
    if table.kind == "entity snapshot":
        assert table.partition_by == "snapshot_date" and partition.dtype == "date"
        assert "snapshot_date" in table.key
    else:
        assert partition.dtype == "timestamp"


def test_sessions_carry_at_least_twenty_kpis() -> None:
    sessions = TABLES["sessions"]
    assert len(SESSION_KPIS) >= 20
    assert set(KPI_NAMES) <= set(sessions.column_names)
    for kpi in SESSION_KPIS:
        column = sessions.column(kpi.name)
        assert column.dtype in ("int64", "float64")
        assert column.unit and column.min == 0.0 and not column.nullable


@pytest.mark.parametrize("name", list(TABLES))
def test_column_declarations_are_sane(name: str) -> None:
    table = TABLES[name]
    assert table.description and table.grain
    for col in table.columns:
        assert re.fullmatch(r"[a-z][a-z0-9_]*", col.name), col.name
        assert col.description.strip(), f"{col.name} has no description"
        if col.allowed is not None:
            assert col.dtype == "string" and col.allowed and len(set(col.allowed)) == len(col.allowed)
            assert all(re.fullmatch(r"[a-z0-9_]+", value) for value in col.allowed)
        if col.min is not None or col.max is not None:
            assert col.dtype in ("int64", "float64"), f"{col.name}: a range on a {col.dtype} column"
        if col.min is not None and col.max is not None:
            assert col.min < col.max
        if col.pattern is not None:
            assert col.dtype == "string"
            re.compile(col.pattern)
            # the conformance check runs the pattern with Arrow (RE2): it must compile there as well
            pc.match_substring_regex(pa.array(["x"]), f"^(?:{col.pattern})$")
    for rule in table.rules:
        if isinstance(rule, Implies):
            assert table.column(rule.if_true).dtype == table.column(rule.then_true).dtype == "bool"
        else:
            assert isinstance(rule, NotBefore)
            assert table.column(rule.later).dtype == table.column(rule.earlier).dtype
            assert table.column(rule.later).dtype in ("date", "timestamp")


def test_identifier_pattern_accepts_ids_and_rejects_junk() -> None:
    pattern = TABLES["sessions"].column("session_id").pattern
    assert pattern is not None
    for good in ("s-000001", "cust_42", "urn:x.1"):
        assert re.fullmatch(pattern, good)
    for bad in ("", "has space", "a" * 65, "semi;colon"):
        assert not re.fullmatch(pattern, bad)


def test_data_dictionary_is_up_to_date() -> None:
    assert DATA_DICTIONARY.is_file(), "docs/data_dictionary.md is missing: run `make docs`"
    assert DATA_DICTIONARY.read_text(encoding="utf-8") == render_data_dictionary(), (
        "docs/data_dictionary.md is out of date: run `make docs`"
    )


def test_data_dictionary_documents_every_table_and_column() -> None:
    text = render_data_dictionary()
    for table in TABLES.values():
        assert f"### `{table.name}`" in text
        for col in table.columns:
            assert f"| `{col.name}` |" in text


def test_data_dictionary_check_flags_a_stale_file(tmp_path: Path) -> None:
    output = tmp_path / "dictionary.md"
    runner = CliRunner()

    missing = runner.invoke(data_dictionary_command, ["--output", str(output), "--check"])
    assert missing.exit_code == 1 and "missing" in missing.output

    written = runner.invoke(data_dictionary_command, ["--output", str(output)])
    assert written.exit_code == 0 and output.read_text(encoding="utf-8") == render_data_dictionary()
    assert runner.invoke(data_dictionary_command, ["--output", str(output), "--check"]).exit_code == 0

    output.write_text(output.read_text(encoding="utf-8") + "hand edit\n", encoding="utf-8")
    stale = runner.invoke(data_dictionary_command, ["--output", str(output), "--check"])
    assert stale.exit_code == 1 and "out of date" in stale.output
