"""What the gates validate: the datasets of each layer, and the statistical bounds of ``config/validation.yaml``.

Structural expectations (columns, types, nulls, allowed values, ranges, patterns, keys, row rules) come from the
definitions alone: the raw contract (``feature_repo.contract.schema``) and the offline feature tables
(``feature_repo.features.tables``). What the definitions cannot say (how many rows a day has, how many nulls are
normal, the plausible range and mean of a KPI) lives in the versioned YAML file, validated here on read against
those same definitions, so a bound on a column that does not exist fails when the file is read, not at 3 a.m.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from config.settings import REPO_ROOT
from feature_repo.contract.schema import TABLES, Column, Rule
from feature_repo.features.tables import EVENT_TIMESTAMP, FEATURE_TABLES

Layer = Literal["raw", "features"]
LAYERS: tuple[Layer, ...] = ("raw", "features")
DEFAULT_CONFIG_PATH = REPO_ROOT / "config" / "validation.yaml"

_NUMERIC = ("int64", "float64")
_ORDERED = ("int64", "float64", "date", "timestamp")


# --- the datasets ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Dataset:
    """One validated table of a layer, as its definition describes it.

    ``partition_by`` is the column whose UTC date must equal the partition's date; ``rules`` are row rules
    (raw contract only).
    """

    layer: Layer
    name: str
    columns: tuple[Column, ...]
    key: tuple[str, ...]
    partition_by: str
    rules: tuple[Rule, ...] = field(default=())

    @property
    def suite_name(self) -> str:
        return f"{self.layer}.{self.name}"

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    def column(self, name: str) -> Column:
        for col in self.columns:
            if col.name == name:
                return col
        raise KeyError(f"{self.suite_name} has no column {name!r}; it has {', '.join(self.column_names)}")


def dataset_names(layer: Layer) -> list[str]:
    """Every table of a layer, in definition order."""
    if layer == "raw":
        return list(TABLES)
    if layer == "features":
        return list(FEATURE_TABLES)
    raise ValueError(f"unknown layer {layer!r}; choose one of {', '.join(LAYERS)}")


def dataset(layer: Layer, name: str) -> Dataset:
    """The dataset ``name`` of ``layer``, built from its definition."""
    if name not in dataset_names(layer):
        raise KeyError(f"unknown {layer} table {name!r}; the {layer} layer has {', '.join(dataset_names(layer))}")
    if layer == "raw":
        table = TABLES[name]
        return Dataset(layer, name, table.columns, table.key, table.partition_by, table.rules)
    feature_table = FEATURE_TABLES[name]
    columns = (
        Column(feature_table.key, "string", f"Join key of the {feature_table.entity} entity."),
        Column(EVENT_TIMESTAMP, "timestamp", "From when the row's values are known (UTC)."),
        *feature_table.columns,
    )
    return Dataset(layer, name, columns, (feature_table.key,), EVENT_TIMESTAMP)


# --- the statistical bounds --------------------------------------------------------------------------------------


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RowCountBounds(_Strict):
    """Rows one date partition may hold (inclusive); ``max: null`` means no upper bound."""

    min: int = Field(0, ge=0)
    max: int | None = Field(None, ge=0)

    @model_validator(mode="after")
    def _ordered(self) -> RowCountBounds:
        if self.max is not None and self.max < self.min:
            raise ValueError(f"rows: max {self.max} is below min {self.min}")
        return self


class ColumnChecks(_Strict):
    """Statistical bounds of one column, on top of what its definition already enforces.

    ``min``/``max``: plausible range that at least a ``mostly`` share of the non-null values must be in (units of
    the column). ``mean_min``/``mean_max``: range of the partition's mean, which catches a unit change (seconds for
    milliseconds) that no value range can. ``max_null_fraction``: largest share of nulls in a nullable column.
    """

    min: float | None = None
    max: float | None = None
    mostly: float = Field(1.0, gt=0.0, le=1.0)
    mean_min: float | None = None
    mean_max: float | None = None
    max_null_fraction: float | None = Field(None, ge=0.0, le=1.0)

    @model_validator(mode="after")
    def _consistent(self) -> ColumnChecks:
        if all(v is None for v in (self.min, self.max, self.mean_min, self.mean_max, self.max_null_fraction)):
            raise ValueError("a column entry must set at least one of min, max, mean_min, mean_max, max_null_fraction")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min {self.min} is above max {self.max}")
        if self.mean_min is not None and self.mean_max is not None and self.mean_min > self.mean_max:
            raise ValueError(f"mean_min {self.mean_min} is above mean_max {self.mean_max}")
        if self.mostly < 1.0 and self.min is None and self.max is None:
            raise ValueError("mostly applies to the min/max range, which is not set")
        return self

    @property
    def has_range(self) -> bool:
        return self.min is not None or self.max is not None

    @property
    def has_mean(self) -> bool:
        return self.mean_min is not None or self.mean_max is not None


class ColumnPair(_Strict):
    """A row rule between two columns of a feature table: ``column`` is never below ``at_least`` (nulls skipped)."""

    column: str
    at_least: str


class TableChecks(_Strict):
    """The statistical bounds of one table's date partition."""

    rows: RowCountBounds
    columns: dict[str, ColumnChecks] = Field(default_factory=dict)
    column_pairs: list[ColumnPair] = Field(default_factory=list)


class ValidationConfig(_Strict):
    """``config/validation.yaml``: bounds per layer and table, and how much the failure reports quote."""

    unexpected_examples: int = Field(5, ge=0, le=50, description="Distinct offending values quoted per failure")
    data_docs_history: int = Field(200, ge=1, description="Most recent validation runs listed on the docs index")
    workers: int = Field(
        2, ge=1, le=64, description="Processes a large run's partitions are split over (capped by the CPU count)"
    )
    parallel_min_mb: float = Field(
        8.0, ge=0, description="A run reads at least this many MB of parquet before it starts a second process"
    )
    raw: dict[str, TableChecks]
    features: dict[str, TableChecks]

    @model_validator(mode="after")
    def _matches_the_definitions(self) -> ValidationConfig:
        problems: list[str] = []
        for layer in LAYERS:
            configured: dict[str, TableChecks] = getattr(self, layer)
            names = dataset_names(layer)
            if missing := [n for n in names if n not in configured]:
                problems.append(f"{layer}: no entry for table(s) {', '.join(missing)} (every table needs its rows)")
            for name, checks in configured.items():
                if name not in names:
                    problems.append(f"{layer}.{name}: not a {layer} table ({', '.join(names)})")
                    continue
                problems.extend(_check_against(dataset(layer, name), checks))
        if problems:
            raise ValueError("validation config does not match the definitions:\n  " + "\n  ".join(problems))
        return self

    def table(self, layer: Layer, name: str) -> TableChecks:
        configured: dict[str, TableChecks] = getattr(self, layer)
        try:
            return configured[name]
        except KeyError:
            raise KeyError(f"no {layer} table {name!r} in the validation config") from None


def _check_against(ds: Dataset, checks: TableChecks) -> list[str]:
    problems = []
    for name, col_checks in checks.columns.items():
        where = f"{ds.suite_name}.{name}"
        if name not in ds.column_names:
            problems.append(f"{where}: no such column")
            continue
        col = ds.column(name)
        if checks.rows.min == 0 and (col_checks.has_mean or col_checks.max_null_fraction is not None):
            # Great Expectations fails a mean or a null proportion of zero rows
            problems.append(f"{where}: mean and null bounds need rows.min >= 1 (an empty partition would fail them)")
        if (col_checks.has_range or col_checks.has_mean) and col.dtype not in _NUMERIC:
            problems.append(f"{where}: range and mean bounds need a numeric column, this one is {col.dtype}")
        if col_checks.max_null_fraction is not None and not col.nullable:
            problems.append(f"{where}: max_null_fraction on a column that must never be null")
    for pair in checks.column_pairs:
        for name in (pair.column, pair.at_least):
            if name not in ds.column_names:
                problems.append(f"{ds.suite_name}: column pair names unknown column {name!r}")
            elif ds.column(name).dtype not in _ORDERED:
                dtype = ds.column(name).dtype
                problems.append(f"{ds.suite_name}.{name}: column pairs need ordered columns, not {dtype}")
    return problems


def read_validation_config(path: Path | None = None) -> ValidationConfig:
    """Read and validate the validation config (default: ``config/validation.yaml`` of the repository)."""
    path = Path(path or DEFAULT_CONFIG_PATH)
    document = yaml.safe_load(path.read_text())
    if not isinstance(document, dict):
        raise ValueError(f"{path}: expected a mapping at the top level")
    # top-level keys starting with "_" only hold YAML anchors shared by the tables
    return ValidationConfig.model_validate({k: v for k, v in document.items() if not str(k).startswith("_")})


@lru_cache(maxsize=1)
def get_validation_config() -> ValidationConfig:
    return read_validation_config()
