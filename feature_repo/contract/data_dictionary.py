"""Render the raw data contract as a Markdown data dictionary (``docs/data_dictionary.md``).

The dictionary is generated, never edited: ``schema.py`` is the source of truth, and a unit test fails when the
committed file differs from what this module renders.
"""

from __future__ import annotations

from pathlib import Path

import click

from feature_repo.contract.lake import PART_FILE
from feature_repo.contract.loader import CSV_SYNTAX
from feature_repo.contract.schema import ARROW_TYPES, TABLES, Column, Table

DEFAULT_OUTPUT = Path("docs/data_dictionary.md")

_INTRO = """\
# Raw data dictionary

> Generated from `feature_repo/contract/schema.py` by `storefront data-dictionary`: do not edit by hand.
> Regenerate with `make docs`.

The raw data contract: one table per event kind, the shape in which the simulator writes and real exports must
arrive. Data that does not match it is rejected with a reason per column, never coerced.

* **Entity snapshot** tables hold, in the partition of a date, the full state of every entity on that date.
* **Event** tables are partitioned by the UTC date of their event time.

All timestamps are UTC with microsecond precision. Money is in the shop's currency (EUR in the simulator);
durations are in milliseconds unless the unit says otherwise.
"""


def _cell(text: str) -> str:
    """Text safe inside a Markdown table cell."""
    return text.replace("|", "\\|").replace("\n", " ")


def _number(value: float) -> str:
    return f"{value:g}"


def _constraints(col: Column) -> str:
    parts: list[str] = []
    if col.allowed is not None:
        parts.append(", ".join(f"`{v}`" for v in col.allowed))
    if col.min is not None and col.max is not None:
        parts.append(f"[{_number(col.min)}, {_number(col.max)}]")
    elif col.min is not None:
        parts.append(f"≥ {_number(col.min)}")
    elif col.max is not None:
        parts.append(f"≤ {_number(col.max)}")
    if col.pattern is not None:
        parts.append(f"matches `{col.pattern}`")
    return _cell("; ".join(parts))


def _partition(table: Table) -> str:
    if table.column(table.partition_by).dtype == "timestamp":
        return f"UTC date of `{table.partition_by}`"
    return f"`{table.partition_by}`"


def _render_table(table: Table) -> list[str]:
    rules = "; ".join(rule.describe() for rule in table.rules) or "none"
    lines = [
        f"### `{table.name}`",
        "",
        table.description,
        "",
        f"* Kind: {table.kind}",
        f"* Grain: {table.grain}",
        f"* Partition (`dt=`): {_partition(table)}",
        f"* Primary key: {', '.join(f'`{k}`' for k in table.key)}",
        f"* Row rules: {rules}",
        "",
        "| column | type | null? | unit | allowed values / range / pattern | description |",
        "|---|---|---|---|---|---|",
    ]
    for col in table.columns:
        lines.append(
            f"| `{col.name}` | `{col.dtype}` | {'yes' if col.nullable else 'no'} | {_cell(col.unit or '')} "
            f"| {_constraints(col)} | {_cell(col.description)} |"
        )
    lines.append("")
    return lines


def render_data_dictionary() -> str:
    """The whole data dictionary as Markdown, a pure function of the contract."""
    lines = [_INTRO, "## Lake layout", ""]
    lines += [
        f"Each table lives under `<raw_root>/<table>/dt=YYYY-MM-DD/{PART_FILE}`, one parquet file per date",
        "(zstd, microsecond UTC timestamps, no pandas metadata: the same rows give the same bytes).",
        "Loading a date replaces its whole partition.",
        "",
        "| table | kind | grain | partition (`dt=`) | primary key |",
        "|---|---|---|---|---|",
    ]
    for table in TABLES.values():
        key = ", ".join(f"`{k}`" for k in table.key)
        link = f"[`{table.name}`](#{table.name})"
        lines.append(f"| {link} | {table.kind} | {table.grain} | {_partition(table)} | {key} |")
    lines += [
        "",
        "## Loading an export",
        "",
        "`storefront load-export SOURCE --raw-root PATH` loads a folder holding, per table, `<table>.parquet`,",
        "`<table>.csv` or a folder `<table>/` of parquet or CSV files (one format per table). Every table is",
        "checked before anything is written; one violation anywhere and nothing is written.",
        "",
        "Parquet columns must have the contract's Arrow type or one that converts losslessly (a narrower integer,",
        "`float32`, `large_string`, dictionary-encoded strings, another timestamp unit in UTC). CSV files need a",
        "header row; every field is read as text and must be written as below. An empty field, quoted or not, is null.",
        "",
        "| type | Arrow type | CSV text |",
        "|---|---|---|",
    ]
    for dtype, syntax in CSV_SYNTAX.items():
        lines.append(f"| `{dtype}` | `{ARROW_TYPES[dtype]}` | {_cell(syntax)} |")
    lines += ["", "## Tables", ""]
    for table in TABLES.values():
        lines += _render_table(table)
    return "\n".join(lines)


@click.command("data-dictionary")
@click.option(
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=DEFAULT_OUTPUT,
    show_default=True,
    help="Markdown file to write.",
)
@click.option("--check", is_flag=True, help="Write nothing; exit 1 if the file is not what would be generated.")
def data_dictionary_command(output: Path, check: bool) -> None:
    """Render the raw data dictionary from the contract (feature_repo/contract/schema.py)."""
    text = render_data_dictionary()
    if check:
        current = output.read_text(encoding="utf-8") if output.is_file() else None
        if current != text:
            state = "is missing" if current is None else "is out of date"
            click.echo(f"{output} {state}: run `make docs` (storefront data-dictionary) and commit it", err=True)
            raise click.exceptions.Exit(1)
        click.echo(f"{output} is up to date")
        return
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(text, encoding="utf-8")
    click.echo(f"wrote {output}")
