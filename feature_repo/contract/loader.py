"""Load an event export that follows the raw contract into the lake, all tables or nothing.

An export is a folder holding, per contract table, one of ``<table>.parquet``, ``<table>.csv`` or a folder
``<table>/`` of parquet or CSV files (concatenated in file-name order). Tables may be absent, but every
entry must be a contract table: nothing in the export is silently ignored, except the files that Spark,
Hadoop and pyarrow datasets treat as hidden (names starting with ``.`` or ``_``, such as ``_SUCCESS``),
which are logged and listed in the report.

Parquet is checked as written (``conform`` allows only lossless casts). CSV carries no types, so every field
is read as text and parsed strictly with the syntax of ``CSV_SYNTAX``; a value that does not parse is a
``type`` violation, never a guess. Every table is checked before anything is written; with a single violation
the lake is left exactly as it was. Otherwise each table is split into its date partitions and all of them are
swapped in together, replacing the lake's partitions of the same dates, so loading the same export twice
writes the same bytes.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import click
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

from feature_repo.contract.conformance import ContractError, Violation, conform
from feature_repo.contract.lake import PART_FILE, partition_dir, split_by_date, staged_partitions, write_parquet
from feature_repo.contract.schema import ARROW_TYPES, TABLES, DType, Table, get_table

logger = logging.getLogger(__name__)

FORMATS = ("parquet", "csv")
_SAMPLES = 3  # offending values quoted per violation

# How a CSV field must be written for each contract type; an empty field (quoted or not) is a null.
CSV_SYNTAX: dict[DType, str] = {
    "string": "any text, as is",
    "int64": (
        "an integer: digits with an optional leading '-', no '+', decimal point or exponent "
        "('1.0', '1e3' are rejected)"
    ),
    "float64": "a decimal number such as '12', '-0.5', '.5' or '1.5e3'; 'nan' and 'inf' are rejected",
    "bool": "'true' or 'false', in any letter case ('1'/'0', 't'/'f', 'yes'/'no' are rejected)",
    "date": "an ISO 8601 calendar date 'YYYY-MM-DD'",
    "timestamp": (
        "an ISO 8601 date and time with seconds, at most 6 decimals and an explicit UTC offset: "
        "'2024-05-01T13:45:00Z', '2024-05-01 15:45:00.25+02:00', '+0200' and '+02' also; "
        "naive timestamps are rejected"
    ),
    "list<string>": 'a JSON array of strings, e.g. \'["control", "treatment"]\'',
    "list<float64>": "a JSON array of numbers, e.g. '[0.5, 0.5]'",
}

_INT = r"-?[0-9]+"
_FLOAT = r"-?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?"
_DATE = r"[0-9]{4}-[0-9]{2}-[0-9]{2}"
_LOCAL_TIME = _DATE + r"[T ][0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,6})?"
_TIMESTAMP = _LOCAL_TIME + r"(?:Z|[+-][0-9]{2}(?::?[0-9]{2})?)"


@dataclass(frozen=True)
class TableLoad:
    """What was loaded for one table: its source files (relative to the export), rows and partition dates."""

    table: str
    source_files: tuple[str, ...]
    rows: int
    partitions: tuple[dt.date, ...]


@dataclass(frozen=True)
class LoadReport:
    """The outcome of a successful load: one ``TableLoad`` per table found, and the hidden files skipped."""

    source: Path
    raw_root: Path
    tables: tuple[TableLoad, ...]
    skipped_files: tuple[str, ...] = ()

    def summary(self) -> list[str]:
        """One line per table, for people."""
        lines = [f"loaded {len(self.tables)} table(s) from {self.source} into {self.raw_root}"]
        for t in self.tables:
            days = f"{t.partitions[0]}..{t.partitions[-1]}" if t.partitions else "none"
            lines.append(
                f"  {t.table}: {t.rows} row(s) from {', '.join(t.source_files)}; "
                f"{len(t.partitions)} partition(s): {days}"
            )
        if self.skipped_files:
            lines.append(f"  skipped hidden files: {', '.join(self.skipped_files)}")
        return lines


def _hidden(path: Path) -> bool:
    return path.name.startswith((".", "_"))


def _format_of(path: Path) -> str | None:
    suffix = path.suffix[1:]
    return suffix if path.is_file() and suffix in FORMATS else None


def discover_export(source: Path) -> tuple[dict[str, list[Path]], list[str], list[Violation]]:
    """Map each contract table found in ``source`` to its data files (sorted by name).

    Returns the tables' files, the hidden files skipped (relative paths) and the layout violations: an entry
    that is no contract table, two sources for one table, mixed formats, an empty table folder or one holding
    anything but .parquet and .csv files.
    """
    candidates: dict[str, list[Path]] = {}
    skipped: list[str] = []
    violations: list[Violation] = []

    def layout(table: str, detail: str) -> None:
        violations.append(Violation(table, None, "export layout", detail))

    for entry in sorted(source.iterdir()):
        if _hidden(entry):
            skipped.append(entry.name)
            continue
        name = entry.name if entry.is_dir() else entry.stem
        if not entry.is_dir() and _format_of(entry) is None:
            layout(name, f"{entry.name} is not a .parquet or .csv file, nor a table folder")
        elif name not in TABLES:
            layout(name, f"{entry.name} matches no contract table; the contract has {', '.join(TABLES)}")
        else:
            candidates.setdefault(name, []).append(entry)

    found: dict[str, list[Path]] = {}
    for name, entries in candidates.items():
        if len(entries) > 1:
            layout(name, f"several sources for one table: {', '.join(e.name for e in entries)}; export only one")
            continue
        entry = entries[0]
        if not entry.is_dir():
            found[name] = [entry]
            continue
        files: list[Path] = []
        others: list[str] = []
        for item in sorted(entry.iterdir()):
            rel = f"{entry.name}/{item.name}"
            if _hidden(item):
                skipped.append(rel)
            elif _format_of(item) is None:
                others.append(rel)
            else:
                files.append(item)
        formats = sorted({f.suffix for f in files})
        if others:
            layout(name, f"{', '.join(others)}: not .parquet or .csv files (a table folder holds no subfolders)")
        if len(formats) > 1:
            layout(name, f"{entry.name}/ mixes {' and '.join(formats)} files; export one format per table")
        elif not files and not others:
            layout(name, f"{entry.name}/ holds no .parquet or .csv file")
        elif files:
            found[name] = files
    if not found and not violations:
        layout(
            source.name or str(source),
            f"no contract table in {source}; expected <table>.parquet, <table>.csv or <table>/ for one of "
            f"{', '.join(TABLES)}",
        )
    return found, skipped, violations


def _unreadable(table: Table, rel: str, error: Exception) -> Violation:
    return Violation(table.name, None, "unreadable", f"{rel}: {error}")


def _read_parquet(table: Table, path: Path, rel: str) -> tuple[pa.Table | None, list[Violation]]:
    try:
        data = pq.ParquetFile(path).read()
    except (pa.ArrowException, OSError) as error:
        return None, [_unreadable(table, rel, error)]
    return conform(table, data)


def _parse_by_cast(
    values: pa.ChunkedArray, syntax: str, target: pa.DataType
) -> tuple[pa.ChunkedArray, pa.ChunkedArray]:
    """Parse text that matches ``syntax`` (a regular expression) with Arrow's strict cast.

    Returns the parsed values (null where the text was null or bad) and a mask of the bad ones.
    """
    ok = pc.fill_null(pc.match_substring_regex(values, f"^(?:{syntax})$"), True)
    candidate = pc.if_else(ok, values, pa.scalar(None, pa.string()))
    try:
        return pc.cast(candidate, target), pc.invert(ok)
    except pa.ArrowInvalid:
        pass
    # Right syntax, impossible value (an integer over int64, 30 February): find which, one distinct value at a time.
    failing = []
    for text in pc.unique(candidate).to_pylist():
        if text is None:
            continue
        try:
            pc.cast(pa.array([text], pa.string()), target)
        except pa.ArrowInvalid:
            failing.append(text)
    ok = pc.and_(ok, pc.invert(pc.is_in(values, value_set=pa.array(failing, pa.string()))))
    ok = pc.fill_null(ok, True)
    return pc.cast(pc.if_else(ok, values, pa.scalar(None, pa.string())), target), pc.invert(ok)


def _parse_bool(values: pa.ChunkedArray) -> tuple[pa.ChunkedArray, pa.ChunkedArray]:
    lower = pc.utf8_lower(values)
    ok = pc.or_(pc.is_null(values), pc.is_in(lower, value_set=pa.array(["true", "false"])))
    parsed = pc.if_else(ok, pc.equal(lower, "true"), pa.scalar(None, pa.bool_()))
    return parsed, pc.invert(ok)


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not a number")


def _json_list(text: str, item_ok: Callable[[object], bool]) -> list[object] | None:
    try:
        value = json.loads(text, parse_constant=_reject_constant)
    except ValueError:
        return None
    if not isinstance(value, list) or not all(item_ok(item) for item in value):
        return None
    return value


def _is_text(item: object) -> bool:
    return isinstance(item, str)


def _is_number(item: object) -> bool:
    # JSON true/false load as bool, a subclass of int; 1e400 loads as inf
    return isinstance(item, int | float) and not isinstance(item, bool) and math.isfinite(item)


def _parse_json_lists(values: pa.ChunkedArray, dtype: DType) -> tuple[pa.ChunkedArray, pa.ChunkedArray]:
    item_ok = _is_text if dtype == "list<string>" else _is_number
    parsed: list[list[object] | None] = []
    bad: list[bool] = []
    for text in values.to_pylist():
        items = None if text is None else _json_list(text, item_ok)
        parsed.append(items)
        bad.append(text is not None and items is None)
    return pa.chunked_array([pa.array(parsed, ARROW_TYPES[dtype])]), pa.chunked_array([pa.array(bad, pa.bool_())])


def parse_csv_column(dtype: DType, values: pa.ChunkedArray) -> tuple[pa.ChunkedArray, pa.ChunkedArray]:
    """Parse a CSV column read as text into ``dtype`` following ``CSV_SYNTAX``.

    Returns the typed values (null where the text was empty or did not parse) and a boolean mask, true where
    a non-empty text did not parse.
    """
    if dtype == "string":
        return values, pa.chunked_array([pa.repeat(False, len(values))], pa.bool_())
    if dtype == "bool":
        return _parse_bool(values)
    if dtype in ("list<string>", "list<float64>"):
        return _parse_json_lists(values, dtype)
    syntax = {"int64": _INT, "float64": _FLOAT, "date": _DATE, "timestamp": _TIMESTAMP}[dtype]
    return _parse_by_cast(values, syntax, ARROW_TYPES[dtype])


def _type_violation(
    table: Table, dtype: DType, column: str, values: pa.ChunkedArray, bad: pa.ChunkedArray
) -> Violation:
    count = pc.sum(bad).as_py()
    samples = ", ".join(repr(v) for v in pc.unique(values.filter(bad)).to_pylist()[:_SAMPLES])
    first_row = pc.index(bad, True).as_py() + 1
    detail = f"{count} value(s) do not parse as {dtype}, e.g. {samples} (first at data row {first_row})"
    if dtype == "timestamp":
        naive = pc.sum(pc.fill_null(pc.match_substring_regex(values, f"^(?:{_LOCAL_TIME})$"), False)).as_py()
        if naive:
            detail += f"; {naive} of them are naive (no UTC offset)"
    return Violation(table.name, column, "type", f"{detail}; expected {CSV_SYNTAX[dtype]}")


def _read_csv_text(path: Path) -> pa.Table:
    """Read a CSV file with a header row, every column as text; an empty field, quoted or not, is null.

    Raises ``ValueError`` or ``pyarrow.ArrowInvalid`` when the file is not readable CSV (no header, ragged rows,
    invalid UTF-8).
    """
    # pyarrow can only type columns it knows by name, so the header is read first (utf-8-sig drops a BOM).
    with path.open(newline="", encoding="utf-8-sig") as handle:
        header = next(csv.reader(handle), None)
    if not header:
        raise ValueError("no header row")
    return pcsv.read_csv(
        path,
        parse_options=pcsv.ParseOptions(newlines_in_values=True),
        convert_options=pcsv.ConvertOptions(
            column_types={name: pa.string() for name in header},
            null_values=[""],
            strings_can_be_null=True,
            quoted_strings_can_be_null=True,
        ),
    )


def _read_csv(table: Table, path: Path, rel: str) -> tuple[pa.Table | None, list[Violation]]:
    try:
        text = _read_csv_text(path)
    except (pa.ArrowException, OSError, ValueError) as error:
        return None, [_unreadable(table, rel, error)]
    names = text.column_names
    once = {name for name in names if names.count(name) == 1}
    columns: list[pa.ChunkedArray] = []
    failed: set[str] = set()
    violations: list[Violation] = []
    for name, values in zip(names, text.columns, strict=True):
        if name not in once or name not in table.column_names:
            columns.append(values)  # left as text for conform to report as unexpected
            continue
        dtype = table.column(name).dtype
        parsed, bad = parse_csv_column(dtype, values)
        if pc.any(bad).as_py():
            failed.add(name)
            violations.append(_type_violation(table, dtype, name, values, bad))
        columns.append(parsed)
    typed, conform_violations = conform(table, pa.Table.from_arrays(columns, names=names))
    # A column that failed to parse holds nulls where its bad values were: what conform says about it, or
    # about a key that includes it, would be an echo of the type violation already reported.
    key_failed = bool(failed & set(table.key))
    for v in conform_violations:
        if v.column in failed or (key_failed and v.problem == "duplicate key"):
            continue
        violations.append(v)
    return (None if violations else typed), violations


def _in_file(violation: Violation, rel: str) -> Violation:
    if violation.problem in ("unreadable", "export layout"):
        return violation
    return Violation(violation.table, violation.column, violation.problem, f"{violation.detail} [in {rel}]")


def read_export_table(table: Table, source: Path, files: list[Path]) -> tuple[pa.Table | None, list[Violation]]:
    """Read and check one table's files; returns the rows in the contract's schema (or None) and the violations.

    Every file is checked on its own (violations name the file), then, for several files, their concatenation
    (a key may repeat across files).
    """
    parts: list[pa.Table] = []
    violations: list[Violation] = []
    for path in files:
        rel = path.relative_to(source).as_posix()
        reader = _read_parquet if path.suffix == ".parquet" else _read_csv
        typed, found = reader(table, path, rel)
        violations.extend(_in_file(v, rel) for v in found)
        if typed is not None:
            parts.append(typed)
            logger.info("%s: %s conforms (%d rows)", table.name, rel, typed.num_rows)
    if violations:
        return None, violations
    if len(parts) == 1:
        return parts[0], []
    combined, found = conform(table, pa.concat_tables(parts))
    across = ", ".join(p.relative_to(source).as_posix() for p in files)
    return combined, [Violation(v.table, v.column, v.problem, f"{v.detail} [across {across}]") for v in found]


def load_export(source: Path, raw_root: Path) -> LoadReport:
    """Check every table of the export at ``source`` and, if all conform, write them into the lake at ``raw_root``.

    Raises ``ContractError`` with every violation of every table (layout, unreadable files, types, values,
    keys, row rules) and then writes nothing. On success, each table's date partitions replace those of the same
    dates in the lake, all tables in one staged swap.
    """
    source, raw_root = Path(source), Path(raw_root)
    if not source.is_dir():
        raise NotADirectoryError(f"export folder {source} does not exist or is not a folder")
    found, skipped, violations = discover_export(source)
    for name in skipped:
        logger.warning("skipping hidden file %s in the export", name)
    checked: dict[str, tuple[list[Path], pa.Table]] = {}
    for name, files in found.items():
        table = get_table(name)
        typed, table_violations = read_export_table(table, source, files)
        violations.extend(table_violations)
        if typed is not None:
            checked[name] = (files, typed)
    if violations:
        logger.error("export %s breaks the contract in %d way(s); nothing written", source, len(violations))
        raise ContractError(violations)

    loads: list[TableLoad] = []
    with staged_partitions(raw_root) as stage:
        for name, (files, data) in checked.items():
            table = get_table(name)
            days: list[dt.date] = []
            for day, rows in split_by_date(table, data):
                write_parquet(table, rows, partition_dir(stage, name, day) / PART_FILE)
                days.append(day)
            if not days:
                logger.warning("%s: the export holds no rows; no partition written", name)
            logger.info("%s: staged %d row(s) in %d partition(s)", name, data.num_rows, len(days))
            loads.append(
                TableLoad(name, tuple(f.relative_to(source).as_posix() for f in files), data.num_rows, tuple(days))
            )
    logger.info("export %s loaded into %s", source, raw_root)
    return LoadReport(source, raw_root, tuple(loads), tuple(skipped))


@click.command("load-export")
@click.argument("source", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option(
    "--raw-root", required=True, type=click.Path(file_okay=False, path_type=Path), help="Root folder of the raw lake."
)
def load_export_command(source: Path, raw_root: Path) -> None:
    """Check an export in the raw contract and load it into the lake; exit 2 with every violation if it breaks it."""
    try:
        report = load_export(source, raw_root)
    except ContractError as error:
        for violation in error.violations:
            click.echo(str(violation), err=True)
        click.echo(f"{len(error.violations)} contract violation(s); nothing written to {raw_root}", err=True)
        raise click.exceptions.Exit(2) from None
    for line in report.summary():
        click.echo(line)
