"""What a section builder hands to the page: a figure (or why there is none), its caption, tables and downloads.

Builders return data, never HTML: the templates (autoescaped) turn it into markup, so no text from an input table
can reach the page unescaped.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import pandas as pd
import plotly.graph_objects as go

from mrdtrack.report.formatting import is_bool, plain, yes_no


@dataclass
class Cell:
    """A table cell with an optional second, smaller line, and HTML attributes (the `data-*` values a script or a
    browser test reads)."""

    text: str
    detail: str = ""
    attrs: dict[str, str] = field(default_factory=dict)


@dataclass
class Table:
    """A table under a figure. `facts` tables name each row in their first cell; `data` tables scroll; `answer`
    tables are the first screen's, in large type, never scrolled."""

    rows: list[list[str | Cell]]
    header: list[str] = field(default_factory=list)
    kind: Literal["data", "facts", "answer"] = "data"
    heading: str = ""
    total_rows: int = 0  # rows of the full table when more than `rows` (the TSV download has them all)
    folded: str = ""  # when set, the table is folded away under this summary line
    open: bool = False  # a folded table shown unfolded


@dataclass
class Note:
    """A short paragraph under a figure (e.g. why a table is absent)."""

    text: str
    kind: Literal["note"] = "note"


Block = Table | Note


@dataclass
class Section:
    """One figure (or, when it cannot be drawn, a message saying why) with its caption and data downloads.

    Parameters
    ----------
    key : str
        Names the section: its anchor on the page (`panel-<key>`) and its file in figures/ (`<key>.html`).
    title : str
        The section's heading.
    figure : plotly.graph_objects.Figure or None
        The figure; None when it could not be drawn (`message` says why).
    message : str
        Why there is no figure ("Not drawn: ...", "Not estimable: ...") or a plain note ("No flagged sample").
    caption : str
        The paragraph under the figure.
    blocks : list of Table or Note
        Tables and notes under the caption.
    above : list of Table or Note
        Tables and notes between the heading and the figure (the first screen's answer).
    downloads : dict of str to pandas.DataFrame
        TSV downloads embedded in the page, by file name.
    attrs : dict of str to str
        Extra HTML attributes of the section element (e.g. `data-lanes`).
    script : str
        JavaScript run once the figure is drawn, on the page and in the figure's own file.
    """

    key: str
    title: str
    figure: go.Figure | None = None
    message: str = ""
    caption: str = ""
    blocks: list[Block] = field(default_factory=list)
    above: list[Block] = field(default_factory=list)
    downloads: dict[str, pd.DataFrame] = field(default_factory=dict)
    attrs: dict[str, str] = field(default_factory=dict)
    # JavaScript run once the figure is drawn, on the page and in the figure's own file; `{plot_id}` is the
    # figure's div id (plotly's post_script).
    script: str = ""


def cell_text(value: Any) -> str:
    """A table cell as a reader wants it: missing as empty, floats to 4 significant digits, booleans Yes/No."""
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return ""
    if is_bool(value):
        return yes_no(value)
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def data_table(frame: pd.DataFrame, max_rows: int, heading: str = "") -> Table:
    """The first `max_rows` rows of `frame` (the download link carries all of them)."""
    shown = frame.head(max_rows)
    rows = [[cell_text(v) for v in row] for row in shown.itertuples(index=False)]
    total = len(frame) if len(frame) > max_rows else 0
    return Table(rows, [str(c) for c in frame.columns], "data", heading, total)


def facts_table(facts: Mapping[str, Any], heading: str = "") -> Table:
    """Name / value rows."""
    return Table([[str(k), plain(v)] for k, v in facts.items()], [], "facts", heading)


def transposed_table(frame: pd.DataFrame, names: Sequence[str], heading: str = "") -> Table:
    """A wide table of a few records as one column per record, so it fits the page width."""
    rows = [[str(column), *(cell_text(v) for v in frame[column])] for column in frame.columns]
    return Table(rows, ["", *names], "facts", heading)
