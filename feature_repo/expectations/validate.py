"""The data quality gate: validate one date's partitions, quarantine what fails, render data docs.

The one place that runs Great Expectations (``suites`` builds the suites); everything else calls
:func:`validate_partition`, :func:`validate_day` or the ``storefront validate`` command and sees only plain
dataclasses, so a Great Expectations upgrade touches these two modules.

* A partition that fails any expectation is moved, folder and all, to
  ``<quarantine root>/<layer>/<table>/dt=<date>/`` (replacing an older quarantine of the same partition)
  with a ``reasons.json`` beside its files; the lake no longer holds it, so nothing downstream reads it.
* A missing partition is a failure too (the gate never passes when it could not run), with nothing to move.
* One partition is validated with one Great Expectations validation of its table's whole suite; a history
  load (:func:`validate_days`) validates consecutive small partitions of a table together where that gives each
  the verdict it would get alone, so it costs much less per date than as many nightly runs. A run that reads
  more than ``parallel_min_mb`` of parquet (a history load) is cut into ``workers`` segments of about equal size,
  each validated in a spawned process of its own; verdicts and reasons do not depend on the split.
* Every run renders data docs under ``<reports>/data_docs/`` (``index.html``). Great Expectations runs on an
  ephemeral context whose suites and validation results are kept as JSON under ``<reports>/gx_store/``, so the
  index lists the history of runs (the most recent ``data_docs_history`` of ``config/validation.yaml``), not
  only the last one: the site builder drops pages whose results its stores no longer hold.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import math
import os
import shutil
import time
import uuid
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlparse

import click
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from config.cli_options import ISO_DATE
from config.settings import Settings, get_settings
from feature_repo.contract import lake
from feature_repo.expectations.config import (
    LAYERS,
    Dataset,
    Layer,
    ValidationConfig,
    dataset,
    dataset_names,
    get_validation_config,
)
from feature_repo.expectations.suites import (
    build_suite,
    great_expectations_module,
    suite_parameters,
    to_validation_frame,
)

if TYPE_CHECKING:
    from great_expectations import ExpectationSuite
    from great_expectations.core.expectation_validation_result import (
        ExpectationSuiteValidationResult,
        ExpectationValidationResult,
    )
    from great_expectations.data_context import AbstractDataContext

logger = logging.getLogger(__name__)

DATA_DOCS_DIR = "data_docs"
GX_STORE_DIR = "gx_store"
REASONS_FILE = "reasons.json"
SITE_NAME = "local_site"
_PARTIAL_UNEXPECTED = 20  # offending values Great Expectations keeps per expectation; distinct ones are quoted
# BASIC: per expectation the success, observed value, unexpected count and percentages and the first offending
# values, all a reason quotes; not SUMMARY's value counts and index lists, which cost a third of the validation
_RESULT_FORMAT = {"result_format": "BASIC", "partial_unexpected_count": _PARTIAL_UNEXPECTED}
# A history load validates consecutive partitions of a table together up to this many rows (see
# _Gate._validate_together): the per-expectation cost of Great Expectations is paid once for them, not per date.
# Larger partitions gain nothing from it (the metrics themselves dominate) and are validated alone.
_UNION_ROWS = 200_000
_PARTITION_COST_BYTES = 512 * 1024  # what validating one more partition costs beyond its bytes, in bytes' worth
# Expectations a union of partitions with the same columns and dtypes can settle for each of them: checks of every
# row on its own (a row that passes in the union passes alone), uniqueness (no duplicate in the union: none within
# a partition) and the schema (the union's columns and dtypes are each partition's). Not row counts, means, null
# fractions, nor anything with a suite parameter (the partition's date window).
_UNION_WISE = frozenset(
    {
        "expect_table_columns_to_match_set",
        "expect_column_to_exist",
        "expect_column_values_to_be_in_type_list",
        "expect_column_values_to_not_be_null",
        "expect_column_values_to_be_in_set",
        "expect_column_values_to_be_between",
        "expect_column_values_to_match_regex",
        "expect_column_values_to_be_unique",
        "expect_compound_columns_to_be_unique",
        "expect_column_pair_values_a_to_be_greater_than_b",
    }
)
# failures reported by the gate itself, before Great Expectations could run
PARTITION_PRESENT = "partition_present"
PARTITION_READABLE = "partition_readable"


@dataclass(frozen=True)
class FailedExpectation:
    """One expectation a partition did not meet, in plain JSON-able values."""

    expectation: str  # Great Expectations type, e.g. expect_column_values_to_be_between, or a gate check
    column: str | None  # the column, "a, b" for column pairs and compound keys, None for table-level checks
    kwargs: dict[str, Any]
    observed: Any = None  # observed_value of aggregate expectations (row count, mean, null proportion, types)
    unexpected_count: int | None = None  # rows that broke a row-level expectation
    unexpected_percent: float | None = None  # of all rows
    unexpected_values: list[Any] = field(default_factory=list)  # a few distinct offending values
    error: str | None = None  # the expectation could not be evaluated (e.g. its column is missing)
    source: str | None = None  # "contract", "validation.yaml" or "gate"

    def describe(self) -> str:
        """One line: column, expectation type and what was observed."""
        where = self.column or "(table)"
        if self.source == "gate":
            return f"(partition): {self.expectation}: {self.error}"
        if self.error is not None:
            seen = f"error: {self.error}"
        elif self.unexpected_count is not None and self.observed is None:
            pct = "" if self.unexpected_percent is None else f" ({self.unexpected_percent:.3g}% of rows)"
            examples = ", ".join(repr(v) for v in self.unexpected_values)
            seen = f"{self.unexpected_count} unexpected row(s){pct}" + (f", e.g. {examples}" if examples else "")
        else:
            seen = f"observed {self.observed!r}"
        bounds = {k: v for k, v in self.kwargs.items() if k not in ("column", "column_A", "column_B", "column_list")}
        args = ", ".join(f"{k}={v!r}" for k, v in bounds.items())
        return f"{where}: {self.expectation}({args}): {seen}"


@dataclass(frozen=True)
class ValidationOutcome:
    """The gate's verdict on one date partition of one table."""

    layer: Layer
    table: str
    day: dt.date
    success: bool
    suite: str
    partition: Path  # where the partition was validated (it moves to quarantined_to when it failed)
    rows: int | None  # None when the partition could not be read
    evaluated: int  # expectations evaluated
    failed: tuple[FailedExpectation, ...] = ()
    data_docs: Path | None = None  # the data docs site's index.html
    data_docs_page: Path | None = None  # this validation's page in it
    quarantined_to: Path | None = None
    missing: bool = False
    seconds: float = 0.0

    def summary(self) -> str:
        """One line for logs: verdict, counts and the failed expectations' columns and types."""
        name = f"{self.suite} dt={self.day.isoformat()}"
        if self.success:
            return f"{name}: passed {self.evaluated} expectations on {self.rows} rows ({self.seconds:.1f} s)"
        failed = "; ".join(f"{f.column or '(table)'} {f.expectation}" for f in self.failed)
        rows = "" if self.rows is None else f" on {self.rows} rows"
        return f"{name}: FAILED {len(self.failed)} of {max(self.evaluated, len(self.failed))}{rows}: {failed}"


class ValidationFailed(RuntimeError):
    """Raised by :func:`validate_day` when any partition failed; names every failed table and expectation."""

    def __init__(self, layer: Layer, day: dt.date, outcomes: Sequence[ValidationOutcome]):
        self.layer, self.day, self.outcomes = layer, day, list(outcomes)
        self.failed = [o for o in self.outcomes if not o.success]
        count = f"{len(self.failed)} of {len(self.outcomes)} table(s)"
        lines = [f"{layer} validation failed for {day.isoformat()}: {count}"]
        for outcome in self.failed:
            where = f"quarantined to {outcome.quarantined_to}" if outcome.quarantined_to else f"at {outcome.partition}"
            lines.append(f"  {outcome.table} dt={outcome.day.isoformat()} ({where}):")
            lines.extend(f"    - {f.describe()}" for f in outcome.failed)
        docs = next((o.data_docs for o in self.outcomes if o.data_docs), None)
        if docs:
            lines.append(f"  data docs: {docs}")
        super().__init__("\n".join(lines))


# --- public API --------------------------------------------------------------------------------------------------


def validate_partition(
    layer: Layer,
    table: str,
    day: dt.date,
    *,
    settings: Settings | None = None,
    config: ValidationConfig | None = None,
) -> ValidationOutcome:
    """Validate one date partition of one table and render data docs; never moves anything (see validate_day)."""
    settings, config = settings or get_settings(), config or get_validation_config()
    gate = _Gate(settings, config)
    outcome = gate.validate(layer, table, day)
    outcome = gate.with_data_docs([outcome])[0]
    logger.log(logging.INFO if outcome.success else logging.WARNING, "%s", outcome.summary())
    return outcome


def validate_day(
    layer: Layer,
    day: dt.date,
    tables: Iterable[str] | None = None,
    *,
    settings: Settings | None = None,
    config: ValidationConfig | None = None,
) -> list[ValidationOutcome]:
    """Validate every table of a layer (or ``tables``) for ``day``; quarantine failures, then raise.

    Returns the outcomes when every partition passed. Otherwise each failed partition that exists is moved to
    the quarantine with its ``reasons.json`` and :class:`ValidationFailed` is raised with every outcome.
    """
    return validate_days(layer, [day], tables, settings=settings, config=config)


def validate_days(
    layer: Layer,
    days: Iterable[dt.date],
    tables: Iterable[str] | None = None,
    *,
    settings: Settings | None = None,
    config: ValidationConfig | None = None,
) -> list[ValidationOutcome]:
    """:func:`validate_day` over several dates with one GE context and one data docs build (history loads).

    Every date is validated before anything is raised, so one failing date does not hide another's problems.
    Consecutive small partitions of a table are validated together (one Great Expectations validation of the
    row-wise checks for all of them, then the per-partition checks on each, see ``_Gate._validate_together``);
    every partition still gets every expectation's verdict, and a failure the details it would get alone.
    """
    days = list(days)
    if not days:
        raise ValueError("validate_days: no dates given")
    names = dataset_names(layer) if tables is None else list(dict.fromkeys(tables))
    return validate_table_days(layer, {name: days for name in names}, settings=settings, config=config)


def validate_table_days(
    layer: Layer,
    table_days: Mapping[str, Iterable[dt.date]],
    *,
    settings: Settings | None = None,
    config: ValidationConfig | None = None,
) -> list[ValidationOutcome]:
    """:func:`validate_days` with each table's own dates, in one GE context and one data docs build.

    A history load whose long-window tables reach further back than the others validates each raw table over the
    dates the builds that read it need, and no more. Outcomes come date by date, tables in the given order.
    """
    settings, config = settings or get_settings(), config or get_validation_config()
    for name in table_days:
        dataset(layer, name)  # unknown names fail before anything runs
    # a date given twice is validated (and quarantined) once
    plan = {name: list(dict.fromkeys(days)) for name, days in table_days.items()}
    plan = {name: days for name, days in plan.items() if days}
    if not plan:
        raise ValueError("validate_table_days: no dates given")
    gate = _Gate(settings, config)
    segments = _segments(layer, plan, settings, config)
    if len(segments) == 1:
        validated = [o for name, days in plan.items() for o in gate.validate_table(layer, name, days)]
    else:
        validated = gate.validate_in_processes(layer, segments)
    order = {name: i for i, name in enumerate(plan)}
    in_order = sorted(validated, key=lambda o: (o.day, order[o.table]))
    outcomes = gate.with_data_docs(in_order)
    final = []
    for outcome in outcomes:
        if not outcome.success and not outcome.missing:
            outcome = replace(outcome, quarantined_to=quarantine(outcome, settings))
        logger.log(logging.INFO if outcome.success else logging.WARNING, "%s", outcome.summary())
        final.append(outcome)
    failed = [o for o in final if not o.success]
    if failed:
        raise ValidationFailed(layer, failed[0].day, final)
    return final


def _segments(
    layer: Layer, plan: Mapping[str, list[dt.date]], settings: Settings, config: ValidationConfig
) -> list[dict[str, list[dt.date]]]:
    """The run cut into up to ``workers`` segments of about equal parquet bytes, one process each.

    Each segment is a run of consecutive (table, dates) of ``plan``, so a table's partitions stay in date order
    and neighbours still go through one union validation. A run reading less than ``parallel_min_mb`` (every
    night, small history loads) is one segment: a second process would cost more than it saves.
    """
    workers = min(config.workers, os.cpu_count() or 1)
    sizes = [
        (name, day, sum(f.stat().st_size for f in folder.glob("*.parquet")) if folder.is_dir() else 0)
        for name, days in plan.items()
        for day in days
        for folder in [partition_path(layer, name, day, settings)]
    ]
    if workers < 2 or sum(size for _, _, size in sizes) < config.parallel_min_mb * 1024 * 1024:
        return [dict(plan)]
    # a partition costs its bytes plus a fixed share (its suite's per-expectation work): about 0.5 MB's worth
    sizes = [(name, day, size + _PARTITION_COST_BYTES) for name, day, size in sizes]
    total = sum(size for _, _, size in sizes)
    segments: list[dict[str, list[dt.date]]] = [{}]
    done = 0
    for name, day, size in sizes:
        if done >= total * len(segments) / workers and len(segments) < workers:
            segments.append({})
        segments[-1].setdefault(name, []).append(day)
        done += size
    return segments


def _validate_segment(
    layer: Layer, segment: dict[str, list[dt.date]], settings: Settings, config: ValidationConfig
) -> tuple[list[ValidationOutcome], dict[tuple[str, dt.date], Any]]:
    """A worker process: one segment in a gate of its own; its outcomes and where its results are stored."""
    gate = _Gate(settings, config)
    outcomes = [o for name, days in segment.items() for o in gate.validate_table(layer, name, days)]
    return outcomes, gate._results


def partition_path(layer: Layer, table: str, day: dt.date, settings: Settings | None = None) -> Path:
    """The folder of one date partition in the lake (raw: ``part-00000.parquet``; features: Spark part files)."""
    settings = settings or get_settings()
    root = settings.raw_root if layer == "raw" else settings.features_root
    return lake.partition_dir(root, table, day)


def quarantine_path(layer: Layer, table: str, day: dt.date, settings: Settings | None = None) -> Path:
    return (settings or get_settings()).quarantine_root / layer / table / f"dt={day.isoformat()}"


def quarantine(outcome: ValidationOutcome, settings: Settings | None = None) -> Path:
    """Move a failed partition's folder to the quarantine and write its ``reasons.json``; return the new folder.

    An older quarantine of the same partition is replaced as a whole.
    """
    settings = settings or get_settings()
    target = quarantine_path(outcome.layer, outcome.table, outcome.day, settings)
    target.parent.mkdir(parents=True, exist_ok=True)
    old = None
    if target.exists():
        old = target.with_name(f".replaced-{target.name}-{uuid.uuid4().hex}")
        os.replace(target, old)
    shutil.move(str(outcome.partition), str(target))
    reasons = {
        "layer": outcome.layer,
        "table": outcome.table,
        "day": outcome.day.isoformat(),
        "partition": str(outcome.partition),
        "quarantined_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "suite": outcome.suite,
        "suite_generated_from": [_definitions_module(outcome.layer), "config/validation.yaml"],
        "rows": outcome.rows,
        "expectations_evaluated": outcome.evaluated,
        "failed_expectations": [asdict(f) for f in outcome.failed],
        "data_docs": None if outcome.data_docs is None else str(outcome.data_docs),
        "data_docs_page": None if outcome.data_docs_page is None else str(outcome.data_docs_page),
    }
    tmp = target / f".{REASONS_FILE}.tmp"
    tmp.write_text(json.dumps(reasons, indent=2, default=str) + "\n")
    os.replace(tmp, target / REASONS_FILE)
    if old is not None:
        shutil.rmtree(old)
    logger.warning("%s.%s dt=%s quarantined to %s", outcome.layer, outcome.table, outcome.day, target)
    return target


# --- the Great Expectations side ---------------------------------------------------------------------------------


class _Partition:
    """One readable partition waiting for its validation: its frame and the outcome it will fill in."""

    __slots__ = ("base", "frame", "rows", "signature", "spent", "started")

    def __init__(self, base: ValidationOutcome, frame: pd.DataFrame, rows: int, started: float):
        self.base, self.frame, self.rows = base, frame, rows
        self.signature = tuple((str(name), str(dtype)) for name, dtype in frame.dtypes.items())
        self.started = started
        self.spent = time.perf_counter() - started  # reading and converting


class _Gate:
    """One Great Expectations context for one gate run: suites, validations and the data docs site.

    Each table's suite is built and stored once per gate run. A partition is validated alone (``batch.validate``
    of the whole suite); consecutive partitions of one table (a history load) are validated together where that
    gives every partition the verdict it would get alone (see :meth:`_validate_together`).
    """

    def __init__(self, settings: Settings, config: ValidationConfig):
        self.settings, self.config = settings, config
        self.context = _context(settings, config)
        self.source = self.context.data_sources.add_pandas("storefront_lake")
        self.run_time = dt.datetime.now(dt.UTC)
        self._results: dict[tuple[str, dt.date], Any] = {}  # (suite, date) -> identifier of its validation result
        self._tables: dict[str, _Table] = {}

    # --- partitions -> outcomes --------------------------------------------------------------------------------

    def validate(self, layer: Layer, table: str, day: dt.date) -> ValidationOutcome:
        """One date partition of one table, the whole suite on it alone."""
        return self.validate_table(layer, table, [day])[0]

    def validate_table(self, layer: Layer, table: str, days: Sequence[dt.date]) -> list[ValidationOutcome]:
        """The partitions of one table for ``days`` (distinct dates), one outcome per date in that order.

        Partitions are read a group at a time: consecutive readable partitions with the same columns and dtypes,
        at most ``_UNION_ROWS`` rows in all (one partition alone when it is larger).
        """
        ds = dataset(layer, table)
        done: dict[dt.date, ValidationOutcome] = {}
        group: list[_Partition] = []

        def flush() -> None:
            for outcome in self._validate_group(ds, group):
                done[outcome.day] = outcome
            group.clear()

        for day in days:
            started = time.perf_counter()
            folder = partition_path(layer, table, day, self.settings)
            base = ValidationOutcome(layer, table, day, False, ds.suite_name, folder, None, 0)
            if not folder.is_dir():
                failure = _gate_failure(PARTITION_PRESENT, f"no partition folder {folder}")
                done[day] = replace(base, failed=(failure,), missing=True, seconds=time.perf_counter() - started)
                continue
            try:
                data = _read_partition(layer, folder)
            except (OSError, pa.ArrowException) as err:
                failure = _gate_failure(PARTITION_READABLE, f"{type(err).__name__}: {err}")
                done[day] = replace(base, failed=(failure,), seconds=time.perf_counter() - started)
                continue
            part = _Partition(base, to_validation_frame(data), data.num_rows, started)
            del data
            if group and (part.signature != group[0].signature or sum(p.rows for p in group) + part.rows > _UNION_ROWS):
                flush()
            group.append(part)
        flush()
        return [done[day] for day in days]

    def validate_in_processes(self, layer: Layer, segments: list[dict[str, list[dt.date]]]) -> list[ValidationOutcome]:
        """Each segment in a process of its own (spawned: no fork of a threaded Airflow task), results kept here.

        Every process validates with its own context on the same file stores, so this gate's data docs find
        every result; a partition's verdict and reasons do not depend on which process judged it.
        """
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        started = time.perf_counter()
        outcomes: list[ValidationOutcome] = []
        spawn = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=len(segments), mp_context=spawn) as pool:
            futures = [
                pool.submit(_validate_segment, layer, segment, self.settings, self.config) for segment in segments
            ]
            for future in futures:
                found, results = future.result()
                outcomes += found
                self._results.update(results)
        logger.info("%s: %d partitions validated in %d processes in %.1f s", layer, len(outcomes), len(segments),
                    time.perf_counter() - started)
        return outcomes

    def _validate_group(self, ds: Dataset, group: list[_Partition]) -> list[ValidationOutcome]:
        if not group:
            return []
        table = self._table(ds)
        if len(group) == 1 or not table.together:
            return [self._validate_alone(ds, table, part) for part in group]
        return self._validate_together(ds, table, group)

    def _validate_alone(self, ds: Dataset, table: _Table, part: _Partition) -> ValidationOutcome:
        began = time.perf_counter()
        day = part.base.day
        result = self._run_suite(ds, table.suite, part.frame, suite_parameters(ds, day))
        result = _in_suite_order(table.suite, result, {})
        part.spent += time.perf_counter() - began
        return self._outcome(ds, part, result)

    def _validate_together(self, ds: Dataset, table: _Table, group: list[_Partition]) -> list[ValidationOutcome]:
        """Validate the group's partitions with one Great Expectations validation of the row-wise checks.

        The row-wise and schema expectations (``_UNION_WISE``, no suite parameter) run once on the union of the
        partitions (same columns and dtypes, so each column keeps the dtype it has alone). One of them that passes
        there with no unexpected row passes on every partition alone: each partition's rows are rows of the union
        (``mostly`` cannot matter with no unexpected row; an empty or all-null partition passes vacuously, as it
        would alone). Every other expectation (row counts, means, null fractions, the partition date, and any
        union-wise one that did not pass that way: failed, raised, or found some unexpected rows) then runs on
        each partition alone, so failures keep exactly the details and the partition they would have alone.
        """
        began = time.perf_counter()
        frames = [p.frame for p in group]
        union = pd.concat(frames, ignore_index=True)
        if tuple((str(n), str(d)) for n, d in union.dtypes.items()) != group[0].signature:
            # pandas changed a dtype on concatenation: the union would not judge the types as each partition
            logger.debug("%s: union of %d partitions changes dtypes; validated alone", ds.suite_name, len(group))
            return [self._validate_alone(ds, table, part) for part in group]
        together = self._run_suite(ds, table.union_suite, union, None)
        del union
        days = [p.base.day for p in group]
        note = f"validated with {len(days)} partitions together ({days[0].isoformat()}..{days[-1].isoformat()})"
        settled = {
            r.expectation_config.id: r for r in together.results if r.expectation_config is not None and _settles(r)
        }
        rest = _sub_suite(table.suite, [e for e in table.suite.expectations if e.id not in settled])
        shared = (time.perf_counter() - began) / len(group)
        outcomes = []
        for part in group:
            began = time.perf_counter()
            own = self._run_suite(ds, rest, part.frame, suite_parameters(ds, part.base.day))
            copies = {i: _settled_result(r, note, part.rows) for i, r in settled.items()}
            result = _in_suite_order(table.suite, own, copies)
            part.spent += shared + time.perf_counter() - began
            outcomes.append(self._outcome(ds, part, result))
        return outcomes

    def _outcome(self, ds: Dataset, part: _Partition, result: ExpectationSuiteValidationResult) -> ValidationOutcome:
        day = part.base.day
        self._results[(ds.suite_name, day)] = self._store_result(ds, day, result)
        failed = tuple(_failure(r, self.config.unexpected_examples) for r in result.results if not r.success)
        part.frame = None  # type: ignore[assignment] # the group's frames go with it
        return replace(
            part.base,
            success=bool(result.success) and not failed,
            rows=part.rows,
            evaluated=len(result.results),
            failed=failed,
            seconds=part.spent,
        )

    # --- Great Expectations ------------------------------------------------------------------------------------

    def _run_suite(
        self, ds: Dataset, suite: ExpectationSuite, frame: pd.DataFrame, parameters: dict[str, str] | None
    ) -> ExpectationSuiteValidationResult:
        """One Great Expectations validation of ``suite`` on ``frame`` (``batch.validate``, BASIC results)."""
        batch = self._table(ds).batch_definition.get_batch(batch_parameters={"dataframe": frame})
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pandas/GE deprecation chatter on every metric
            return batch.validate(suite, result_format=dict(_RESULT_FORMAT), expectation_parameters=parameters)

    def _store_result(self, ds: Dataset, day: dt.date, result: ExpectationSuiteValidationResult) -> Any:
        """Keep one partition's result in the validation results store (what the data docs render), as a
        validation definition's run would, under run ``<layer>-<date>`` of this gate run."""
        gx = great_expectations_module()
        from great_expectations.data_context.types.resource_identifiers import (
            ExpectationSuiteIdentifier,
            ValidationResultIdentifier,
        )

        run_id = gx.RunIdentifier(run_name=f"{ds.layer}-{day.isoformat()}", run_time=self.run_time)
        result.meta["run_id"] = run_id
        result.meta["validation_time"] = run_id.run_time
        result.meta["batch_parameters"] = {"dataframe": "<DATAFRAME>"}
        suite_id = ExpectationSuiteIdentifier(name=ds.suite_name)
        identifier = ValidationResultIdentifier(
            expectation_suite_identifier=suite_id, run_id=run_id, batch_identifier=result.batch_id
        )
        self.context.validation_results_store.store_validation_results(
            suite_validation_result=result,
            suite_validation_result_identifier=identifier,
            expectation_suite_identifier=suite_id,
        )
        return identifier

    def _table(self, ds: Dataset) -> _Table:
        """The table's suite (stored), its dataframe asset and the part of the suite a union can settle."""
        if ds.suite_name not in self._tables:
            suite = self._store_suite(build_suite(ds.layer, ds.name, self.config))
            batch = self.source.add_dataframe_asset(ds.suite_name).add_batch_definition_whole_dataframe("partition")
            union_wise = [e for e in suite.expectations if _union_wise(e)]
            together = bool(union_wise) and all(e.id for e in suite.expectations)
            self._tables[ds.suite_name] = _Table(suite, batch, _sub_suite(suite, union_wise), together)
        return self._tables[ds.suite_name]

    def _store_suite(self, suite: ExpectationSuite) -> ExpectationSuite:
        """Save the generated suite, replacing the stored one.

        Not ``suites.add_or_update``: to keep the ids of unchanged expectations it compares every new expectation
        with every stored one (quadratic, pydantic equality), about 2 s for the sessions suite.
        """
        from great_expectations.exceptions import DataContextError

        with contextlib.suppress(DataContextError):  # the first run against this store has none
            self.context.suites.delete(suite.name)
        return self.context.suites.add(suite)

    def with_data_docs(self, outcomes: list[ValidationOutcome]) -> list[ValidationOutcome]:
        """Render this run's results into the data docs site and point each outcome at its pages.

        One site builder for the run. Its validations section may render every result of this run: Great
        Expectations renders pages only for the most recent ``validation_results_limit`` results, which a history
        load of more than ``data_docs_history / tables`` dates exceeds (the index still lists the most recent
        ``data_docs_history``).
        """
        from great_expectations.data_context.types.resource_identifiers import ExpectationSuiteIdentifier

        index: Path | None = None
        builder = None
        if self._results:
            suites = [ExpectationSuiteIdentifier(name=name) for name in dict.fromkeys(n for n, _ in self._results)]
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    builder = self._site_builder(pages=self.config.data_docs_history + len(self._results))
                    url, _ = builder.build(resource_identifiers=[*self._results.values(), *suites])
                index = _url_path(url)
            except Exception:  # the verdict stands without its HTML; say so loudly
                logger.exception("data docs could not be rendered under %s", self.settings.reports / DATA_DOCS_DIR)
        elif (self.settings.reports / DATA_DOCS_DIR / "index.html").is_file():
            index = self.settings.reports / DATA_DOCS_DIR / "index.html"
        done = []
        for outcome in outcomes:
            page = None
            if builder is not None and index is not None and (outcome.suite, outcome.day) in self._results:
                url = builder.get_resource_url(resource_identifier=self._results[(outcome.suite, outcome.day)])
                page = _url_path(url) if url else None
            done.append(replace(outcome, data_docs=index, data_docs_page=page))
        return done

    def _site_builder(self, *, pages: int) -> Any:
        """The data docs site's builder, as ``build_data_docs`` makes it, rendering up to ``pages`` results."""
        from great_expectations.render.renderer.site_builder import SiteBuilder

        site = _site_config(self.settings, self.config)
        site.pop("class_name")
        sections = {"validations": {"validation_results_limit": pages}}
        return SiteBuilder(data_context=self.context, site_name=SITE_NAME, site_section_builders=sections, **site)


@dataclass(frozen=True)
class _Table:
    suite: ExpectationSuite  # the stored suite, every expectation with its id
    batch_definition: Any  # the table's dataframe asset, whole-dataframe batches
    union_suite: ExpectationSuite  # the expectations a union of partitions can settle (see _UNION_WISE)
    together: bool  # whether partitions of this table may be validated together at all


def _union_wise(expectation: Any) -> bool:
    """Whether a union of partitions that passes ``expectation`` with no unexpected row settles each partition."""
    if expectation.expectation_type not in _UNION_WISE:
        return False
    return '"$PARAMETER"' not in json.dumps(expectation.configuration.kwargs, default=str)  # per-partition values


def _settles(result: ExpectationValidationResult) -> bool:
    """A union's result that gives every one of its partitions a pass: passed, raised nothing, no unexpected row."""
    if not result.success or (result.exception_info or {}).get("raised_exception"):
        return False
    return (result.result or {}).get("unexpected_count") in (None, 0)


def _settled_result(result: ExpectationValidationResult, note: str, rows: int) -> ExpectationValidationResult:
    """One partition's copy of a union's passing result, keeping what holds for the partition too.

    Row-wise checks: no unexpected row (0% of the partition's rows; the element and missing counts, which the
    union's result gives for the union, are left out); schema checks: the union's observed value (the partition's
    columns and dtypes are the union's).
    """
    from great_expectations.core.expectation_validation_result import ExpectationValidationResult

    details = result.result or {}
    if "observed_value" in details:
        kept: dict[str, Any] = {"observed_value": details["observed_value"]}
    elif "unexpected_count" in details:
        kept = {"unexpected_count": 0, "unexpected_percent": 0.0 if rows else None, "partial_unexpected_list": []}
    else:
        kept = {}
    return ExpectationValidationResult(
        success=True,
        expectation_config=result.expectation_config,
        result=kept,
        meta={**(result.meta or {}), "storefront_validated": note},
    )


def _sub_suite(suite: ExpectationSuite, expectations: Sequence[Any]) -> ExpectationSuite:
    """An unsaved suite of some of ``suite``'s expectations (copies, with their ids), for ``batch.validate``."""
    gx = great_expectations_module()
    # configurations, not the expectations: the suite takes copies of them, ids kept (an Expectation with an id
    # is refused as belonging to another suite)
    configurations = [e.configuration for e in expectations]
    return gx.ExpectationSuite(name=suite.name, expectations=configurations, meta=dict(suite.meta or {}))


def _in_suite_order(
    suite: ExpectationSuite,
    validated: ExpectationSuiteValidationResult,
    settled: dict[str, ExpectationValidationResult],
) -> ExpectationSuiteValidationResult:
    """One result per expectation of ``suite``, in the suite's order: ``validated``'s own, else ``settled``'s.

    Raises when an expectation of the suite has neither (it would have gone unevaluated).
    """
    from great_expectations.core.expectation_validation_result import ExpectationSuiteValidationResult

    if not settled and not all(e.id for e in suite.expectations):  # no ids to order by: as validated
        return validated
    own: dict[str, ExpectationValidationResult] = {}
    extra: list[ExpectationValidationResult] = []
    for r in validated.results:
        key = None if r.expectation_config is None else r.expectation_config.id
        if key is None or key in own:
            extra.append(r)
        else:
            own[key] = r
    results = []
    for expectation in suite.expectations:
        r = own.pop(expectation.id) if expectation.id in own else settled.get(expectation.id)
        if r is None:
            raise RuntimeError(
                f"{suite.name}: no result for expectation {expectation.expectation_type} {expectation.id}"
            )
        results.append(r)
    results += [*own.values(), *extra]
    passed = sum(bool(r.success) for r in results)
    return ExpectationSuiteValidationResult(
        success=passed == len(results),
        results=results,
        suite_name=validated.suite_name,
        suite_parameters=validated.suite_parameters,
        statistics={
            "evaluated_expectations": len(results),
            "successful_expectations": passed,
            "unsuccessful_expectations": len(results) - passed,
            "success_percent": 100.0 * passed / len(results) if results else None,
        },
        meta=validated.meta,
        batch_id=validated.batch_id,
    )


def _context(settings: Settings, config: ValidationConfig) -> AbstractDataContext:
    """An ephemeral context: suites and results as JSON under <reports>/gx_store, data docs in <reports>/data_docs."""
    gx = great_expectations_module()
    from great_expectations.data_context.types.base import DataContextConfig, ProgressBarsConfig

    store = settings.reports / GX_STORE_DIR

    def files(name: str) -> dict[str, str]:
        return {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(store / name)}

    memory = {"class_name": "InMemoryStoreBackend"}

    project = DataContextConfig(
        stores={
            "expectations_store": {"class_name": "ExpectationsStore", "store_backend": files("expectations")},
            "validation_results_store": {"class_name": "ValidationResultsStore", "store_backend": files("validations")},
            # the gate validates batches directly (no definitions or checkpoints are kept): nothing to keep
            "checkpoint_store": {"class_name": "CheckpointStore", "store_backend": memory},
            "validation_definition_store": {"class_name": "ValidationDefinitionStore", "store_backend": memory},
        },
        expectations_store_name="expectations_store",
        validation_results_store_name="validation_results_store",
        checkpoint_store_name="checkpoint_store",
        data_docs_sites={SITE_NAME: _site_config(settings, config)},
        analytics_enabled=False,
        progress_bars=ProgressBarsConfig(globally=False, metric_calculations=False),
    )
    return gx.get_context(mode="ephemeral", project_config=project)


def _site_config(settings: Settings, config: ValidationConfig) -> dict[str, Any]:
    """The data docs site: HTML under <reports>/data_docs, an index of the latest ``data_docs_history`` results
    (built by ``data_docs.LeanSiteIndexBuilder``: the default one's index, without loading every listed result)."""
    return {
        "class_name": "SiteBuilder",
        "show_how_to_buttons": False,
        "store_backend": {
            "class_name": "TupleFilesystemStoreBackend",
            "base_directory": str(settings.reports / DATA_DOCS_DIR),
        },
        "site_index_builder": {
            "class_name": "LeanSiteIndexBuilder",
            "module_name": "feature_repo.expectations.data_docs",
            "validation_results_limit": config.data_docs_history,
        },
    }


def _read_partition(layer: Layer, folder: Path) -> pa.Table:
    """The partition's rows as written (no cast to the definition: the suite judges the types)."""
    if layer == "raw":
        return pq.read_table(folder / lake.PART_FILE)
    if not any(folder.glob("*.parquet")):
        raise FileNotFoundError(f"no parquet part files in {folder}")
    # Spark's _SUCCESS and .crc files are skipped by pyarrow's dataset discovery (prefixes "_" and ".")
    return pq.read_table(folder)


def _definitions_module(layer: Layer) -> str:
    return "feature_repo.contract.schema" if layer == "raw" else "feature_repo.features.tables"


def _url_path(url: str) -> Path:
    parsed = urlparse(url)
    return Path(unquote(parsed.path)) if parsed.scheme == "file" else Path(url)


def _gate_failure(check: str, detail: str) -> FailedExpectation:
    return FailedExpectation(expectation=check, column=None, kwargs={}, error=detail, source="gate")


def _failure(result: ExpectationValidationResult, examples: int) -> FailedExpectation:
    config = result.expectation_config
    if config is None:  # Great Expectations always sets it on a suite's results
        raise ValueError(f"a validation result without its expectation: {result}")
    kwargs = {k: _plain(v) for k, v in config.kwargs.items() if k not in ("batch_id",)}
    column = kwargs.get("column")
    if column is None and "column_A" in kwargs:
        column = f"{kwargs['column_A']}, {kwargs['column_B']}"
    elif column is None and "column_list" in kwargs:
        column = ", ".join(kwargs["column_list"])
    details = result.result or {}
    distinct: list[Any] = []
    for value in details.get("partial_unexpected_list") or []:
        value = _plain(value)
        if value is not None and value not in distinct:
            distinct.append(value)
        if len(distinct) >= examples:
            break
    return FailedExpectation(
        expectation=config.type,
        column=column,
        kwargs=kwargs,
        observed=_plain(details.get("observed_value")),
        unexpected_count=details.get("unexpected_count"),
        unexpected_percent=_plain(details.get("unexpected_percent_total", details.get("unexpected_percent"))),
        unexpected_values=distinct,
        error=_error(result),
        source=(config.meta or {}).get("source"),
    )


def _error(result: ExpectationValidationResult) -> str | None:
    info = result.exception_info or {}
    entries = info.values() if "raised_exception" not in info else [info]
    for entry in entries:
        if isinstance(entry, dict) and entry.get("raised_exception"):
            message = str(entry.get("exception_message") or "exception")
            return message.strip().splitlines()[0][:300]
    return None


def _plain(value: Any) -> Any:
    """A JSON-able copy: numpy scalars to Python, timestamps to ISO strings, NaN and NaT to None."""
    if value is None or isinstance(value, str | bool | int):
        return value
    if value is pd.NaT:
        return None
    if isinstance(value, float):
        return None if math.isnan(value) else value
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [_plain(v) for v in value]
    if isinstance(value, dt.date | dt.datetime):
        return value.isoformat()
    if hasattr(value, "isoformat"):  # pandas Timestamp
        return value.isoformat()
    if hasattr(value, "item"):  # numpy scalar
        return _plain(value.item())
    return str(value)


# --- CLI ---------------------------------------------------------------------------------------------------------


@click.command("validate")
@click.option("--layer", type=click.Choice(LAYERS), required=True, help="Which layer's partitions to validate.")
@click.option("--date", "day", required=True, type=ISO_DATE, help="Partition date (YYYY-MM-DD).")
@click.option("--table", "tables", multiple=True, help="Only this table (repeatable) [default: every table].")
def validate_command(layer: Layer, day: dt.date, tables: tuple[str, ...]) -> None:
    """Validate a layer's partitions of one date; quarantine failures and exit 1 with the reasons."""
    try:
        outcomes = validate_day(layer, day, list(tables) or None)
    except ValidationFailed as err:
        click.echo(str(err), err=True)
        raise SystemExit(1) from None
    except KeyError as err:
        raise click.BadParameter(str(err.args[0]), param_hint="--table") from None
    click.echo(f"{layer} {day.isoformat()}: {len(outcomes)} table(s) passed; data docs: {outcomes[0].data_docs}")
