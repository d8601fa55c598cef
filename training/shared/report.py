"""The report renderer every model and monitor report uses: figures, Markdown and HTML pages, JSON without NaN.

Plots use matplotlib's object API on the Agg canvas (:func:`figure`): no pyplot, no global backend switch, so a
report drawn inside a test, a worker or the serving process changes nothing for the code around it. A page is a
title and a list of :class:`Section`; :func:`markdown` and :func:`html_page` render the same sections (the HTML
embeds its images, so one file can be attached to an alert or an MLflow run).
"""

from __future__ import annotations

import base64
import html
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class Section:
    heading: str
    paragraphs: tuple[str, ...] = ()
    table: pd.DataFrame | None = None
    image: str | None = None  # file name in the report folder
    items: tuple[str, ...] = ()  # a bulleted list, after the paragraphs
    level: int = 2  # 2: a section (##, <h2>); 3: a subsection


def figure(width: float, height: float, *, dpi: int = 80, layout: str | None = "constrained") -> Any:
    """A matplotlib Figure on its own Agg canvas (inches); add axes with ``fig.subplots(...)``."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=dpi, layout=layout)
    FigureCanvasAgg(fig)
    return fig


def percent_formatter(xmax: float = 1.0) -> Any:
    """Axis ticks as percentages of ``xmax`` (``ax.yaxis.set_major_formatter(percent_formatter())``)."""
    from matplotlib.ticker import PercentFormatter

    return PercentFormatter(xmax)


def save(fig: Any, path: Path, dpi: int = 80) -> Path:
    fig.savefig(path, dpi=dpi)
    return path


def png_base64(fig: Any, dpi: int = 90) -> str:
    """The figure as a base64 PNG, cropped to its content (for an ``<img src='data:...'>``)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    return base64.b64encode(buffer.getvalue()).decode()


def markdown_table(table: pd.DataFrame) -> str:
    """A pipe table of the frame's cells as text (the index is not shown)."""
    cells = [[str(c) for c in table.columns], *[[str(v) for v in row] for row in table.itertuples(index=False)]]
    lines = ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in cells]
    lines.insert(1, "|" + "|".join("---" for _ in table.columns) + "|")
    return "\n".join(lines)


def markdown(title: str, sections: list[Section]) -> str:
    parts = [f"# {title}", ""]
    for s in sections:
        parts += [f"{'#' * s.level} {s.heading}", ""]
        for paragraph in s.paragraphs:
            parts += [paragraph, ""]
        if s.items:
            parts += [*(f"- {item}" for item in s.items), ""]
        if s.image:
            parts += [f"![{s.heading}]({s.image})", ""]
        if s.table is not None:
            parts += [markdown_table(s.table), ""]
    return "\n".join(parts)


CSS = (
    "body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}"
    "table{border-collapse:collapse;font-size:13px;margin:1em 0}td,th{border:1px solid #ccc;padding:3px 7px;"
    "text-align:right}td:nth-child(-n+2),th{text-align:left}th{background:#f3f3f3}img{max-width:100%}"
)


def document(title: str, body: str, css: str = "") -> str:
    """A whole HTML page around ``body`` (already HTML): the one page shell every report and readout uses."""
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{CSS}{css}</style></head><body>{body}</body></html>"
    )


def html_table(header: list[str], rows: list[list[Any]]) -> str:
    """A table of already formatted cells, every cell escaped."""
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def html_page(title: str, sections: list[Section], folder: Path) -> str:
    """The sections as one HTML page; images are read from ``folder`` and embedded."""
    parts = [f"<h1>{html.escape(title)}</h1>"]
    for s in sections:
        parts.append(f"<h{s.level}>{html.escape(s.heading)}</h{s.level}>")
        parts += [f"<p>{html.escape(p)}</p>" for p in s.paragraphs]
        if s.items:
            parts.append("<ul>" + "".join(f"<li>{html.escape(item)}</li>" for item in s.items) + "</ul>")
        if s.image:
            data = base64.b64encode((folder / s.image).read_bytes()).decode("ascii")
            parts.append(f"<img alt='{html.escape(s.heading)}' src='data:image/png;base64,{data}'>")
        if s.table is not None:
            parts.append(s.table.to_html(index=False, escape=True, border=0))
    return document(title, "\n".join(parts))


def finite(obj: Any) -> Any:
    """JSON without NaN or infinity (which are not JSON): non-finite floats become null, numpy scalars Python ones."""
    if isinstance(obj, dict):
        return {k: finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [finite(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float):
        return obj if np.isfinite(obj) else None
    return obj
