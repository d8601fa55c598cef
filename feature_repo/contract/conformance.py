"""Check an Arrow table against its raw contract and say, column by column, what does not conform.

This is the structural gate at the lake's door (types, nulls, ranges, allowed values, patterns, keys, row
rules). It works on Arrow data *before* anything is converted, so a value that would need a lossy or
guessed conversion is reported instead of coerced. Statistical expectations (row counts, null rates,
distributions) are the Great Expectations suites' job further down the pipeline.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from feature_repo.contract.schema import Column, Implies, NotBefore, Table

_SAMPLES = 3  # offending values quoted per violation


@dataclass(frozen=True)
class Violation:
    """One way a table breaks its contract."""

    table: str
    column: str | None  # None for table-level problems (duplicate key over several columns, empty input)
    # one of: missing column, unexpected column, type, nulls, range, unknown category, pattern, duplicate key, rule;
    # the export loader adds: export layout (a file or folder that is not a contract table), unreadable (a file
    # that is not valid parquet or CSV)
    problem: str
    detail: str

    def __str__(self) -> str:
        where = f"{self.table}.{self.column}" if self.column else self.table
        return f"{where}: {self.problem}: {self.detail}"


class ContractError(ValueError):
    """Raised when data does not conform; carries every violation found."""

    def __init__(self, violations: list[Violation]):
        self.violations = violations
        lines = "\n".join(f"  - {v}" for v in violations)
        super().__init__(f"{len(violations)} contract violation(s):\n{lines}")


def _lossless_cast(values: pa.ChunkedArray, target: pa.DataType) -> pa.ChunkedArray | None:
    """Cast only where no value can change: wider ints and floats, other string layouts, timestamp units.

    Returns None when the source type is not an accepted representation of ``target``.
    """
    source = values.type
    if source.equals(target):
        return values
    if pa.types.is_dictionary(source):
        return _lossless_cast(values.cast(source.value_type), target)
    ok = (
        (pa.types.is_integer(target) and pa.types.is_integer(source))
        or (pa.types.is_floating(target) and pa.types.is_floating(source))
        or (pa.types.is_string(target) and (pa.types.is_large_string(source) or pa.types.is_string_view(source)))
        or (pa.types.is_date(target) and pa.types.is_date(source))
        or (
            pa.types.is_timestamp(target)
            and pa.types.is_timestamp(source)
            and source.tz is not None
            and source.tz.upper() in ("UTC", "+00:00", "Z", "ETC/UTC")
        )
    )
    if pa.types.is_list(target) and (pa.types.is_list(source) or pa.types.is_large_list(source)):
        # the items must be lossless too: a plain list cast would turn [1, 2] into ["1", "2"] or parse strings
        ok = _lossless_cast(pa.chunked_array([], source.value_type), target.value_type) is not None
    if not ok:
        return None
    try:
        return values.cast(target, safe=True)  # safe: raises rather than truncate or overflow
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None


def _samples(values: pa.ChunkedArray, mask: pa.ChunkedArray) -> str:
    picked = values.filter(mask).unique().to_pylist()[:_SAMPLES]
    return ", ".join(repr(v) for v in picked)


def _check_values(table: Table, col: Column, values: pa.ChunkedArray) -> list[Violation]:
    out: list[Violation] = []

    def add(problem: str, detail: str) -> None:
        out.append(Violation(table.name, col.name, problem, detail))

    nulls = values.null_count
    if nulls and not col.nullable:
        add("nulls", f"{nulls} null value(s) in a column that must not be null")
    if len(values) == nulls:
        return out
    if col.min is not None or col.max is not None:
        checks = []
        if col.min is not None:
            checks.append(pc.less(values, col.min))
        if col.max is not None:
            checks.append(pc.greater(values, col.max))
        if pa.types.is_floating(values.type):
            # NaN compares false with every bound, and an infinite amount or duration is never a measurement
            checks.append(pc.invert(pc.is_finite(values)))
        bad = checks[0]
        for extra in checks[1:]:
            bad = pc.or_(bad, extra)
        bad = pc.fill_null(bad, False)
        if n := pc.sum(bad).as_py():
            low = "-inf" if col.min is None else col.min
            high = "inf" if col.max is None else col.max
            unit = f" {col.unit}" if col.unit else ""
            add("range", f"{n} value(s) outside [{low}, {high}]{unit}, e.g. {_samples(values, bad)}")
    if col.allowed is not None:
        bad = pc.fill_null(pc.invert(pc.is_in(values, value_set=pa.array(col.allowed))), False)
        if n := pc.sum(bad).as_py():
            add("unknown category", f"{n} value(s) not in {list(col.allowed)}, e.g. {_samples(values, bad)}")
    if col.pattern is not None:
        bad = pc.fill_null(pc.invert(pc.match_substring_regex(values, f"^(?:{col.pattern})$")), False)
        if n := pc.sum(bad).as_py():
            add("pattern", f"{n} value(s) do not match /{col.pattern}/, e.g. {_samples(values, bad)}")
    return out


def _check_rule(table: Table, data: pa.Table, rule: Implies | NotBefore) -> Violation | None:
    if isinstance(rule, Implies):
        a, b = data[rule.if_true], data[rule.then_true]
        bad = pc.fill_null(pc.and_(a, pc.invert(b)), False)
        column = rule.then_true
    else:
        bad = pc.fill_null(pc.less(data[rule.later], data[rule.earlier]), False)
        column = rule.later
    n = pc.sum(bad).as_py()
    if not n:
        return None
    return Violation(table.name, column, "rule", f"{n} row(s) break the rule {rule.describe()}")


def _check_key(table: Table, data: pa.Table) -> Violation | None:
    if data.num_rows == 0:
        return None
    counts = data.select(list(table.key)).group_by(list(table.key)).aggregate([([], "count_all")])
    dup = counts.filter(pc.greater(counts["count_all"], 1))
    if dup.num_rows == 0:
        return None
    example = {k: dup[k][0].as_py() for k in table.key}
    column = table.key[0] if len(table.key) == 1 else None
    return Violation(
        table.name, column, "duplicate key",
        f"{dup.num_rows} key value(s) of ({', '.join(table.key)}) occur more than once, e.g. {example}",
    )


def conform(table: Table, data: pa.Table) -> tuple[pa.Table | None, list[Violation]]:
    """Check ``data`` against ``table``.

    Returns the data in the contract's exact schema and column order, or None, with every violation found.
    The only conversions made are lossless ones (see ``_lossless_cast``).
    """
    violations: list[Violation] = []
    counts = Counter(data.column_names)
    for name in table.column_names:
        if name not in counts:
            violations.append(Violation(table.name, name, "missing column", "required by the contract"))
    for name, n in counts.items():
        if name not in table.column_names:
            violations.append(Violation(table.name, name, "unexpected column", "not in the contract"))
        elif n > 1:
            violations.append(Violation(table.name, name, "unexpected column", f"appears {n} times, allowed once"))
    present = {name for name, n in counts.items() if n == 1}
    columns: dict[str, pa.ChunkedArray] = {}
    for col in table.columns:
        if col.name not in present:
            continue
        values = _lossless_cast(data[col.name], col.arrow_type)
        if values is None:
            violations.append(
                Violation(table.name, col.name, "type", f"expected {col.arrow_type}, got {data[col.name].type}")
            )
            continue
        columns[col.name] = values
        violations.extend(_check_values(table, col, values))
    if len(columns) != len(table.columns):
        return None, violations
    typed = pa.Table.from_arrays([columns[c] for c in table.column_names], schema=table.arrow_schema())
    for rule in table.rules:
        if (v := _check_rule(table, typed, rule)) is not None:
            violations.append(v)
    if (v := _check_key(table, typed)) is not None:
        violations.append(v)
    return (None if violations else typed), violations


def require_conformance(table: Table, data: pa.Table) -> pa.Table:
    """``conform`` that raises ``ContractError`` listing every violation."""
    typed, violations = conform(table, data)
    if violations:
        raise ContractError(violations)
    assert typed is not None
    return typed
