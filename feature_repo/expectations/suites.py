"""Expectation suites generated from the definitions, never listed by hand per column.

For every table of a layer (raw contract tables, offline feature tables) the suite holds, in this order:

* contract (structural), from ``feature_repo.contract.schema`` / ``feature_repo.features.tables``:
  the exact column set, each column's type, not-null for every non-nullable column, the allowed values,
  the contract's min/max, the full-match pattern, the key's uniqueness, the row rules (``Implies``,
  ``NotBefore``), and that the partition column falls on the partition's date;
* statistics, from ``config/validation.yaml``: row count bounds, null fractions, plausible value ranges,
  mean ranges and column pairs.

The suites do not depend on the date: the partition's window is a suite parameter (``partition_start``,
``partition_end``) passed at validation time, see :func:`suite_parameters`.

Great Expectations validates a pandas frame here; :func:`to_validation_frame` converts the Arrow data so
that the pandas dtypes keep the Arrow type distinctions the type expectations check (see its docstring).
"""

from __future__ import annotations

import datetime as dt
import logging
import os
from typing import TYPE_CHECKING, Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from feature_repo.contract.schema import Column, Implies, NotBefore
from feature_repo.expectations.config import (
    Dataset,
    Layer,
    TableChecks,
    ValidationConfig,
    dataset,
    dataset_names,
    get_validation_config,
)

if TYPE_CHECKING:
    from great_expectations import ExpectationSuite
    from great_expectations.expectations import Expectation

logger = logging.getLogger(__name__)

CONTRACT = "contract"  # meta "source" of an expectation generated from a definition
STATISTICS = "validation.yaml"  # meta "source" of an expectation generated from the validation config
PARTITION_START = "partition_start"
PARTITION_END = "partition_end"

# GE's pandas type check compares numpy/pandas dtypes (or, for object columns, the values' Python types).
# It cannot express a time zone (GE 1.24 fails every type name on a tz-aware column), so
# to_validation_frame hands UTC instants and dates over as naive datetime64[ns] (UTC wall clock).
_PANDAS_TYPES: dict[str, list[str]] = {
    "string": ["str"],
    "int64": ["int64"],
    "float64": ["float64"],
    "bool": ["bool"],
    "date": ["datetime64[ns]"],
    "timestamp": ["datetime64[ns]"],
    "list<string>": ["list"],
    "list<float64>": ["list"],
}
# to_validation_frame turns integers with nulls into pandas' nullable integers (numpy ints cannot hold a null)
_NULLABLE_INTS: dict[pa.DataType, pd.api.extensions.ExtensionDtype] = {
    pa.int8(): pd.Int8Dtype(),
    pa.int16(): pd.Int16Dtype(),
    pa.int32(): pd.Int32Dtype(),
    pa.int64(): pd.Int64Dtype(),
}
_UTC = ("UTC", "+00:00", "Z", "ETC/UTC")


def great_expectations_module() -> Any:
    """Import Great Expectations quietly (the import alone takes seconds: keep it out of module import)."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    # its INFO lines flood stdout where Airflow configured the root logger first
    logging.getLogger("great_expectations").setLevel(logging.WARNING)
    import great_expectations as gx

    return gx


def pandas_types(col: Column) -> list[str]:
    """The pandas dtype names a column of this definition may arrive as (see :func:`to_validation_frame`)."""
    types = list(_PANDAS_TYPES[col.dtype])
    if col.nullable and col.dtype == "int64":
        types.append("Int64Dtype")
    return types


def to_validation_frame(data: pa.Table) -> pd.DataFrame:
    """Arrow rows as the pandas frame the suites expect, keeping the distinctions the type checks look at.

    * timestamps with a UTC time zone and dates become naive ``datetime64[ns]`` (UTC); timestamps without a
      time zone or in another zone keep theirs, so the type check reports them;
    * integers with nulls become pandas' nullable integers of the same width (not float64);
    * lists become Python lists; everything else is pyarrow's default conversion (strings as objects).
    """
    return pd.DataFrame(
        {name: _to_series(values) for name, values in zip(data.column_names, data.columns, strict=True)}
    )


def _to_series(values: pa.ChunkedArray) -> pd.Series:
    kind = values.type
    if (pa.types.is_timestamp(kind) and kind.tz is not None and kind.tz.upper() in _UTC) or pa.types.is_date(kind):
        try:
            values = pc.cast(values, pa.timestamp("ns"), safe=True)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            # out of datetime64[ns]'s range (years 1678..2262): left as is, so the type check reports the column
            logger.warning("%s column with values outside datetime64[ns]'s range is validated as is", kind)
    elif pa.types.is_integer(kind) and values.null_count and kind in _NULLABLE_INTS:
        return values.to_pandas(types_mapper=_NULLABLE_INTS.get)
    elif pa.types.is_list(kind) or pa.types.is_large_list(kind):
        return pd.Series(values.to_pylist(), dtype=object)
    return values.to_pandas()


def suite_parameters(ds: Dataset, day: dt.date) -> dict[str, str]:
    """The suite parameters of one date partition: its window ``[start, end)``, naive UTC ISO timestamps."""
    start = dt.datetime.combine(day, dt.time())
    return {PARTITION_START: start.isoformat(), PARTITION_END: (start + dt.timedelta(days=1)).isoformat()}


def build_suite(layer: Layer, table: str, config: ValidationConfig | None = None) -> ExpectationSuite:
    """The expectation suite of one table of a layer: contract expectations, then statistics (module doc)."""
    gx = great_expectations_module()
    ds = dataset(layer, table)
    checks = (config or get_validation_config()).table(layer, table)
    expectations = [*_contract_expectations(ds), *_statistical_expectations(ds, checks)]
    return gx.ExpectationSuite(
        name=ds.suite_name,
        expectations=expectations,
        meta={"layer": layer, "table": table, "generated_by": __name__},
    )


def _contract_expectations(ds: Dataset) -> list[Expectation]:
    gx = great_expectations_module()
    from great_expectations.expectations.row_conditions import Column as RowColumn

    e = gx.expectations
    meta = {"source": CONTRACT}
    out: list[Expectation] = [e.ExpectTableColumnsToMatchSet(column_set=ds.column_names, exact_match=True, meta=meta)]
    for col in ds.columns:
        out.append(e.ExpectColumnToExist(column=col.name, meta=meta))
        out.append(e.ExpectColumnValuesToBeInTypeList(column=col.name, type_list=pandas_types(col), meta=meta))
        if not col.nullable:
            out.append(e.ExpectColumnValuesToNotBeNull(column=col.name, meta=meta))
        if col.allowed is not None:
            out.append(e.ExpectColumnValuesToBeInSet(column=col.name, value_set=list(col.allowed), meta=meta))
        if col.min is not None or col.max is not None:
            out.append(
                e.ExpectColumnValuesToBeBetween(column=col.name, min_value=col.min, max_value=col.max, meta=meta)
            )
        if col.pattern is not None:
            # a full match: GE's pandas regex is a search, and "$" would let a trailing newline through
            out.append(e.ExpectColumnValuesToMatchRegex(column=col.name, regex=rf"\A(?:{col.pattern})\Z", meta=meta))
    if len(ds.key) == 1:
        out.append(e.ExpectColumnValuesToBeUnique(column=ds.key[0], meta=meta))
    else:
        out.append(e.ExpectCompoundColumnsToBeUnique(column_list=list(ds.key), meta=meta))
    for rule in ds.rules:
        rule_meta = {**meta, "rule": rule.describe()}
        if isinstance(rule, Implies):
            # where if_true holds, then_true must be True: an in-set on the rows the condition selects
            out.append(
                e.ExpectColumnValuesToBeInSet(
                    column=rule.then_true,
                    value_set=[True],
                    row_condition=RowColumn(rule.if_true) == True,  # noqa: E712 (builds a GE condition, not a bool)
                    meta=rule_meta,
                )
            )
        elif isinstance(rule, NotBefore):
            out.append(
                e.ExpectColumnPairValuesAToBeGreaterThanB(
                    column_A=rule.later,
                    column_B=rule.earlier,
                    or_equal=True,
                    ignore_row_if="either_value_is_missing",
                    meta=rule_meta,
                )
            )
        else:  # pragma: no cover - a new rule kind must get its expectation here
            raise TypeError(f"no expectation for rule {rule!r}")
    out.append(
        e.ExpectColumnValuesToBeBetween(
            column=ds.partition_by,
            min_value={"$PARAMETER": PARTITION_START},
            max_value={"$PARAMETER": PARTITION_END},
            strict_max=True,
            meta={**meta, "rule": f"`{ds.partition_by}` falls on the partition's date (UTC)"},
        )
    )
    return out


def _statistical_expectations(ds: Dataset, checks: TableChecks) -> list[Expectation]:
    e = great_expectations_module().expectations
    meta = {"source": STATISTICS}
    out: list[Expectation] = [
        e.ExpectTableRowCountToBeBetween(min_value=checks.rows.min, max_value=checks.rows.max, meta=meta)
    ]
    for name, col in checks.columns.items():
        if col.max_null_fraction is not None:
            out.append(
                e.ExpectColumnProportionOfNonNullValuesToBeBetween(
                    column=name, min_value=round(1.0 - col.max_null_fraction, 12), max_value=1.0, meta=meta
                )
            )
        if col.has_range:
            out.append(
                e.ExpectColumnValuesToBeBetween(
                    column=name, min_value=col.min, max_value=col.max, mostly=col.mostly, meta=meta
                )
            )
        if col.has_mean:
            out.append(
                e.ExpectColumnMeanToBeBetween(column=name, min_value=col.mean_min, max_value=col.mean_max, meta=meta)
            )
    for pair in checks.column_pairs:
        out.append(
            e.ExpectColumnPairValuesAToBeGreaterThanB(
                column_A=pair.column,
                column_B=pair.at_least,
                or_equal=True,
                ignore_row_if="either_value_is_missing",
                meta=meta,
            )
        )
    return out


def build_suites(layer: Layer, config: ValidationConfig | None = None) -> dict[str, ExpectationSuite]:
    """Every table's suite of a layer, by table name."""
    return {name: build_suite(layer, name, config) for name in dataset_names(layer)}
