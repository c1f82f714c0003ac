"""The investigator report: one self-contained HTML file with every figure of an mrdtrack run.

plotly.js is embedded once in the page head and every figure is a plotly div drawn by it, so the file opens
offline and can be e-mailed. Each figure's data is embedded as a TSV `data:` link. The producers' tables are read
by column name and every panel degrades to a "not estimable / not drawn: reason" box instead of failing, because
a report that crashes on a cohort with no events tells the investigator nothing.
"""

from __future__ import annotations

import base64
import html
import importlib
import json
import logging
import math
import os
import re
import shutil
import string
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio
import plotly.offline
from plotly.subplots import make_subplots

import mrdtrack
from mrdtrack.logs import UserFacingError
from mrdtrack.tables import atomic_path

log = logging.getLogger(__name__)

PathLike = str | os.PathLike[str]
DAYS_PER_MONTH = 30.4375
ALL = "all"
DASH = "\u2013"

# Okabe & Ito (2008): distinguishable under the common colour-vision deficiencies.
MRD_COLORS = {"positive": "#D55E00", "negative": "#0072B2", "indeterminate": "#8C8C8C", "no call": "#C8C8C8"}
# A shape per status too, so the status still reads in grey-scale print.
MRD_SYMBOLS = {
    "positive": "diamond",
    "negative": "circle",
    "indeterminate": "circle-open",
    "no call": "x-thin-open",
}
MRD_LABELS = {
    "positive": "MRD-positive",
    "negative": "MRD-negative",
    "indeterminate": "indeterminate",
    "none": "no baseline sample",
    "all": "all patients",
}
MRD_SHORT = {
    "positive": "MRD+",
    "negative": "MRD\u2212",
    "indeterminate": "indet.",
    "none": "none",
    "all": "all",
}
STATUS_ORDER = ("positive", "negative", "indeterminate", "no call", "none", "all")
COHORT_COLORS = ("#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442")
# Fragment-length lines: (color, dash). Mutant molecules of MRD-positive samples take the MRD-positive color.
FRAGLEN_GROUPS = {
    "wild-type (REF)": ("#000000", "solid"),
    "mutant (ALT)": ("#E69F00", "solid"),
    "mutant (ALT), MRD-positive samples": ("#D55E00", "dot"),
}
EVENT_STYLE = {  # swimmer and trajectory event markers: (symbol, color, size)
    "progression": ("x", "#000000", 11),
    "death": ("square", "#000000", 9),
    "restart": ("triangle-right", "#E69F00", 11),
    "censored": ("line-ns-open", "#5F5F5F", 12),
}
SUBSTITUTIONS = ("C>A", "C>G", "C>T", "T>A", "T>C", "T>G")
BASES = "ACGT"
PLOTLY_CONFIG = {"displaylogo": False, "responsive": True}
# fmt: off
ID_COLUMNS = (
    "sample_id", "patient_id", "cohort", "batch", "group", "analysis", "chrom", "term", "model", "flags",
    "status_reason", "reason", "note", "mrd_status", "baseline_status", "sample_type", "collection_date",
    "enrollment_date", "pfs_date", "os_date", "restart_date", "first_positive_date", "endpoint", "allele",
    "substitution", "context", "orientation", "ref", "alt", "baseline_sample_id", "statuses",
)
# fmt: on
# fmt: off
TABLE_NAMES = (
    "calls", "loci", "context_rates", "locus_rates", "excluded", "samples", "patients", "joined", "km_curves",
    "km_summary", "cox", "endpoints", "design",
)
# fmt: on


# ---------------------------------------------------------------------------------------------------- settings


@dataclass(frozen=True)
class ReportSettings:
    """The `report:` config section (config/README.md)."""

    title: str = "ctDNA MRD report"
    study_name: str = "mrdtrack MRD study"
    report_date: str = ""
    static_formats: tuple[str, ...] = ()
    # None: automatic, a decade below the smallest TF > 0 or LOD95 (Context.tf_floor)
    tf_floor: float | None = None
    swimmer_sort: str = "cohort"
    risk_table_step_months: float = 0.0
    max_table_rows: int = 50

    @classmethod
    def from_config(
        cls, section: Mapping[str, Any] | None, config: Mapping[str, Any] | None = None
    ) -> ReportSettings:
        """Settings from the `report:` section, falling back to the top-level study_name / report_date."""
        section, config = dict(section or {}), dict(config or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(section) - known)
        if unknown:
            log.warning("ignoring unknown report setting(s): %s", ", ".join(unknown))
        values = {k: v for k, v in section.items() if k in known and v not in (None, "")}
        for key in ("study_name", "report_date"):
            if key not in values and config.get(key) not in (None, ""):
                values[key] = config[key]
        return cls._validated(values)

    @classmethod
    def _validated(cls, values: dict[str, Any]) -> ReportSettings:
        formats = values.get("static_formats", ())
        values["static_formats"] = tuple(str(f).lower().lstrip(".") for f in _as_list(formats))
        for key in ("title", "study_name", "report_date"):  # YAML turns 2024-05-01 into a date
            if key in values:
                values[key] = str(values[key])
        try:
            settings = cls(**values)
            if settings.tf_floor is not None:
                settings = cls(**{**values, "tf_floor": float(settings.tf_floor)})
        except (TypeError, ValueError) as error:
            raise UserFacingError(f"report settings: {error}") from None
        if settings.tf_floor is not None and not 0 < settings.tf_floor < 1:
            raise UserFacingError(f"report.tf_floor must be in (0, 1), got {settings.tf_floor}")
        if settings.swimmer_sort not in ("cohort", "time"):
            raise UserFacingError(
                f"report.swimmer_sort must be 'cohort' or 'time', got {settings.swimmer_sort!r}"
            )
        unsupported = set(settings.static_formats) - {"png", "svg", "pdf", "jpeg", "webp"}
        if unsupported:
            raise UserFacingError(f"report.static_formats: unsupported {sorted(unsupported)}")
        return settings


def _as_list(value: Any) -> list[Any]:
    if value is None or value == "":
        return []
    return [value] if isinstance(value, str | os.PathLike) else list(value)


# ---------------------------------------------------------------------------------------------------- inputs


@dataclass
class ReportInputs:
    """Paths of the tables the report reads; any may be missing (the panel then says so)."""

    calls: PathLike | None = None
    loci: PathLike | None = None
    context_rates: PathLike | None = None
    locus_rates: PathLike | None = None
    excluded: PathLike | None = None
    samples: PathLike | None = None
    patients: PathLike | None = None
    joined: PathLike | None = None
    km_curves: PathLike | None = None
    km_summary: PathLike | None = None
    cox: PathLike | None = None
    endpoints: PathLike | None = None
    design: PathLike | None = None
    summary: PathLike | None = None
    fraglen: Sequence[PathLike] = ()
    qc: Sequence[PathLike] = ()

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, Any]) -> ReportInputs:
        """Inputs from a name -> path(s) mapping such as `dict(snakemake.input.items())`."""
        values: dict[str, Any] = {}
        for f in fields(cls):
            if f.name not in mapping:
                continue
            paths = [str(p) for p in _as_list(mapping[f.name])]
            values[f.name] = tuple(paths) if f.name in ("fraglen", "qc") else (paths[0] if paths else None)
        return cls(**values)


@dataclass
class Tables:
    """Every input table as read (empty when missing), with why any could not be read."""

    frames: dict[str, pd.DataFrame]
    fraglen: pd.DataFrame
    qc: pd.DataFrame
    summary: dict[str, Any]
    problems: dict[str, str]

    def __getattr__(self, name: str) -> pd.DataFrame:
        frames = self.__dict__.get("frames", {})
        if name in frames:
            return frames[name]
        raise AttributeError(name)


def load_tables(inputs: ReportInputs) -> Tables:
    """Read every input; a missing or unreadable one becomes an empty table and a recorded problem."""
    problems: dict[str, str] = {}
    frames = {name: _read_table(getattr(inputs, name), name, problems) for name in TABLE_NAMES}
    summary = _read_json(inputs.summary, "summary", problems)
    return Tables(frames, _read_fraglen(inputs.fraglen), _read_qc(inputs.qc), summary, problems)


def _read_table(path: PathLike | None, name: str, problems: dict[str, str]) -> pd.DataFrame:
    if path is None:
        problems[name] = "not given"
        return pd.DataFrame()
    file = Path(path)
    if not file.is_file() or file.stat().st_size == 0:
        problems[name] = f"{file.name} is {'empty' if file.is_file() else 'missing'}"
        return pd.DataFrame()
    try:
        dtypes = dict.fromkeys(ID_COLUMNS, str)
        return pd.read_csv(file, sep="\t", dtype=dtypes, keep_default_na=False, na_values=[""])
    except (ValueError, UnicodeDecodeError, OSError) as error:  # pandas' parser errors are ValueErrors
        problems[name] = f"{file.name} could not be read ({error})"
        log.warning("report: %s", problems[name])
        return pd.DataFrame()


def _read_json(path: PathLike | None, name: str, problems: dict[str, str]) -> dict[str, Any]:
    if path is None or not Path(path).is_file():
        problems[name] = "not given" if path is None else f"{Path(path).name} is missing"
        return {}
    try:
        data = json.loads(Path(path).read_text())
    except (ValueError, OSError) as error:
        problems[name] = f"{Path(path).name} could not be read ({error})"
        return {}
    return data if isinstance(data, dict) else {}


def _sample_name(path: PathLike, suffix: str) -> str:
    name = Path(path).name
    return name[: -len(suffix)] if name.endswith(suffix) else name


def _read_fraglen(paths: Sequence[PathLike]) -> pd.DataFrame:
    parts = []
    for path in paths:
        frame = _read_table(path, "fraglen", {})
        if {"allele", "length", "molecules"} <= set(frame.columns):
            parts.append(frame.assign(sample_id=_sample_name(path, ".fraglen.tsv")))
    if not parts:
        return pd.DataFrame(columns=["sample_id", "allele", "length", "molecules"])
    return pd.concat(parts, ignore_index=True)


def _read_qc(paths: Sequence[PathLike]) -> pd.DataFrame:
    rows = []
    for path in paths:
        data = _read_json(path, "qc", {})
        flat = {k: v for k, v in data.items() if not isinstance(v, dict | list)}
        if flat:
            rows.append({"sample_id": _sample_name(path, ".qc.json"), **flat})
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------------------------------- derived


def _num(frame: pd.DataFrame, column: str) -> pd.Series:
    """A numeric column, or all-missing when the producer did not write it."""
    if column not in frame.columns:
        return pd.Series(np.nan, index=frame.index, dtype=float)
    return pd.to_numeric(frame[column], errors="coerce")


def _text(frame: pd.DataFrame, column: str, default: str = "") -> pd.Series:
    if column not in frame.columns:
        return pd.Series(default, index=frame.index, dtype=object)
    return frame[column].astype(object).where(frame[column].notna(), default).astype(str)


def _months_between(later: pd.Series, earlier: pd.Series) -> pd.Series:
    days = pd.to_datetime(later, errors="coerce") - pd.to_datetime(earlier, errors="coerce")
    return days.dt.days / DAYS_PER_MONTH


def normalize_status(value: Any) -> str:
    """positive / negative / indeterminate, or 'no call' when the status is missing."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "no call"
    text = str(value).strip().lower()
    return text if text else "no call"


def _normalize_cohort(value: Any) -> str:
    text = "" if value is None or (isinstance(value, float) and math.isnan(value)) else str(value).strip()
    return ALL if text.lower() in ("", "all", "pooled", "overall") else text


def patient_frame(tables: Tables) -> pd.DataFrame:
    """One row per patient with months to progression, death and restart (computed from dates if needed)."""
    frame = tables.patients
    if "patient_id" not in frame.columns:
        frame = tables.joined if "patient_id" in tables.joined.columns else tables.calls
        frame = (
            frame[["patient_id"]] if "patient_id" in frame.columns else pd.DataFrame(columns=["patient_id"])
        )
    frame = frame.dropna(subset=["patient_id"]).drop_duplicates("patient_id").reset_index(drop=True)
    out = frame.copy()
    out["cohort"] = _text(frame, "cohort", "unknown").replace("", "unknown")
    for prefix in ("pfs", "os", "restart"):
        months = _num(frame, f"{prefix}_months")
        if f"{prefix}_date" in frame.columns and "enrollment_date" in frame.columns:
            months = months.fillna(_months_between(frame[f"{prefix}_date"], frame["enrollment_date"]))
        out[f"{prefix}_months"] = months
    out["pfs_event"] = _num(frame, "pfs_event")
    out["os_event"] = _num(frame, "os_event")
    out["baseline_status"] = _text(frame, "baseline_status").map(normalize_status)
    return out


def sample_frame(tables: Tables, patients: pd.DataFrame) -> pd.DataFrame:
    """One row per plasma sample with its call, cohort and months from enrollment."""
    base = tables.calls if "sample_id" in tables.calls.columns else tables.joined
    if "sample_id" not in base.columns or "patient_id" not in base.columns:
        return pd.DataFrame(columns=["sample_id", "patient_id", "cohort", "months", "status"])
    out = base.dropna(subset=["sample_id"]).drop_duplicates("sample_id").reset_index(drop=True)
    out["months"] = _sample_months(out, tables.joined, patients)
    out["status"] = _text(out, "mrd_status").map(normalize_status)
    cohorts = dict(zip(patients["patient_id"], patients["cohort"], strict=True))
    out["cohort"] = out["patient_id"].map(cohorts).fillna("unknown")
    for column in ("tumor_fraction", "tf_ci_low", "tf_ci_high", "lod95", "p_value"):
        out[column] = _num(out, column)
    return out


def _sample_months(samples: pd.DataFrame, joined: pd.DataFrame, patients: pd.DataFrame) -> pd.Series:
    months = _num(samples, "months_from_enrollment")
    if {"sample_id", "months_from_enrollment"} <= set(joined.columns):
        known = dict(
            zip(
                joined["sample_id"],
                pd.to_numeric(joined["months_from_enrollment"], errors="coerce"),
                strict=True,
            )
        )
        months = months.fillna(samples["sample_id"].map(known))
    if "collection_date" in samples.columns and "enrollment_date" in patients.columns:
        enrolled = samples["patient_id"].map(
            dict(zip(patients["patient_id"], patients["enrollment_date"], strict=True))
        )
        months = months.fillna(_months_between(samples["collection_date"], enrolled))
    return months


@dataclass
class Context:
    """What every panel builder sees: the tables, the settings and the derived patient / sample frames."""

    tables: Tables
    settings: ReportSettings
    config: Mapping[str, Any]
    patients: pd.DataFrame
    samples: pd.DataFrame

    @classmethod
    def build(cls, tables: Tables, settings: ReportSettings, config: Mapping[str, Any]) -> Context:
        patients = patient_frame(tables)
        return cls(tables, settings, config, patients, sample_frame(tables, patients))

    def tf_floor(self) -> float:
        """The log-axis plotting floor for a tumor fraction of 0: report.tf_floor, else a power of ten at least a
        decade below the smallest positive tumor fraction or LOD95 (1e-6 when there is none)."""
        if self.settings.tf_floor is not None:
            return self.settings.tf_floor
        values = pd.concat([_num(self.samples, "tumor_fraction"), _num(self.samples, "lod95")]).dropna()
        values = values[values > 0]
        if values.empty:
            return 1e-6
        return float(10 ** max(math.floor(math.log10(float(values.min())) - 1), -9))

    def cohorts(self) -> list[str]:
        names = set(self.patients["cohort"]) if "cohort" in self.patients.columns else set()
        if "cohort" in self.tables.km_curves.columns:
            names |= {_normalize_cohort(c) for c in self.tables.km_curves["cohort"]}
        return sorted(names - {ALL, "unknown"})

    def cohort_color(self, cohort: str) -> str:
        names = self.cohorts()
        return COHORT_COLORS[names.index(cohort) % len(COHORT_COLORS)] if cohort in names else "#BBBBBB"

    def unavailable(self, table: str, columns: Sequence[str]) -> str:
        """Why `table` cannot be drawn ('' when it can): empty, unreadable or lacking `columns`."""
        frame = self.tables.frames.get(table, pd.DataFrame())
        if frame.empty:
            problem = self.tables.problems.get(table)
            return f"no rows in the {table} table" + (f" ({problem})" if problem else "")
        lacking = [c for c in columns if c not in frame.columns]
        return f"the {table} table lacks column(s) {', '.join(lacking)}" if lacking else ""


# ---------------------------------------------------------------------------------------------------- panels


@dataclass
class Panel:
    """One figure (or, when it cannot be drawn, a message saying why) with its caption and data downloads."""

    key: str
    title: str
    figure: go.Figure | None = None
    message: str = ""
    caption: str = ""
    html: str = ""  # extra trusted HTML built by this module (tables)
    downloads: dict[str, pd.DataFrame] = field(default_factory=dict)
    attrs: dict[str, str] = field(default_factory=dict)


def _fmt(value: Any, spec: str = ".3g", missing: str = "\u2013") -> str:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return missing
    return missing if math.isnan(number) else format(number, spec)


def _count(n: float, noun: str, plural: str = "") -> str:
    """'1 event', '3 events'."""
    n = int(n)
    return f"{n} {noun if n == 1 else (plural or noun + 's')}"


def _fmt_p(p: float | None) -> str:
    if p is None or math.isnan(p):
        return "not available"
    return "< 0.001" if p < 0.001 else f"{p:.2g}"


def _status_label(status: str) -> str:
    return MRD_LABELS.get(status, status)


def _status_color(status: str) -> str:
    return "#000000" if status == "all" else MRD_COLORS.get(status, "#BBBBBB")


def _ordered(statuses: Sequence[str]) -> list[str]:
    present = list(dict.fromkeys(statuses))
    return [s for s in STATUS_ORDER if s in present] + sorted(s for s in present if s not in STATUS_ORDER)


def _base_layout(fig: go.Figure, height: int, **extra: Any) -> go.Figure:
    """One look for every figure; `extra` layout keys override the defaults."""
    layout = {
        "template": "simple_white",
        "height": height,
        "margin": {"l": 70, "r": 30, "t": 85, "b": 60},
        "font": {"family": "Arial, sans-serif", "size": 13},
        "hoverlabel": {"namelength": -1},
        # The legend sits in its own band below the mode bar (34 px from the top), the buttons (if any) just
        # above the plot area, so none of the three overlap.
        "legend": {
            "orientation": "h",
            "yref": "container",
            "y": 1 - 34 / height,
            "yanchor": "top",
            "x": 0,
            "xanchor": "left",
        },
    }
    fig.update_layout(**{**layout, **extra})
    return fig


def _menu(buttons: list[dict[str, Any]], active: int = 0) -> dict[str, Any]:
    """Buttons right-aligned just above the plot area."""
    return {"type": "buttons", "direction": "right", "x": 1, "xanchor": "right", "y": 1.0, "yanchor": "bottom",
            "buttons": buttons, "active": active, "pad": {"b": 6}, "showactive": True}  # fmt: skip


def _reference_line(fig: go.Figure, axis: str, value: float, **line: Any) -> None:
    """A dashed reference line; the 'simple_white' template draws shape lines with width 0 unless told."""
    style = {"dash": "dash", "color": "#8C8C8C", "width": 1.5} | line
    if axis == "x":
        fig.add_vline(x=value, line=style)
    else:
        fig.add_hline(y=value, line=style)


def _status_legend(fig: go.Figure, statuses: Sequence[str], **trace_kwargs: Any) -> None:
    """Legend-only traces so every figure explains its MRD colors the same way."""
    for status in _ordered(statuses):
        fig.add_trace(
            go.Scatter(
                x=[None],
                y=[None],
                mode="markers",
                name=_status_label(status),
                legendgroup=f"status-{status}",
                marker={
                    "color": _status_color(status),
                    "symbol": MRD_SYMBOLS.get(status, "circle"),
                    "size": 9,
                },
                **trace_kwargs,
            )
        )


# ---------------------------------------------------------------------------------------------------- survival


def panels_km(ctx: Context) -> list[Panel]:
    """Kaplan-Meier PFS by baseline MRD status"""
    return [_km_panel(ctx, ALL)] + [_km_panel(ctx, cohort) for cohort in ctx.cohorts()]


def _km_rows(curves: pd.DataFrame, cohort: str) -> pd.DataFrame:
    if curves.empty or not {"group", "time", "survival"} <= set(curves.columns):
        return curves.iloc[0:0]
    cohorts = curves["cohort"].map(_normalize_cohort) if "cohort" in curves.columns else ALL
    analysis = _text(curves, "analysis", "overall" if cohort == ALL else "cohort")
    wanted = (analysis == ("overall" if cohort == ALL else "cohort")) & (cohorts == cohort)
    rows = curves[wanted].copy()
    rows["status"] = rows["group"].map(normalize_status)
    for column in ("time", "survival", "ci_low", "ci_high", "at_risk", "events", "censored"):
        rows[column] = _num(rows, column)
    return rows.dropna(subset=["time", "survival"]).sort_values(["status", "time"])


def _km_panel(ctx: Context, cohort: str) -> Panel:
    key = "km_pooled" if cohort == ALL else f"km_{_slug(cohort)}"
    who = "all patients (cohorts pooled)" if cohort == ALL else f"cohort {cohort}"
    panel = Panel(key, f"PFS by baseline MRD status: {who}")
    curves = ctx.tables.km_curves
    rows = _km_rows(curves, cohort)
    if rows.empty:
        panel.message = f"Not estimable: {_km_reason(ctx, cohort)}"
        return panel
    stats = _km_stats_text(ctx, cohort)
    panel.figure = _km_figure(rows, stats, ctx.settings.risk_table_step_months)
    banded = any(t.fill == "tonexty" for t in panel.figure.data)
    panel.caption = (
        "Kaplan-Meier estimate of progression-free survival by MRD status of the baseline plasma sample; "
        + ("shaded bands: pointwise 95% CI (log-log); " if banded else "")
        + "vertical ticks: censored patients; table: number at risk. "
        + f"{stats}. {_km_medians(ctx.tables.km_summary, cohort)}{_km_ungrouped(ctx, rows, cohort)}"
    )
    panel.downloads[f"{key}.tsv"] = curves.loc[rows.index].sort_index()
    return panel


def _km_ungrouped(ctx: Context, rows: pd.DataFrame, cohort: str) -> str:
    """Patients in no MRD group (no baseline sample in the window): they are only in the all-patients curve."""
    patients = ctx.patients if cohort == ALL else ctx.patients[ctx.patients["cohort"] == cohort]
    outside = patients[~patients["baseline_status"].isin(set(rows["status"]) - {ALL})]
    if outside.empty:
        return ""
    ids = ", ".join(outside["patient_id"].astype(str).head(10)) + (", \u2026" if len(outside) > 10 else "")
    where = ' only in "all patients"' if ALL in set(rows["status"]) else " not shown"
    verb = "has" if len(outside) == 1 else "have"
    return f" {_count(len(outside), 'patient')} ({ids}) {verb} no baseline MRD call and {'is' if len(outside) == 1 else 'are'}{where}."


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in str(text).lower()).strip("_") or "x"


def _km_reason(ctx: Context, cohort: str) -> str:
    """Why no curve: the producer's note if it wrote one, otherwise what the patient table shows."""
    problem = ctx.unavailable("km_curves", ["group", "time", "survival"])
    notes = [str(n) for n in _notes(ctx.tables.summary) if cohort == ALL or cohort in str(n)]
    patients = ctx.patients if cohort == ALL else ctx.patients[ctx.patients["cohort"] == cohort]
    called = patients["baseline_status"].isin(["positive", "negative"]).sum()
    events = int((patients["pfs_event"] == 1).sum())
    if len(patients) and called == 0:
        reason = (
            f"none of the {len(patients)} patients has a baseline MRD call (positive/negative) in the window"
        )
    elif len(patients) and events == 0:
        reason = f"no PFS event among the {len(patients)} patients"
    else:
        reason = f"no curve was estimated ({len(patients)} patients, {called} with a baseline call, {events} events)"
    extra = "; ".join(([problem] if problem else []) + notes[:3])
    return reason + (f"; {extra}" if extra else "")


def _notes(summary: Mapping[str, Any]) -> list[str]:
    notes = summary.get("notes") or []
    return [str(n) for n in notes] if isinstance(notes, list) else [str(notes)]


def _km_figure(rows: pd.DataFrame, stats: str, step: float) -> go.Figure:
    statuses = _ordered(rows["status"].tolist())
    table_share = 0.08 + 0.055 * len(statuses)
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[1 - table_share, table_share],
                        vertical_spacing=0.16)  # fmt: skip
    ticks = _risk_ticks(float(rows["time"].max()), step)
    for status in statuses:
        curve = rows[rows["status"] == status]
        _add_km_curve(fig, curve, status)
        _add_risk_row(fig, curve, status, ticks)
    height = 560 + 22 * len(statuses)
    _base_layout(fig, height, hovermode="closest")
    # The test results get a line of their own above the legend (a legend title would push the entries aside).
    stats_line = {"text": stats, "x": 0, "xref": "paper", "xanchor": "left", "yref": "container",
                  "y": 1 - 34 / height, "yanchor": "top", "font": {"size": 14}}  # fmt: skip
    fig.update_layout(title=stats_line, legend_y=1 - 60 / height, margin={"t": 118})
    fig.update_yaxes(title_text="PFS probability", range=[0, 1.03], tickformat=".0%", row=1, col=1)
    x_range = [-0.03 * ticks[-1], ticks[-1] * 1.03]
    fig.update_xaxes(title_text="Months since enrollment", tickvals=ticks, range=x_range, showticklabels=True,
                     row=1, col=1)  # fmt: skip
    labels = [MRD_SHORT.get(s, s) for s in statuses]
    fig.update_yaxes(type="category", categoryorder="array", categoryarray=labels[::-1], showgrid=False,
                     showline=False, ticks="", range=[-0.6, len(labels) - 0.4], row=2, col=1)  # fmt: skip
    fig.update_xaxes(showticklabels=False, showline=False, ticks="", row=2, col=1)
    fig.add_annotation(text="<b>Number at risk</b>", xref="paper", yref="paper", x=0, y=table_share + 0.005,
                       xanchor="left", yanchor="bottom", showarrow=False, font={"size": 12})  # fmt: skip
    return fig


def _add_km_curve(fig: go.Figure, curve: pd.DataFrame, status: str) -> None:
    color, label = _status_color(status), _status_label(status)
    n = _fmt(curve["at_risk"].iloc[0], ".0f", "?")
    events = int(curve["events"].fillna(0).sum())
    reference = status == "all"  # every patient, for context: no band, so the MRD groups stay readable
    if not reference:
        _add_km_band(fig, curve, status)
    line = {
        "color": color,
        "width": 1.5 if reference else 2.5,
        "shape": "hv",
        "dash": "dash" if reference else "solid",
    }
    fig.add_trace(
        go.Scatter(
            x=curve["time"], y=curve["survival"], mode="lines", line=line, name=f"{label} (n={n}, {_count(events, 'event')})",
            legendgroup=status, hovertemplate=f"{label}<br>%{{x:.1f}} months: PFS %{{y:.1%}}<extra></extra>",
        ),
        row=1, col=1,
    )  # fmt: skip
    censored = curve[curve["censored"].fillna(0) > 0]
    fig.add_trace(
        go.Scatter(
            x=censored["time"], y=censored["survival"], mode="markers", legendgroup=status, showlegend=False,
            marker={"symbol": "line-ns-open", "size": 11, "color": color, "line": {"width": 2}},
            hovertemplate=f"{label}: censored at %{{x:.1f}} months<extra></extra>",
        ),
        row=1, col=1,
    )  # fmt: skip


def _add_km_band(fig: go.Figure, curve: pd.DataFrame, status: str) -> None:
    """The CI as a filled step band: the upper edge fills down to the lower edge drawn just before it."""
    if curve["ci_low"].isna().all() or curve["ci_high"].isna().all():
        return
    band = {"mode": "lines", "line": {"width": 0, "shape": "hv"}, "legendgroup": status, "showlegend": False}
    fig.add_trace(go.Scatter(x=curve["time"], y=curve["ci_low"], hoverinfo="skip", **band), row=1, col=1)
    fill = _rgba(_status_color(status), 0.16)
    fig.add_trace(
        go.Scatter(x=curve["time"], y=curve["ci_high"], fill="tonexty", fillcolor=fill, hoverinfo="skip", **band),
        row=1, col=1,
    )  # fmt: skip


def _add_risk_row(fig: go.Figure, curve: pd.DataFrame, status: str, ticks: list[float]) -> None:
    if curve["at_risk"].isna().all():
        return
    times, at_risk = curve["time"].to_numpy(), curve["at_risk"].to_numpy()
    # Rows are one per distinct time, so the number at risk at t is that of the first row at or after t.
    counts = []
    for tick in ticks:
        later = np.flatnonzero(times >= tick - 1e-9)
        counts.append(_fmt(at_risk[later[0]], ".0f") if len(later) else "0")
    label = MRD_SHORT.get(status, status)
    fig.add_trace(
        go.Scatter(
            x=ticks,
            y=[label] * len(ticks),
            mode="text",
            text=counts,
            showlegend=False,
            legendgroup=status,
            textfont={"color": _status_color(status), "size": 13},
            hoverinfo="skip",
            cliponaxis=False,
        ),
        row=2,
        col=1,
    )


def _risk_ticks(t_max: float, step: float) -> list[float]:
    if not step or step <= 0:
        step = next((s for s in (1, 2, 3, 6, 12, 24, 48) if t_max / s <= 8), 60)
    count = int(math.floor(t_max / step + 1e-9)) + 1
    return [round(i * step, 6) for i in range(max(count, 2))]


def _rgba(color: str, alpha: float) -> str:
    r, g, b = (int(color[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r},{g},{b},{alpha})"


def _logrank_p(summary: Mapping[str, Any], cohort: str) -> float | None:
    logrank = summary.get("logrank") or {}
    if not isinstance(logrank, Mapping):
        return None
    entry = logrank.get("overall") if cohort == ALL else _cohort_entry(logrank.get("per_cohort"), cohort)
    return _p_value(entry)


def _cohort_entry(container: Any, cohort: str) -> Any:
    if isinstance(container, Mapping):
        return container.get(cohort)
    if isinstance(container, list):
        return next((e for e in container if isinstance(e, Mapping) and str(e.get("cohort")) == cohort), None)
    return None


def _p_value(entry: Any) -> float | None:
    if isinstance(entry, Mapping):
        entry = next((entry[k] for k in ("p_value", "p", "pvalue", "p_val") if k in entry), None)
    try:
        value = float(entry)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return None if math.isnan(value) else value


def _baseline_hr(cox: pd.DataFrame, cohort: str) -> pd.Series | None:
    if not {"model", "hr"} <= set(cox.columns):
        return None
    cohorts = cox["cohort"].map(_normalize_cohort) if "cohort" in cox.columns else ALL
    rows = cox[(cox["model"] == "baseline_unadjusted") & (cohorts == cohort)]
    rows = rows[np.isfinite(_num(rows, "hr"))]
    return rows.iloc[0] if len(rows) else None


def _hr_text(row: pd.Series) -> str:
    hr = f"HR {_fmt(row.get('hr'), '.2f')} (95% CI {_fmt(row.get('hr_ci_low'), '.2f')}\u2013"
    return hr + f"{_fmt(row.get('hr_ci_high'), '.2f')})"


def _logrank_note(summary: Mapping[str, Any], cohort: str) -> str:
    logrank = summary.get("logrank") or {}
    if not isinstance(logrank, Mapping):
        return ""
    entry = logrank.get("overall") if cohort == ALL else _cohort_entry(logrank.get("per_cohort"), cohort)
    return str(entry.get("note") or "") if isinstance(entry, Mapping) else ""


def _km_stats_text(ctx: Context, cohort: str) -> str:
    p = _logrank_p(ctx.tables.summary, cohort)
    note = _logrank_note(ctx.tables.summary, cohort)
    parts = [f"log-rank p = {_fmt_p(p)}" if p is not None or not note else f"log-rank: {note}"]
    hr = _baseline_hr(ctx.tables.cox, cohort)
    term = f" [{hr.get('term')}]" if hr is not None and pd.notna(hr.get("term")) else ""
    parts.append(f"{_hr_text(hr)}{term}" if hr is not None else "HR not estimable")
    return "; ".join(parts)


def _first_present(row: pd.Series, names: Iterable[str]) -> Any:
    return next((row[n] for n in names if n in row.index and pd.notna(row[n])), np.nan)


def _km_medians(summary: pd.DataFrame, cohort: str) -> str:
    if not {"group", "median"} <= set(summary.columns):
        return ""
    cohorts = summary["cohort"].map(_normalize_cohort) if "cohort" in summary.columns else ALL
    analysis = _text(summary, "analysis", "overall" if cohort == ALL else "cohort")
    rows = summary[(cohorts == cohort) & (analysis == ("overall" if cohort == ALL else "cohort"))]
    firsts = rows.groupby("group", sort=False).first()
    firsts.index = firsts.index.map(normalize_status)
    parts = []
    for group, first in firsts.loc[_ordered(list(firsts.index))].iterrows():
        if pd.notna(first.get("n")) and float(first.get("n")) == 0:
            continue
        median = first.get("median")
        low, high = (
            _first_present(first, [f"median_ci_{side}{x}" for x in ("_loglog", "_log", "")])
            for side in ("low", "high")
        )
        known = pd.notna(low) or pd.notna(high)
        ci = f" (95% CI {_fmt(low, '.1f')}\u2013{_fmt(high, '.1f', 'not reached')})" if known else ""
        value = "not reached" if pd.isna(median) else f"{_fmt(median, '.1f')} months{ci}"
        parts.append(f"{_status_label(str(group))} {value}")
    return ("Median PFS: " + "; ".join(parts) + ".") if parts else ""


def panel_forest(ctx: Context) -> Panel:
    """Hazard ratios (Cox models)"""
    panel = Panel("forest", "Hazard ratios for progression (Cox models)")
    cox = ctx.tables.cox
    problem = ctx.unavailable("cox", ["model", "hr"])
    if problem:
        panel.message = f"Not estimable: {problem}"
        return panel
    rows = cox.assign(hr_=_num(cox, "hr"), lo_=_num(cox, "hr_ci_low"), hi_=_num(cox, "hr_ci_high"))
    ok = np.isfinite(rows["hr_"]) & (rows["hr_"] > 0)
    panel.downloads["cox.tsv"] = cox
    skipped = _not_estimable_models(rows[~ok & ~_estimated_model(rows, ok)])
    panel.html = _skipped_models_html(skipped, expanded=not ok.any())
    if not ok.any():
        panel.message = (
            f"Not estimable: none of the {_count(len(skipped), 'model')} gave a hazard ratio (reasons below)"
        )
        return panel
    panel.figure = _forest_figure(rows[ok])
    panel.caption = (
        "Hazard ratio of progression with 95% CI (log scale; HR > 1: higher hazard). Baseline models use the "
        "baseline MRD status; landmark models only patients still progression-free at the landmark; time-"
        "varying models the status of the latest sample (counting process), avoiding immortal-time bias."
        + (f" {_count(len(skipped), 'model')} could not be estimated (listed below)." if len(skipped) else "")
    )
    return panel


def _estimated_model(rows: pd.DataFrame, ok: pd.Series) -> pd.Series:
    """Rows of a (model, cohort) fit that gave some hazard ratio (an adjusted model's covariate rows)."""
    keys = _text(rows, "model") + "\t" + _text(rows, "cohort", ALL)
    return keys.isin(set(keys[ok]))


def _short_note(note: str, limit: int = 240) -> str:
    """A producer's note without the fitting library's advice and links, at most `limit` characters."""
    note = re.sub(r"\s*Please see [^:]*:\s*", " ", note)
    # A link ends at white space, or at a capital when the next sentence was glued to it ("...-modelA singular").
    note = re.sub(r"https?://\S*?(?=[A-Z][a-z]* [a-z]|\s|$)", "", note)
    note = re.sub(r"\s+", " ", note).strip()
    return note if len(note) <= limit else note[: limit - 1].rstrip() + "\u2026"


def _not_estimable_models(rows: pd.DataFrame) -> pd.DataFrame:
    """One row per model and cohort that gave no hazard ratio, with its (shortened) note."""
    table = pd.DataFrame(
        {
            "model": _text(rows, "model"),
            "cohort": _text(rows, "cohort", ALL).replace("", ALL),
            "note": [_short_note(n) for n in _text(rows, "note", "no estimate").replace("", "no estimate")],
        }
    )
    return table.drop_duplicates(["model", "cohort"]).reset_index(drop=True)


def _skipped_models_html(skipped: pd.DataFrame, expanded: bool) -> str:
    if skipped.empty:
        return ""
    table = skipped.to_html(index=False, classes="data", border=0, escape=True)
    return (
        f'<details class="skipped-models"{" open" if expanded else ""}><summary>{_count(len(skipped), "model")} not estimable'
        f"</summary>{table}</details>"
    )


def _text_or(row: Any, name: str, default: str) -> str:
    value = getattr(row, name, None)
    return (
        default
        if value is None or (isinstance(value, float) and math.isnan(value)) or value == ""
        else str(value)
    )


def _forest_figure(rows: pd.DataFrame) -> go.Figure:
    labels = [
        f"{r.model} \u00b7 {_text_or(r, 'cohort', 'all')} \u00b7 {_text_or(r, 'term', '')}   "
        f"{_fmt(r.hr_, '.2f')} ({_fmt(r.lo_, '.2f')}\u2013{_fmt(r.hi_, '.2f')})"
        for r in rows.itertuples()
    ]
    lo = rows["lo_"].clip(lower=1e-3).fillna(rows["hr_"])
    hi = rows["hi_"].clip(upper=1e3).fillna(rows["hr_"])
    seg_x = [v for a, b in zip(lo, hi, strict=True) for v in (a, b, None)]
    seg_y = [v for label in labels for v in (label, label, None)]
    p = _num(rows, "p_wald").fillna(_num(rows, "p_lr"))
    ph = _num(rows, "ph_p")  # the proportional-hazards test, when the producer ran it
    hover = [
        f"{label}<br>n={_fmt(n, '.0f')}, events={_fmt(e, '.0f')}, p={_fmt_p(pv)}"
        + ("" if math.isnan(php) else f"<br>proportional hazards test p={_fmt_p(php)}")
        for label, n, e, pv, php in zip(labels, _num(rows, "n"), _num(rows, "events"), p, ph, strict=True)
    ]
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(
            x=seg_x,
            y=seg_y,
            mode="lines",
            line={"color": "#333333", "width": 2},
            hoverinfo="skip",
            showlegend=False,
        )
    )
    fig.add_trace(
        go.Scatter(
            x=rows["hr_"],
            y=labels,
            mode="markers",
            text=hover,
            showlegend=False,
            marker={"symbol": "square", "size": 10, "color": "#000000"},
            hovertemplate="%{text}<extra></extra>",
        )
    )
    _reference_line(fig, "x", 1)
    _base_layout(fig, max(300, 34 * len(labels) + 120), margin={"l": 20, "r": 30, "t": 40, "b": 60})
    fig.update_xaxes(type="log", title_text="Hazard ratio (95% CI), log scale")
    fig.update_yaxes(type="category", categoryorder="array", categoryarray=labels[::-1], automargin=True)
    return fig


def panel_endpoints(ctx: Context) -> Panel:
    """Trial endpoints"""
    panel = Panel("endpoints", "Trial endpoints per cohort and the two-stage decision")
    endpoints = ctx.tables.endpoints
    design = _design_values(ctx)
    panel.html = _design_html(ctx, design)
    if not ctx.tables.design.empty:
        panel.downloads["design.tsv"] = ctx.tables.design
    problem = ctx.unavailable("endpoints", ["cohort", "endpoint", "estimate"])
    if problem:
        panel.message = f"Not estimable: {problem}"
        return panel
    panel.downloads["endpoints.tsv"] = endpoints
    panel.figure = _endpoints_figure(endpoints, design)
    panel.caption = (
        "Trial endpoints per cohort with their CI (PFS / OS: Kaplan-Meier at the horizon). Dashed lines: the "
        "design's null (p0) and target (p1) progression-free rate. The two-stage design and its decision are "
        "tabulated below." + _endpoint_gaps(endpoints) + _notes_about(ctx, ("endpoint", "design"))
    )
    return panel


def _endpoint_gaps(endpoints: pd.DataFrame) -> str:
    """Which endpoint / cohort has no estimate, and the producer's reason."""
    missing = endpoints[_num(endpoints, "estimate").isna()]
    parts = []
    for (endpoint, note), rows in missing.groupby(
        [
            endpoints["endpoint"].astype(str),
            _text(endpoints, "note", "no estimate").replace("", "no estimate"),
        ],
        sort=False,
    ):
        cohorts = ", ".join(rows["cohort"].map(_normalize_cohort).astype(str))
        parts.append(f"{endpoint_label(str(endpoint))} ({cohorts}): {note}")
    return (" Not estimable: " + "; ".join(parts) + ".") if parts else ""


def _notes_about(ctx: Context, words: Sequence[str]) -> str:
    notes = [n for n in _notes(ctx.tables.summary) if any(w in n.lower() for w in words)]
    return (" Notes: " + "; ".join(notes) + ".") if notes else ""


# The design facts worth a line of their own, when summary.json has the Simon design's `selected` record.
DESIGN_FACTS = (
    "cohort", "design", "p0", "p1", "target_alpha", "target_power", "r1", "n1", "r", "n", "alpha", "power",
    "n_patients", "n_evaluable", "n_success", "decision", "decision_other_handling", "censored_handling",
    "success_rate.estimate", "success_rate.ci_low", "success_rate.ci_high", "success_rate.method",
)  # fmt: skip


def _design_values(ctx: Context) -> dict[str, Any]:
    """The design as flat key -> value pairs: summary.json's `design` (lists left out), or a two-column table."""
    values: dict[str, Any] = {}
    summary_design = ctx.tables.summary.get("design")
    if isinstance(summary_design, Mapping):
        flat = _flatten(summary_design)
        if isinstance(summary_design.get("selected"), Mapping):
            flat = {k.removeprefix("selected."): v for k, v in flat.items()}
            flat = {k: flat[k] for k in DESIGN_FACTS if k in flat}
        values.update({k: v for k, v in flat.items() if not isinstance(v, list | tuple)})
    design = ctx.tables.design
    if design.shape[1] == 2 and len(design):
        values.update({str(k): v for k, v in design.itertuples(index=False)})
    return values


def _design_reference(design: Mapping[str, Any], names: Sequence[str]) -> float | None:
    """The first value in (0, 1) whose key (last dotted part) is one of `names`, in the order of `names`."""
    by_name = {key.lower().rsplit(".", 1)[-1]: value for key, value in design.items()}
    for name in names:
        try:
            number = float(by_name.get(name))  # type: ignore[arg-type]
        except (TypeError, ValueError):
            continue
        if 0 < number < 1:
            return number
    return None


def endpoint_label(endpoint: str) -> str:
    """pfs_12m -> 'PFS at 12 months', os_3y -> 'OS at 3 years'; other names are shown as they are."""
    match = re.fullmatch(r"(pfs|os)_(\d+(?:\.\d+)?)(m|y)", endpoint.lower())
    if not match:
        return endpoint.replace("_", " ")
    what, amount, unit = match.groups()
    word = "month" if unit == "m" else "year"
    return f"{what.upper()} at {amount} {word if float(amount) == 1 else word + 's'}"


def _endpoints_figure(endpoints: pd.DataFrame, design: Mapping[str, Any]) -> go.Figure:
    fig = go.Figure()
    styles = {"pfs": ("#000000", "circle"), "os": ("#5F5F5F", "diamond")}
    for endpoint, rows in endpoints.groupby("endpoint", sort=False):
        color, symbol = styles.get(str(endpoint).split("_", 1)[0].lower(), ("#56B4E9", "square"))
        est = _num(rows, "estimate")
        name = endpoint_label(str(endpoint)) + (" (not estimable)" if est.isna().all() else "")
        fig.add_trace(
            go.Scatter(
                x=rows["cohort"].map(_normalize_cohort), y=est, mode="markers", name=name,
                marker={"color": color, "symbol": symbol, "size": 12},
                error_y={"type": "data", "symmetric": False, "array": _num(rows, "ci_high") - est,
                         "arrayminus": est - _num(rows, "ci_low"), "color": color, "thickness": 2},
                customdata=np.stack([_num(rows, "n"), _num(rows, "events")], axis=1),
                hovertemplate="%{x}: %{y:.1%} (n=%{customdata[0]}, events=%{customdata[1]})<extra></extra>",
            )
        )  # fmt: skip
    for names, label in ((("p0", "null"), "null"), (("p1", "alternative", "target"), "target")):
        value = _design_reference(design, names)
        if value is not None:
            _reference_line(fig, "y", value)
            fig.add_annotation(text=f"{label} {value:.0%}", xref="paper", x=0, y=value, xanchor="left",
                               yanchor="bottom", showarrow=False, font={"color": "#5F5F5F", "size": 12})  # fmt: skip
    _base_layout(fig, 400, scattermode="group", scattergap=0.6)
    fig.update_yaxes(range=[0, 1.02], tickformat=".0%", title_text="Estimate (95% CI)")
    fig.update_xaxes(type="category", title_text="Cohort")
    return fig


def _design_html(ctx: Context, design: Mapping[str, Any]) -> str:
    table = ctx.tables.design
    parts = []
    if design:
        rows = "".join(
            f"<tr><th>{html.escape(k)}</th><td>{html.escape(_plain(v))}</td></tr>" for k, v in design.items()
        )
        parts.append(f'<h4>Two-stage design</h4><table class="facts">{rows}</table>')
    if not table.empty and table.shape[1] != 2:
        parts.append("<h4>Design table</h4>" + _html_table(table, ctx.settings.max_table_rows))
    return "".join(parts) or '<p class="notes">No two-stage design result was given.</p>'


def _flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(_flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def _plain(value: Any) -> str:
    if isinstance(value, float):
        return _fmt(value, ".4g")
    if isinstance(value, list | tuple):
        return ", ".join(_plain(v) for v in value)
    return "" if value is None else str(value)


# ---------------------------------------------------------------------------------------------------- dynamics


def lane_frame(patients: pd.DataFrame, samples: pd.DataFrame) -> pd.DataFrame:
    """One swimmer lane per patient: follow-up end and the months of progression, death, restart, censoring."""
    lanes = patients[["patient_id", "cohort"]].copy()
    pfs, os_ = patients["pfs_months"], patients["os_months"]
    last_sample = samples.groupby("patient_id")["months"].max() if len(samples) else pd.Series(dtype=float)
    lanes["end"] = (
        pd.concat([pfs, os_, patients["restart_months"], lanes["patient_id"].map(last_sample)], axis=1)
        .max(axis=1)
        .fillna(0)
        .clip(lower=0)
    )
    progressed = patients["pfs_event"] == 1
    died = patients["os_event"] == 1
    # A PFS event at the date of death is the death itself, not a separate progression.
    death_first = progressed & died & ((os_ - pfs).abs() < 0.5)
    lanes["pfs_months"] = pfs
    lanes["progression"] = pfs.where(progressed & ~death_first)
    lanes["death"] = os_.where(died)
    lanes["restart"] = patients["restart_months"]
    lanes["censored"] = pfs.where(patients["pfs_event"] == 0)
    lanes["pfs_event"] = patients["pfs_event"]
    return lanes


def _lane_orders(lanes: pd.DataFrame) -> dict[str, list[str]]:
    by_cohort = lanes.sort_values(["cohort", "end", "patient_id"], ascending=[True, False, True])
    event_last = (lanes["pfs_event"] != 1).astype(int)  # at equal times the event comes first
    by_time = lanes.assign(e=event_last).sort_values(["pfs_months", "e", "patient_id"], na_position="last")
    # Plotly draws the first category at the bottom: reverse so the list reads top-down.
    return {"cohort": by_cohort["patient_id"].tolist()[::-1], "time": by_time["patient_id"].tolist()[::-1]}


def _sample_hover(samples: pd.DataFrame) -> list[str]:
    return [
        f"<b>{r.patient_id}</b> \u00b7 {r.sample_id}<br>{_fmt(r.months, '.1f')} months"
        f" ({_text_or(r, 'collection_date', '')})<br>{_status_label(r.status)}<br>"
        f"TF {_fmt(r.tumor_fraction, '.3g')} (95% CI {_fmt(r.tf_ci_low, '.2g')}\u2013{_fmt(r.tf_ci_high, '.2g')})"
        f"<br>LOD95 {_fmt(r.lod95, '.3g')}"
        for r in samples.itertuples()
    ]


def panel_swimmer(ctx: Context) -> Panel:
    """Swimmer plot"""
    panel = Panel("swimmer", "Swimmer plot: plasma samples and clinical events per patient")
    if ctx.patients.empty:
        panel.message = f"Not drawn: no patients ({ctx.unavailable('patients', ['patient_id']) or 'empty'})"
        return panel
    lanes = lane_frame(ctx.patients, ctx.samples)
    orders = _lane_orders(lanes)
    fig = go.Figure()
    fig.add_trace(
        go.Bar(
            x=lanes["end"],
            y=lanes["patient_id"],
            base=0,
            orientation="h",
            name="follow-up",
            showlegend=False,
            marker={"color": "#E6E6E6", "line": {"width": 0}},
            width=0.55,
            meta="lanes",
            customdata=lanes["cohort"],
            hovertemplate="%{y} (%{customdata}): followed %{x:.1f} months<extra></extra>",
        )
    )
    samples = ctx.samples.dropna(subset=["months"])
    # The cohort strip sits left of everything, including samples taken before enrollment (negative months).
    first = min(0.0, float(samples["months"].min())) if len(samples) else 0.0
    pad = 0.035 * max(float(lanes["end"].max()) - first, 1.0)
    strip_x = first - 1.5 * pad
    _add_cohort_strip(fig, ctx, lanes, strip_x)
    _add_swimmer_samples(fig, samples)
    for event in ("progression", "death", "restart", "censored"):
        _add_event_trace(fig, lanes, event)
    _swimmer_layout(
        fig, lanes, orders, ctx.settings.swimmer_sort, [strip_x - pad, float(lanes["end"].max()) + pad]
    )
    panel.figure = fig
    panel.attrs["data-lanes"] = str(len(lanes))
    panel.caption = (
        f"{len(lanes)} patients, one lane each (grey: follow-up). Markers: plasma samples colored by MRD status "
        "(hover for tumor fraction and the sample's LOD95); \u00d7 progression, \u25a0 death, \u25b6 anti-HER2 "
        "restart, | censored. The buttons re-sort the lanes by cohort or by time to progression."
    )
    panel.downloads["swimmer_patients.tsv"] = lanes
    panel.downloads["swimmer_samples.tsv"] = _sample_table(ctx.samples)
    return panel


def _sample_table(samples: pd.DataFrame) -> pd.DataFrame:
    columns = [
        "patient_id",
        "cohort",
        "sample_id",
        "collection_date",
        "months",
        "status",
        "tumor_fraction",
        "tf_ci_low",
        "tf_ci_high",
        "lod95",
        "p_value",
    ]
    return samples[[c for c in columns if c in samples.columns]]


def _add_cohort_strip(fig: go.Figure, ctx: Context, lanes: pd.DataFrame, x: float) -> None:
    for cohort, rows in lanes.groupby("cohort", sort=True):
        fig.add_trace(
            go.Scatter(
                x=[x] * len(rows),
                y=rows["patient_id"],
                mode="markers",
                name=f"cohort {cohort}",
                marker={"symbol": "square", "size": 9, "color": ctx.cohort_color(str(cohort))},
                hovertemplate=f"%{{y}}: cohort {cohort}<extra></extra>",
                # No shared legendgroup: a horizontal legend stacks a group's entries on extra lines.
            )
        )


def _add_swimmer_samples(fig: go.Figure, samples: pd.DataFrame) -> None:
    for status in _ordered(samples["status"].tolist()):
        rows = samples[samples["status"] == status]
        color = _status_color(status)
        fig.add_trace(
            go.Scatter(
                x=rows["months"],
                y=rows["patient_id"],
                mode="markers",
                name=_status_label(status),
                marker={
                    "color": color,
                    "symbol": MRD_SYMBOLS.get(status, "circle"),
                    "size": 8,
                    "line": {"width": 1.5 if status == "indeterminate" else 0.5, "color": color},
                },
                text=_sample_hover(rows),
                hovertemplate="%{text}<extra></extra>",
            )
        )


def _add_event_trace(fig: go.Figure, lanes: pd.DataFrame, event: str) -> None:
    rows = lanes.dropna(subset=[event])
    if rows.empty:
        return
    symbol, color, size = EVENT_STYLE[event]
    fig.add_trace(
        go.Scatter(
            x=rows[event],
            y=rows["patient_id"],
            mode="markers",
            name=event,
            marker={"symbol": symbol, "color": color, "size": size, "line": {"width": 2, "color": color}},
            hovertemplate=f"%{{y}}: {event} at %{{x:.1f}} months<extra></extra>",
        )
    )


def _swimmer_layout(
    fig: go.Figure, lanes: pd.DataFrame, orders: dict[str, list[str]], default: str, x_range: list[float]
) -> None:
    buttons = [
        {"label": label, "method": "relayout", "args": [{"yaxis.categoryarray": orders[key]}]}
        for key, label in (("cohort", "Sort by cohort"), ("time", "Sort by time to progression"))
    ]
    menu = _menu(buttons, active=0 if default == "cohort" else 1)
    _base_layout(fig, max(400, 17 * len(lanes) + 200), barmode="overlay", updatemenus=[menu])
    fig.update_layout(margin={"t": 150})
    fig.update_yaxes(
        type="category",
        categoryorder="array",
        categoryarray=orders[default],
        tickfont={"size": 10},
        title_text="Patient",
    )
    fig.update_xaxes(
        title_text="Months since enrollment",
        range=x_range,
        zeroline=False,
    )


def panel_trajectories(ctx: Context) -> Panel:
    """Tumor-fraction trajectories"""
    panel = Panel("trajectories", "Tumor-fraction trajectories per patient (log scale)")
    samples = ctx.samples.dropna(subset=["months"])
    if samples.empty or samples["tumor_fraction"].isna().all() and samples["lod95"].isna().all():
        panel.message = (
            f"Not drawn: no plasma sample with a tumor fraction ({ctx.unavailable('calls', []) or 'no TF'})"
        )
        return panel
    floor = ctx.tf_floor()
    samples = samples.sort_values(["patient_id", "months"]).assign(
        tf_plot=lambda d: d["tumor_fraction"].where(d["tumor_fraction"] > floor, floor)
    )
    fig, tags = go.Figure(), []
    for (patient, cohort), rows in samples.groupby(["patient_id", "cohort"], sort=True):
        fig.add_trace(_trajectory_trace(str(patient), rows))
        tags.append(str(cohort))
    tags += _add_lod_and_progression(fig, ctx, samples)
    _status_legend(fig, samples["status"].tolist())
    tags += [""] * (len(fig.data) - len(tags))
    _trajectory_layout(fig, samples, floor, _cohort_menu(tags, ctx.cohorts()))
    panel.figure = fig
    panel.caption = (
        "Maximum-likelihood tumor fraction of each plasma sample, one line per patient, marker by MRD status "
        "(open circle: indeterminate). Grey dashes: each sample's 95% limit of detection (LOD95). \u00d7: "
        f"progression. A tumor fraction of 0 (no mutant molecule beyond background) cannot be drawn on a log "
        f"axis: it is drawn at the plotting floor {floor:g} (dotted line; report.tf_floor), the hover shows "
        "the true value. Use the buttons to show one cohort."
    )
    panel.downloads["tf_trajectories.tsv"] = _sample_table(samples)
    return panel


def _trajectory_trace(patient: str, rows: pd.DataFrame) -> go.Scatter:
    statuses = rows["status"].tolist()
    colors = [_status_color(s) for s in statuses]
    return go.Scatter(
        x=rows["months"],
        y=rows["tf_plot"],
        mode="lines+markers",
        name=patient,
        legendgroup=patient,
        showlegend=False,
        line={"color": "rgba(80,80,80,0.45)", "width": 1.2},
        marker={
            "color": colors,
            "symbol": [MRD_SYMBOLS.get(s, "circle") for s in statuses],
            "size": 8,
            "line": {"color": colors, "width": 1.5},
        },
        text=_sample_hover(rows),
        hovertemplate="%{text}<extra></extra>",
    )


def _add_lod_and_progression(fig: go.Figure, ctx: Context, samples: pd.DataFrame) -> list[str]:
    tags = []
    lanes = lane_frame(ctx.patients, samples).dropna(subset=["progression"])
    at_progression = _tf_at(samples, lanes.set_index("patient_id")["progression"])
    for cohort, rows in samples.groupby("cohort", sort=True):
        fig.add_trace(
            go.Scatter(
                x=rows["months"],
                y=rows["lod95"],
                mode="markers",
                name="LOD95 of the sample",
                legendgroup="lod",
                showlegend=not tags,
                text=rows["sample_id"],
                marker={"symbol": "line-ew-open", "size": 12, "color": "#5F5F5F", "line": {"width": 2}},
                hovertemplate="%{text}: LOD95 %{y:.3g}<extra></extra>",
            )
        )
        tags.append(str(cohort))
        prog = lanes[lanes["cohort"] == cohort]
        if len(prog):
            fig.add_trace(_progression_trace(prog, at_progression, ctx.tf_floor(), first=len(tags) == 1))
            tags.append(str(cohort))
    return tags


def _tf_at(samples: pd.DataFrame, times: pd.Series) -> pd.Series:
    """Each patient's plotted TF at `times`, interpolated on the log scale, so the marker sits on the line."""
    values = {}
    for patient, time in times.items():
        rows = samples[samples["patient_id"] == patient]
        if len(rows):
            log_tf = np.log10(rows["tf_plot"].to_numpy(dtype=float))
            values[patient] = 10 ** float(np.interp(time, rows["months"].to_numpy(dtype=float), log_tf))
    return pd.Series(values, dtype=float)


def _progression_trace(prog: pd.DataFrame, tf_at: pd.Series, floor: float, first: bool) -> go.Scatter:
    symbol, color, size = EVENT_STYLE["progression"]
    return go.Scatter(
        x=prog["progression"],
        y=prog["patient_id"].map(tf_at).fillna(floor),
        mode="markers",
        name="progression",
        legendgroup="progression",
        showlegend=first,
        text=prog["patient_id"],
        marker={"symbol": symbol, "size": size, "color": color, "line": {"width": 2, "color": color}},
        hovertemplate="%{text}: progression at %{x:.1f} months<extra></extra>",
    )


def _cohort_menu(tags: list[str], cohorts: list[str]) -> list[dict[str, Any]]:
    buttons = [{"label": "All cohorts", "method": "restyle", "args": [{"visible": [True] * len(tags)}]}]
    for cohort in cohorts:
        visible = [tag in ("", cohort) for tag in tags]
        buttons.append({"label": f"cohort {cohort}", "method": "restyle", "args": [{"visible": visible}]})
    return [_menu(buttons)]


def _trajectory_layout(
    fig: go.Figure, samples: pd.DataFrame, floor: float, menus: list[dict[str, Any]]
) -> None:
    values = pd.concat([samples["tf_plot"], samples["lod95"]]).dropna()
    top = float(values.max()) if len(values) else 1.0
    _base_layout(fig, 580, updatemenus=menus, hovermode="closest")
    fig.update_layout(margin={"t": 125})
    _reference_line(fig, "y", floor, dash="dot")
    # Annotations on a log axis take log10 coordinates (shapes take data values).
    fig.add_annotation(text=f"TF 0 drawn at {floor:g}", xref="paper", x=1, y=math.log10(floor), xanchor="right",
                       yanchor="top", showarrow=False, font={"color": "#5F5F5F", "size": 11})  # fmt: skip
    fig.update_yaxes(
        type="log",
        title_text="Tumor fraction",
        exponentformat="power",
        dtick=1,  # a label per decade: minor-digit labels crowd a short log axis
        range=[math.log10(floor) - 0.4, math.log10(max(top, floor * 10)) + 0.3],
    )
    fig.update_xaxes(title_text="Months since enrollment")


def panel_lead_time(ctx: Context) -> Panel:
    """Lead time"""
    panel = Panel("lead_time", "Lead time: first MRD-positive sample to radiographic progression")
    table = _lead_times(ctx.patients)
    progressed = int((ctx.patients["pfs_event"] == 1).sum())
    with_lead = table.dropna(subset=["lead_time_months"])
    if with_lead.empty:
        panel.message = (
            "Not estimable: no patient had an MRD-positive sample before progression "
            f"({progressed} progressed)"
        )
        return panel
    with_lead = with_lead.sort_values("lead_time_months")
    panel.figure = _lead_figure(with_lead)
    lead = with_lead["lead_time_months"]
    panel.caption = (
        f"{len(with_lead)} of {progressed} patients who progressed had an MRD-positive sample first; median lead "
        f"time {lead.median():.1f} months (IQR {lead.quantile(0.25):.1f}\u2013{lead.quantile(0.75):.1f}, range "
        f"{lead.min():.1f}\u2013{lead.max():.1f}). {progressed - len(with_lead)} progressed with no positive "
        f"sample before; {int(table['first_positive'].notna().sum() - len(with_lead))} patients were positive "
        "without progression (so far) or only after it."
    )
    panel.downloads["lead_time.tsv"] = table
    return panel


def _lead_times(patients: pd.DataFrame) -> pd.DataFrame:
    out = patients[["patient_id", "cohort"]].copy()
    first = _num(patients, "first_positive_months")
    if "first_positive_date" in patients.columns and "enrollment_date" in patients.columns:
        first = first.fillna(_months_between(patients["first_positive_date"], patients["enrollment_date"]))
    progression = patients["pfs_months"].where(patients["pfs_event"] == 1)
    lead = _num(patients, "lead_time_months").fillna(progression - first)
    # A lead time needs a progression and a positive sample before it (a negative one is no lead).
    lead = lead.where(progression.notna() & (lead >= 0))
    out["first_positive"] = first.fillna(progression - lead)
    out["progression"] = progression
    out["lead_time_months"] = lead
    return out


def _lead_figure(rows: pd.DataFrame) -> go.Figure:
    ids = rows["patient_id"].tolist()
    fig = go.Figure()
    seg_x = [
        v for a, b in zip(rows["first_positive"], rows["progression"], strict=True) for v in (a, b, None)
    ]
    fig.add_trace(
        go.Scatter(
            x=seg_x,
            y=[v for p in ids for v in (p, p, None)],
            mode="lines",
            showlegend=False,
            line={"color": "#8C8C8C", "width": 3},
            hoverinfo="skip",
        )
    )
    fig.add_trace(
        go.Scatter(
            x=rows["first_positive"],
            y=ids,
            mode="markers",
            name="first MRD-positive sample",
            marker={"color": MRD_COLORS["positive"], "symbol": MRD_SYMBOLS["positive"], "size": 10},
            customdata=rows["lead_time_months"],
            hovertemplate="%{y}: first positive %{x:.1f} months, lead time %{customdata:.1f} months<extra></extra>",
        )
    )
    symbol, color, size = EVENT_STYLE["progression"]
    fig.add_trace(
        go.Scatter(
            x=rows["progression"],
            y=ids,
            mode="markers",
            name="progression",
            marker={"symbol": symbol, "color": color, "size": size, "line": {"width": 2}},
            hovertemplate="%{y}: progression at %{x:.1f} months<extra></extra>",
        )
    )
    _base_layout(fig, max(300, 20 * len(ids) + 150))
    fig.update_yaxes(
        type="category", categoryorder="array", categoryarray=ids, title_text="Patient", tickfont={"size": 10}
    )
    fig.update_xaxes(title_text="Months since enrollment")
    return fig


# ---------------------------------------------------------------------------------------------------- QC


def panel_qc_samples(ctx: Context) -> Panel:
    """Molecules and loci per sample"""
    panel = Panel("qc_samples", "QC: informative molecules and panel loci used per plasma sample")
    problem = ctx.unavailable("calls", ["sample_id", "total_molecules"])
    if problem:
        panel.message = f"Not drawn: {problem}"
        return panel
    samples = _qc_sample_table(ctx)
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.06, row_heights=[0.55, 0.45])
    for status in _ordered(samples["status"].tolist()):
        rows = samples[samples["status"] == status]
        color = _status_color(status)
        common = {
            "x": rows["sample_id"],
            "marker_color": color,
            "legendgroup": status,
            "text": rows["hover"],
            "textposition": "none",  # the text is for the hover; plotly would print it inside the bars
            "hovertemplate": "%{text}<extra></extra>",
        }
        fig.add_trace(go.Bar(y=rows["total_molecules"], name=_status_label(status), **common), row=1, col=1)
        fig.add_trace(go.Bar(y=rows["n_loci_used"], showlegend=False, **common), row=2, col=1)
    _add_qc_markers(fig, samples)
    _base_layout(fig, 560, barmode="overlay", bargap=0.15)
    many = len(samples) > 60
    fig.update_xaxes(
        type="category",
        categoryorder="array",
        categoryarray=samples["sample_id"].tolist(),
        showticklabels=not many,
        tickangle=-60,
        tickfont={"size": 9},
    )
    fig.update_xaxes(title_text=f"Plasma samples ({len(samples)}; by batch, patient, date)", row=2, col=1)
    fig.update_yaxes(type="log", title_text="Molecules (all loci)", row=1, col=1)
    fig.update_yaxes(title_text="Loci used", rangemode="tozero", row=2, col=1)
    panel.figure = fig
    flagged = int((samples["flags"] != "").sum())
    marks = f"\u25bc marks the {_count(flagged, 'flagged sample')}." if flagged else "No sample is flagged."
    panel.caption = (
        "Top: informative (deduplicated) molecules summed over the sample's panel loci, log scale. Bottom: loci "
        f"used for calling (bars) of the patient's panel (dashes). {marks} "
        + _unused_reasons_text(ctx.tables.loci)
    )
    panel.downloads["qc_samples.tsv"] = samples.drop(columns=["hover"])
    return panel


def _qc_sample_table(ctx: Context) -> pd.DataFrame:
    calls = ctx.tables.calls
    samples = pd.DataFrame(
        {
            "sample_id": calls["sample_id"],
            "patient_id": _text(calls, "patient_id"),
            "batch": _text(calls, "batch"),
            "collection_date": _text(calls, "collection_date"),
            "status": _text(calls, "mrd_status").map(normalize_status),
            "total_molecules": _num(calls, "total_molecules"),
            "mutant_molecules": _num(calls, "mutant_molecules"),
            "n_loci_used": _num(calls, "n_loci_used"),
            "n_loci_panel": _num(calls, "n_loci_panel"),
            "lod95": _num(calls, "lod95"),
            "flags": _text(calls, "flags"),
        }
    )
    qc = ctx.tables.qc
    extra = [c for c in ("duplicate_rate", "mean_family_size", "median_fragment_length") if c in qc.columns]
    if extra:
        samples = samples.merge(qc[["sample_id", *extra]], on="sample_id", how="left")
    samples = samples.sort_values(["batch", "patient_id", "collection_date", "sample_id"]).reset_index(
        drop=True
    )
    samples["hover"] = [
        f"<b>{r.sample_id}</b> ({r.patient_id}, batch {r.batch or DASH})<br>{_status_label(r.status)}<br>"
        f"molecules {_fmt(r.total_molecules, ',.0f')}, mutant {_fmt(r.mutant_molecules, ',.0f')}<br>"
        f"loci used {_fmt(r.n_loci_used, '.0f')} of {_fmt(r.n_loci_panel, '.0f')}<br>"
        + "".join(f"{c.replace('_', ' ')} {_fmt(getattr(r, c), '.3g')}<br>" for c in extra)
        + (f"flags: {html.escape(r.flags)}" if r.flags else "")
        for r in samples.itertuples()
    ]
    return samples


def _add_qc_markers(fig: go.Figure, samples: pd.DataFrame) -> None:
    fig.add_trace(
        go.Scatter(
            x=samples["sample_id"],
            y=samples["n_loci_panel"],
            mode="markers",
            name="loci in panel",
            marker={"symbol": "line-ew-open", "size": 10, "color": "#000000", "line": {"width": 2}},
            hovertemplate="%{x}: %{y} loci in the panel<extra></extra>",
        ),
        row=2,
        col=1,
    )
    flagged = samples[samples["flags"] != ""]
    if len(flagged):
        fig.add_trace(
            go.Scatter(
                x=flagged["sample_id"],
                y=flagged["total_molecules"] * 1.6,
                mode="markers",
                name="flagged",
                marker={"symbol": "triangle-down", "size": 9, "color": "#E69F00"},
                text=flagged["flags"],
                hovertemplate="%{x}: %{text}<extra></extra>",
            ),
            row=1,
            col=1,
        )


def _unused_reasons_text(loci: pd.DataFrame) -> str:
    if not {"used", "reason"} <= set(loci.columns) or loci.empty:
        return ""
    used = loci["used"].astype(str).str.lower().isin(["true", "1", "yes"])
    reasons = _text(loci[~used], "reason", "unspecified").replace("", "unspecified").value_counts()
    if reasons.empty:
        return "Every panel locus was used in every sample."
    top = ", ".join(f"{reason} ({count})" for reason, count in reasons.head(5).items())
    return f"Sample-locus pairs not used, by reason: {top}."


def panel_lod(ctx: Context) -> Panel:
    """Limit of detection"""
    panel = Panel("lod", "QC: limit of detection (LOD95) per sample, by batch and MRD status")
    problem = ctx.unavailable("calls", ["lod95"])
    samples = ctx.samples.dropna(subset=["lod95"]) if not problem else ctx.samples
    if problem or samples.empty:
        panel.message = f"Not drawn: {problem or 'no sample has a LOD95'}"
        return panel
    samples = samples.assign(batch=_text(samples, "batch", "").replace("", "no batch"))
    fig = go.Figure(
        [_lod_box(samples[samples["status"] == st], st) for st in _ordered(samples["status"].tolist())]
    )
    _base_layout(fig, 440, boxmode="group")
    fig.update_yaxes(type="log", title_text="LOD95 (tumor fraction)", exponentformat="power")
    max_lod = _float_or_none(setting(ctx.config, "calling", "max_lod95"))
    if max_lod:
        _reference_line(fig, "y", max_lod)
        # Annotations on a log axis take log10 coordinates.
        fig.add_annotation(text=f"calling.max_lod95 = {max_lod:g}", xref="paper", x=1, y=math.log10(max_lod),
                           xanchor="right", yanchor="bottom", showarrow=False, font={"color": "#5F5F5F"})  # fmt: skip
    fig.update_xaxes(type="category", categoryorder="category ascending", title_text="Batch")
    panel.figure = fig
    lod = samples["lod95"]
    panel.caption = (
        "Tumor fraction detected with 95% probability given the sample's depth and background (LOD95), log "
        f"scale; median {lod.median():.2g} (range {lod.min():.2g}\u2013{lod.max():.2g}). A sample whose LOD is "
        "too high to rule MRD out is indeterminate rather than negative (dashed line: the caller's maximum LOD95 "
        "for a negative call, when known)."
    )
    panel.downloads["lod.tsv"] = _sample_table(samples).assign(batch=samples["batch"])
    return panel


def _lod_box(rows: pd.DataFrame, status: str) -> go.Box:
    color = _status_color(status)
    return go.Box(
        x=rows["batch"], y=rows["lod95"], name=_status_label(status), boxpoints="all", jitter=0.45, pointpos=0,
        marker={"color": color, "size": 5, "opacity": 0.7}, line={"color": color}, fillcolor=_rgba(color, 0.12),
        text=rows["sample_id"], hovertemplate="%{text}: LOD95 %{y:.3g}<extra></extra>",
    )  # fmt: skip


def context_matrix(rates: pd.DataFrame, orientation: str) -> pd.DataFrame:
    """The 96-class error rates as a 6 substitution x 16 flank matrix (missing classes stay NaN)."""
    flanks = [f"{a}_{b}" for a in BASES for b in BASES]
    matrix = pd.DataFrame(np.nan, index=list(SUBSTITUTIONS), columns=flanks)
    rows = rates[_text(rates, "orientation", "all").str.lower() == orientation]
    for sub, ctx, rate in zip(rows["substitution"], rows["context"], _num(rows, "rate"), strict=True):
        ctx = str(ctx).upper()
        flank = f"{ctx[0]}_{ctx[2]}" if len(ctx) == 3 else ""
        if sub in matrix.index and flank in matrix.columns:  # .loc would add a column for an N context
            matrix.loc[sub, flank] = rate
    return matrix


def panel_background(ctx: Context) -> Panel:
    """Background error by context"""
    panel = Panel(
        "background", "QC: background error rate by substitution and trinucleotide context (96 classes)"
    )
    rates = ctx.tables.context_rates
    problem = ctx.unavailable("context_rates", ["substitution", "context", "rate"])
    if problem:
        panel.message = f"Not drawn: {problem}"
        return panel
    orientations = [
        o for o in ("all", "f1r2", "f2r1") if (_text(rates, "orientation", "all").str.lower() == o).any()
    ]
    positive = _num(rates, "rate")[lambda r: r > 0]
    floor = float(positive.min()) / 10 if len(positive) else 1e-7
    fig = _background_figure(rates, orientations, floor)
    panel.figure = fig
    panel.caption = (
        "Error rate (mutant molecules / molecules) per pyrimidine-centred substitution class and flanking bases, "
        "from healthy controls and other patients' loci; log10 color scale (Viridis), a zero rate is drawn at "
        f"{floor:.2g}. Read orientations (F1R2 / F2R1) separate strand-specific damage such as oxidative G>T."
    )
    panel.downloads["context_rates.tsv"] = rates
    return panel


def _background_figure(rates: pd.DataFrame, orientations: list[str], floor: float) -> go.Figure:
    """One 6 x 16 heatmap per read orientation, the first visible, switched by buttons."""
    fig = go.Figure()
    for i, orientation in enumerate(orientations):
        matrix = context_matrix(rates, orientation)
        fig.add_trace(
            go.Heatmap(
                z=np.log10(matrix.clip(lower=floor)), x=matrix.columns, y=matrix.index, text=matrix.map(_fmt_rate),
                colorscale="Viridis", visible=i == 0, name=orientation, colorbar={"title": {"text": "log10 rate"}},
                hovertemplate="%{y} in %{x}: rate %{text}<extra>" + orientation + "</extra>", xgap=1, ygap=1,
            )
        )  # fmt: skip
    shown = [[j == i for j in range(len(orientations))] for i in range(len(orientations))]
    buttons = [{"label": f"orientation: {o}", "method": "restyle", "args": [{"visible": v}]}
               for o, v in zip(orientations, shown, strict=True)]  # fmt: skip
    _base_layout(fig, 420, updatemenus=[_menu(buttons)])
    fig.update_xaxes(title_text="5' base _ 3' base around the mutated (pyrimidine) base", tickangle=-45)
    fig.update_yaxes(autorange="reversed", title_text="Substitution")
    return fig


def _float_or_none(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) and number > 0 else None


def _fmt_rate(value: float) -> str:
    return _fmt(value, ".2e", "no data")


def panel_fraglen(ctx: Context) -> Panel:
    """Fragment lengths"""
    panel = Panel("fraglen", "QC: fragment-length distributions, mutant vs wild-type molecules")
    histogram = _fraglen_table(ctx)
    if histogram.empty:
        panel.message = "Not drawn: no fragment-length histogram (results/counts/*.fraglen.tsv) was given"
        return panel
    fig = go.Figure()
    medians = []
    for group, rows in histogram.groupby("group", sort=False):
        color, dash = FRAGLEN_GROUPS.get(str(group), ("#56B4E9", "solid"))
        total = rows["molecules"].sum()
        width = fraglen_bin_width(total)
        binned = fraglen_bins(rows["length"], rows["molecules"], width)
        fig.add_trace(
            go.Scatter(
                x=binned.index + (width - 1) / 2,
                y=binned.to_numpy() / total / width,
                mode="lines",
                line={"color": color, "dash": dash, "width": 2},
                name=f"{group} ({total:,.0f} molecules{'' if width == 1 else f', {width} bp bins'})",
                customdata=np.stack([binned.index, binned.index + width - 1, binned.to_numpy()], axis=1),
                hovertemplate="%{customdata[0]}\u2013%{customdata[1]} bp: %{customdata[2]:,.0f} molecules, "
                "%{y:.2%} per bp<extra></extra>",
            )
        )
        medians.append(f"{group} {_weighted_median(rows['length'], rows['molecules']):.0f} bp")
    _base_layout(fig, 420)
    fig.update_xaxes(title_text="Fragment length (bp)", range=[40, 450])
    fig.update_yaxes(title_text="Fraction of molecules per bp", tickformat=".1%", rangemode="tozero")
    panel.figure = fig
    panel.caption = (
        "Fragment-length histograms of wild-type and mutant molecules pooled over plasma samples (normalized per "
        "line; a line with few molecules is binned more coarsely, so every line shows the fraction per bp and "
        "empty bins are drawn at 0). Tumor-derived cfDNA is shorter; mutant molecules in MRD-negative samples are mostly background "
        f"errors, so MRD-positive samples' mutant molecules are shown apart. Medians: {'; '.join(medians)}."
    )
    panel.downloads["fragment_lengths.tsv"] = histogram
    return panel


def _fraglen_table(ctx: Context) -> pd.DataFrame:
    frame = ctx.tables.fraglen
    if frame.empty:
        return frame
    sheet = ctx.tables.samples
    if {"sample_id", "sample_type"} <= set(sheet.columns):
        plasma = set(sheet.loc[sheet["sample_type"].str.lower() == "plasma", "sample_id"])
        frame = frame[frame["sample_id"].isin(plasma)] if plasma else frame
    allele = frame["allele"].astype(str).str.upper().replace({"WT": "REF", "MUT": "ALT", "MUTANT": "ALT"})
    frame = frame.assign(length=_num(frame, "length"), molecules=_num(frame, "molecules"), allele=allele)
    positive = set(ctx.samples.loc[ctx.samples["status"] == "positive", "sample_id"])
    groups = [
        ("wild-type (REF)", frame[frame["allele"] == "REF"]),
        ("mutant (ALT)", frame[frame["allele"] == "ALT"]),
        (
            "mutant (ALT), MRD-positive samples",
            frame[(frame["allele"] == "ALT") & frame["sample_id"].isin(positive)],
        ),
    ]
    parts = [
        rows.groupby("length", as_index=False, sort=True)["molecules"].sum().assign(group=name)
        for name, rows in groups
        if rows["molecules"].sum() > 0
    ]
    if not parts:
        return pd.DataFrame()
    # Parts are already in display order (wild-type, mutant, mutant in positives) and sorted by length.
    return pd.concat(parts, ignore_index=True)[["group", "length", "molecules"]]


def fraglen_bin_width(molecules: float) -> int:
    """1 bp for a well-sampled histogram, coarser for a sparse one (a few mutant molecules)."""
    return 1 if molecules >= 20_000 else 5 if molecules >= 1_000 else 10


def fraglen_bins(lengths: pd.Series, molecules: pd.Series, width: int) -> pd.Series:
    """Molecules per `width`-bp bin (indexed by the bin's first length), empty bins included as 0."""
    start = (lengths.to_numpy(dtype=float) // width * width).astype(int)
    counts = pd.Series(molecules.to_numpy(dtype=float)).groupby(start).sum()
    full = np.arange(counts.index.min(), counts.index.max() + width, width)
    return counts.reindex(full, fill_value=0.0)


def _weighted_median(values: pd.Series, weights: pd.Series) -> float:
    order = np.argsort(values.to_numpy())
    cumulative = np.cumsum(weights.to_numpy()[order])
    return float(values.to_numpy()[order][np.searchsorted(cumulative, cumulative[-1] / 2)])


def panel_excluded(ctx: Context) -> Panel:
    """Excluded loci"""
    panel = Panel("excluded", "QC: panel loci excluded from calling, by reason")
    excluded = ctx.tables.excluded
    problem = ctx.unavailable("excluded", ["reason"])
    if problem:
        # A readable table without rows is good news; a missing one is a problem.
        quiet = "no rows" in problem and "excluded" not in ctx.tables.problems
        panel.message = "No panel locus was excluded." if quiet else f"Not drawn: {problem}"
        return panel
    scope = np.where(_text(excluded, "patient_id").isin(["", "nan"]), "every patient", "one patient")
    counts = excluded.assign(scope=scope).groupby(["reason", "scope"]).size().rename("loci").reset_index()
    fig = go.Figure()
    for name, color in (("every patient", "#000000"), ("one patient", "#56B4E9")):
        rows = counts[counts["scope"] == name]
        fig.add_trace(
            go.Bar(
                y=rows["reason"],
                x=rows["loci"],
                orientation="h",
                name=f"excluded for {name}",
                marker_color=color,
                hovertemplate="%{y}: %{x} loci<extra></extra>",
            )
        )
    _base_layout(fig, max(260, 40 * counts["reason"].nunique() + 140), barmode="stack")
    fig.update_yaxes(type="category", automargin=True, title_text="Reason")
    most = int(counts.groupby("reason")["loci"].sum().max())
    fig.update_xaxes(title_text="Loci", tickformat="d", rangemode="tozero", dtick=1 if most <= 10 else None)
    panel.figure = fig
    panel.caption = (
        f"{len(excluded)} exclusions: a locus far noisier than its context, or seen in the patient's matched "
        "normal (CHIP / germline), is dropped for every patient or for one patient. The table lists them all."
    )
    panel.html = _html_table(excluded, ctx.settings.max_table_rows)
    panel.downloads["excluded_loci.tsv"] = excluded
    return panel


def panel_locus_noise(ctx: Context) -> Panel:
    """Per-locus noise"""
    panel = Panel("locus_noise", "QC: per-locus background rate vs its context rate")
    rates = ctx.tables.locus_rates
    problem = ctx.unavailable("locus_rates", ["rate", "context_rate"])
    if problem:
        panel.message = f"Not drawn: {problem}"
        return panel
    excluded = _text(rates, "excluded").str.lower().isin(["true", "1", "yes"])
    fig = go.Figure()
    for flag, name, color in ((False, "kept", "#56B4E9"), (True, "excluded", "#000000")):
        rows = rates[excluded == flag]
        text = _text(rows, "chrom") + ":" + _text(rows, "pos") + " " + _text(rows, "reason")
        fig.add_trace(
            go.Scatter(
                x=_num(rows, "context_rate"),
                y=_num(rows, "rate"),
                mode="markers",
                name=f"{name} ({len(rows)})",
                marker={"color": color, "size": 6, "opacity": 0.7, "symbol": "x" if flag else "circle"},
                text=text,
                hovertemplate="%{text}<br>context %{x:.2e}, locus %{y:.2e}<extra></extra>",
            )
        )
    known = pd.concat([_num(rates, "context_rate"), _num(rates, "rate")])[lambda v: v > 0]
    if len(known):
        diagonal = [float(known.min()), float(known.max())]
        fig.add_trace(go.Scatter(x=diagonal, y=diagonal, mode="lines", name="locus = context", hoverinfo="skip",
                                 line={"dash": "dash", "color": "#8C8C8C", "width": 1}))  # fmt: skip
    _base_layout(fig, 440)
    fig.update_xaxes(type="log", title_text="Context error rate", exponentformat="power")
    fig.update_yaxes(type="log", title_text="Shrunk per-locus error rate", exponentformat="power")
    panel.figure = fig
    panel.caption = (
        "Each panel locus's empirical-Bayes error rate against its trinucleotide context's rate (dashed: equal); "
        "loci far above their context are excluded."
    )
    panel.downloads["locus_rates.tsv"] = rates
    return panel


def panel_flagged(ctx: Context) -> Panel:
    """Flagged samples"""
    panel = Panel("flagged", "QC: flagged samples")
    calls = ctx.tables.calls
    if "sample_id" not in calls.columns:
        panel.message = f"Not drawn: {ctx.unavailable('calls', ['sample_id'])}"
        return panel
    flagged = calls[_text(calls, "flags") != ""]
    columns = [
        c
        for c in (
            "sample_id",
            "patient_id",
            "batch",
            "mrd_status",
            "flags",
            "status_reason",
            "lod95",
            "total_molecules",
            "n_loci_used",
        )
        if c in calls.columns
    ]
    flagged = flagged[columns]
    qc = ctx.tables.qc
    if len(flagged) and "sample_id" in qc.columns:
        flagged = flagged.merge(qc.drop(columns=["dedup_mode"], errors="ignore"), on="sample_id", how="left")
    if flagged.empty:
        panel.message = f"No flagged sample among the {len(calls)} plasma samples."
        return panel
    panel.html = _html_table(flagged, ctx.settings.max_table_rows)
    panel.caption = f"{len(flagged)} of {len(calls)} plasma samples carry a QC flag from the caller."
    panel.downloads["flagged_samples.tsv"] = flagged
    return panel


# ---------------------------------------------------------------------------------------------------- page

Builder = Callable[[Context], "Panel | list[Panel]"]
SECTIONS: tuple[tuple[str, str, tuple[Builder, ...]], ...] = (
    ("survival", "MRD and progression-free survival", (panels_km, panel_forest, panel_endpoints)),
    ("dynamics", "MRD dynamics", (panel_swimmer, panel_trajectories, panel_lead_time)),
    (
        "qc",
        "Quality control",
        (
            panel_qc_samples,
            panel_lod,
            panel_background,
            panel_fraglen,
            panel_excluded,
            panel_locus_noise,
            panel_flagged,
        ),
    ),
)


@dataclass
class Report:
    """The rendered page and the panels it shows (tests and the per-figure files use the panels)."""

    html: str
    panels: list[Panel]


def build_report(
    inputs: ReportInputs,
    settings: ReportSettings,
    config: Mapping[str, Any] | None = None,
    strict: bool = False,
) -> Report:
    """Read the inputs and render the report; `strict` re-raises a panel's error instead of showing it."""
    ctx = Context.build(load_tables(inputs), settings, config or {})
    sections = [(anchor, title, _run_builders(builders, ctx, strict)) for anchor, title, builders in SECTIONS]
    body = "".join(_section_html(anchor, title, panels) for anchor, title, panels in sections)
    body += _methods_html(ctx)
    panels = [p for _, _, section in sections for p in section]
    page = string.Template(_template()).substitute(
        title=html.escape(settings.title),
        version=html.escape(mrdtrack.__version__),
        plotlyjs=plotly.offline.get_plotlyjs(),
        header=_header_html(ctx),
        toc=_toc_html(sections),
        body=body,
        footer=f"{html.escape(settings.study_name)} \u00b7 mrdtrack {html.escape(mrdtrack.__version__)} \u00b7 "
        f"report date {html.escape(_report_date(ctx))}",
    )
    return Report(page, panels)


def write_report(
    inputs: ReportInputs,
    html_path: PathLike,
    figures_dir: PathLike,
    settings: ReportSettings,
    config: Mapping[str, Any] | None = None,
    strict: bool = False,
) -> Report:
    """Write the report and one HTML (plus any static images) per figure, each atomically."""
    report = build_report(inputs, settings, config, strict)
    with atomic_path(html_path) as tmp:
        tmp.write_text(report.html, encoding="utf-8")
    with _atomic_dir(figures_dir) as folder:
        write_figures(report.panels, folder, settings.static_formats, settings.title)
    log.info("report: %s (%d panels, %.1f MB)", html_path, len(report.panels), len(report.html) / 1e6)
    return report


def write_figures(
    panels: Sequence[Panel], folder: Path, static_formats: Sequence[str] = (), title: str = "Figures"
) -> None:
    """figures/<key>.html sharing one plotly.min.js in the folder (offline), an index.html showing them all with
    their captions (the entry page of `snakemake --report`), and static images only where kaleido works."""
    (folder / FIGURE_INDEX).write_text(_figure_index_html(panels, title), encoding="utf-8")
    images: list[tuple[go.Figure, Path]] = []
    for panel in panels:
        if panel.figure is None:
            continue
        fig = _titled(panel)
        pio.write_html(fig, folder / f"{panel.key}.html", include_plotlyjs="directory", config=PLOTLY_CONFIG,
                       div_id=f"fig-{panel.key}")  # fmt: skip
        if static_formats:  # a picture of the page's figure: its width, and no buttons (nothing to click)
            still = go.Figure(fig).update_layout(updatemenus=[], width=STATIC_WIDTH)
            images += [(still, folder / f"{panel.key}.{fmt}") for fmt in static_formats]
    if images:
        _write_images(images)


FIGURE_INDEX = "index.html"
STATIC_WIDTH = 1180  # px, the figure width on the page (plotly's default, 700, wraps the legends)


def _figure_index_html(panels: Sequence[Panel], title: str) -> str:
    """Every drawn figure in an iframe with its caption; the figures not drawn are listed with the reason."""
    drawn = [p for p in panels if p.figure is not None]
    items = "".join(
        f'<section id="{html.escape(p.key)}"><h2>{html.escape(p.title)}</h2>'
        f'<iframe src="{html.escape(p.key)}.html" title="{html.escape(p.title)}" loading="lazy" '
        f'style="width:100%;height:{int(p.figure.layout.height or 450) + 40}px;border:0"></iframe>'
        f'<p class="caption">{html.escape(p.caption)}</p>'
        f'<p class="files">Open <a href="{html.escape(p.key)}.html">{html.escape(p.key)}.html</a> alone.</p>'
        "</section>\n"
        for p in drawn
    )
    missing = "".join(
        f"<li><b>{html.escape(p.title)}</b>: {html.escape(p.message)}</li>"
        for p in panels
        if p.figure is None and p.message.startswith("Not ")
    )
    missing = f"<h2>Not drawn</h2><ul>{missing}</ul>" if missing else ""
    style = (
        "body{font:15px/1.45 Arial,sans-serif;max-width:1240px;margin:0 auto;padding:8px 24px;color:#1a1a1a}"
        "section{border-top:1px solid #d9d9d9;margin-top:18px}h2{font-size:18px}.caption{font-size:13.5px}"
        ".files{font-size:12px;color:#5f5f5f}"
    )
    return (
        f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n<title>{html.escape(title)}: figures'
        f"</title>\n<style>{style}</style>\n</head>\n<body>\n<h1>{html.escape(title)}: figures</h1>\n"
        f"<p>{len(drawn)} figures; each is also a file of its own in this folder. They share plotly.min.js, so "
        f"keep the folder together.</p>\n{items}{missing}\n</body>\n</html>\n"
    )


def _titled(panel: Panel) -> go.Figure:
    """The figure with its panel title in the top band, above the legend (the page shows it as a heading)."""
    fig = go.Figure(panel.figure)
    height = fig.layout.height or 450
    text = f"{panel.title} \u00b7 {fig.layout.title.text}" if fig.layout.title.text else panel.title
    title = {"text": text, "x": 0.01, "xref": "container", "xanchor": "left", "yref": "container",
             "y": 1 - 6 / height, "yanchor": "top", "font": {"size": 15}}  # fmt: skip
    return fig.update_layout(title=title)


def _write_images(images: Sequence[tuple[go.Figure, Path]]) -> bool:
    """All static images in one call, so kaleido (1.x) starts its Chrome/Chromium once, not once per image.

    kaleido finds Chrome/Chromium on PATH, or at the BROWSER_PATH environment variable. When either is missing
    one warning is logged and no image is written; the HTML figures are complete without them."""
    try:
        pio.write_images([fig for fig, _ in images], [path for _, path in images])
    except (
        Exception
    ) as error:  # kaleido or its browser missing (ValueError, RuntimeError, ChromeNotFoundError)
        for _, path in images:
            path.unlink(missing_ok=True)
        log.warning(
            "report: static export skipped (%s: %s); install kaleido (>= 1.0) and Chrome/Chromium to enable it",
            type(error).__name__,
            error,
        )
        return False
    return True


@contextmanager
def _atomic_dir(path: PathLike) -> Iterator[Path]:
    """Yield a fresh folder beside `path`; it replaces `path` only if the block succeeds."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        yield tmp
        tmp.chmod(0o755)  # mkdtemp makes it private; the figures are meant to be shared
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


def _template() -> str:
    return resources.files("mrdtrack").joinpath("templates/report.html").read_text(encoding="utf-8")


def _run_builders(builders: Sequence[Builder], ctx: Context, strict: bool) -> list[Panel]:
    panels: list[Panel] = []
    for builder in builders:
        try:
            result = builder(ctx)
        except Exception as error:  # one broken figure must not take the other panels down
            if strict:
                raise
            log.exception("report: panel %s failed", builder.__name__)
            title = (builder.__doc__ or builder.__name__).strip().splitlines()[0]
            result = Panel(
                builder.__name__.split("_", 1)[-1],
                title,
                message=f"Not drawn: {type(error).__name__}: {error}",
            )
        panels.extend(result if isinstance(result, list) else [result])
    return panels


def _section_html(anchor: str, title: str, panels: Sequence[Panel]) -> str:
    inner = "".join(_panel_html(p) for p in panels)
    return f'<h2 id="{anchor}">{html.escape(title)}</h2>\n{inner}'


def _panel_html(panel: Panel) -> str:
    attrs = "".join(f' {k}="{html.escape(v)}"' for k, v in panel.attrs.items())
    if panel.figure is not None:
        body = pio.to_html(
            panel.figure,
            include_plotlyjs=False,
            full_html=False,
            div_id=f"fig-{panel.key}",
            config={**PLOTLY_CONFIG, "toImageButtonOptions": {"filename": panel.key}},
        )
    elif panel.message:
        # A panel that could not be drawn is a warning; "nothing flagged" is good news, shown plainly.
        kind = "not-estimable" if panel.message.startswith("Not ") else "panel-info"
        body = f'<div class="{kind}">{html.escape(panel.message)}</div>'
    else:
        body = ""
    caption = f'<p class="caption">{html.escape(panel.caption)}</p>' if panel.caption else ""
    return (
        f'<section class="panel" id="panel-{panel.key}" data-figure="{panel.figure is not None}"{attrs}>\n'
        f"<h3>{html.escape(panel.title)}</h3>\n{body}\n{caption}{panel.html}{_downloads_html(panel)}</section>\n"
    )


def tsv_text(frame: pd.DataFrame) -> str:
    """A table as the TSV the workflow writes (tab-separated, %.6g floats, empty = missing)."""
    return frame.to_csv(sep="\t", index=False, float_format="%.6g", lineterminator="\n")


def _downloads_html(panel: Panel) -> str:
    if not panel.downloads:
        return ""
    links = "".join(
        f'<a class="tsv" download="{html.escape(name)}" href="data:text/tab-separated-values;charset=utf-8;base64,'
        f'{base64.b64encode(tsv_text(frame).encode()).decode()}">{html.escape(name)}</a>'
        for name, frame in panel.downloads.items()
    )
    return f'<p class="downloads">Data (TSV): {links}</p>'


def _html_table(frame: pd.DataFrame, max_rows: int) -> str:
    shown = frame.head(max_rows).to_html(
        index=False, na_rep="", classes="data", border=0, float_format=lambda x: f"{x:.4g}"
    )
    note = (
        f'<p class="meta">First {max_rows} of {len(frame)} rows; the TSV has them all.</p>'
        if len(frame) > max_rows
        else ""
    )
    return f'<div class="table-wrap">{shown}</div>{note}'


def _toc_html(sections: Sequence[tuple[str, str, Sequence[Panel]]]) -> str:
    links = []
    for anchor, title, panels in sections:
        links.append(f'<a href="#{anchor}"><b>{html.escape(title)}</b></a>')
        links += [f'<a href="#panel-{p.key}">{html.escape(p.title)}</a>' for p in panels]
    links.append('<a href="#methods"><b>Methods and parameters</b></a>')
    return f'<nav class="toc">{"".join(links)}</nav>'


def _report_date(ctx: Context) -> str:
    """The configured date, else the latest sample or follow-up date in the data (never today: reproducible)."""
    if ctx.settings.report_date:
        return ctx.settings.report_date
    dates = [ctx.tables.calls.get("collection_date")] + [ctx.patients.get(c) for c in ("pfs_date", "os_date")]
    parsed = pd.concat(
        [pd.to_datetime(d, errors="coerce") for d in dates if d is not None]
        or [pd.Series(dtype="datetime64[ns]")]
    )
    return parsed.max().date().isoformat() if parsed.notna().any() else "not given"


def input_summary(ctx: Context) -> dict[str, int]:
    """Counts shown in the header: patients, plasma samples, batches, controls, normals, events."""
    sheet = ctx.tables.samples
    types = _text(sheet, "sample_type").str.lower()
    plasma = int((types == "plasma").sum()) if len(sheet) else len(ctx.samples)
    batches = _text(sheet if "batch" in sheet.columns else ctx.tables.calls, "batch")
    return {
        "patients": len(ctx.patients),
        "plasma samples": plasma,
        "batches": int(batches[batches != ""].nunique()),
        "healthy controls": int((types == "control").sum()),
        "normal (WBC) samples": int((types == "normal").sum()),
        "MRD-positive samples": int((ctx.samples["status"] == "positive").sum()),
        "PFS events": int((ctx.patients["pfs_event"] == 1).sum()) if "pfs_event" in ctx.patients else 0,
    }


def _header_html(ctx: Context) -> str:
    s, version = ctx.settings, html.escape(mrdtrack.__version__)
    cohorts = ctx.patients["cohort"].value_counts().sort_index()
    per_cohort = ", ".join(f"{html.escape(str(k))}: {v}" for k, v in cohorts.items()) or "none"
    cells = "".join(
        f"<div><b>{v}</b><span>{html.escape(k)}</span></div>" for k, v in input_summary(ctx).items()
    )
    key = "".join(
        f'<span><i style="background:{_status_color(st)}"></i>{_status_label(st)}</span>'
        for st in STATUS_ORDER[:3]
    )
    return (
        f'<h1>{html.escape(s.title)}</h1><div class="study">{html.escape(s.study_name)}</div>'
        f'<div class="meta">Report date {html.escape(_report_date(ctx))} \u00b7 mrdtrack {version}'
        f" \u00b7 patients per cohort: {per_cohort}</div>"
        f'<div class="summary-grid">{cells}</div><div class="legend-key">MRD status colors: {key}</div>'
        + _input_notes_html(ctx)
    )


def _input_notes_html(ctx: Context) -> str:
    """Missing or unreadable inputs and the survival step's notes, folded away under the header."""
    notes = [f"{name}: {why}" for name, why in sorted(ctx.tables.problems.items())] + _notes(
        ctx.tables.summary
    )
    if not notes:
        return ""
    items = "".join(f"<li>{html.escape(n)}</li>" for n in notes)
    return f'<details class="notes"><summary>{len(notes)} input note(s)</summary><ul>{items}</ul></details>'


# Where each config section's defaults live, so the methods state the value in force even when not configured.
SETTINGS_CLASSES = {
    "counting": ("mrdtrack.molecules", "CountSettings"),
    "background": ("mrdtrack.background", "BackgroundSettings"),
    "calling": ("mrdtrack.caller", "CallSettings"),
    "clinical_join": ("mrdtrack.clinical", "ClinicalSettings"),
    "survival": ("mrdtrack.survival", "SurvivalSettings"),
}


def setting(config: Mapping[str, Any], section: str, key: str) -> Any:
    """The value a step used: the config's, else that step's default (None when neither is known)."""
    configured = config.get(section)
    if isinstance(configured, Mapping) and configured.get(key) is not None:
        return configured[key]
    try:
        module, name = SETTINGS_CLASSES[section]
        return getattr(getattr(importlib.import_module(module), name)(), key)
    except Exception:  # a producer renamed or not importable: the methods then say "not recorded"
        return None


def _get(config: Mapping[str, Any], dotted: str) -> str:
    value = setting(config, *dotted.split(".", 1))
    return html.escape(_plain(value)) if value not in (None, "") else "(not recorded)"


def _methods_html(ctx: Context) -> str:
    c = ctx.config
    prose = [
        "<b>Molecule counting.</b> Reads that were unmapped, secondary, supplementary, QC-failed or below mapping "
        f"quality {_get(c, 'counting.min_mapq')} were dropped, and bases below quality "
        f"{_get(c, 'counting.min_baseq')}. Reads of one cfDNA fragment were collapsed into one molecule "
        f"(deduplication mode {_get(c, 'counting.dedup')}, UMI tag {_get(c, 'counting.umi_tag')}, consensus "
        f"fraction {_get(c, 'counting.consensus_fraction')}); overlapping mates count once (merge mates: "
        f"{_get(c, 'counting.merge_mates')}).",
        "<b>Background.</b> Error rates per pyrimidine-centred substitution, trinucleotide context and read "
        "orientation (96 classes) were estimated from healthy-control plasma and other patients' panel loci "
        f"(normals included: {_get(c, 'background.include_normals')}) and shrunk toward their class rate. A locus "
        "was excluded when its noise was far above its context (binomial tail p &lt; "
        f"{_get(c, 'background.noisy_max_p')} and at least {_get(c, 'background.noisy_min_fold')}-fold), or for "
        f"one patient when its ALT showed in that patient's matched normal (at least "
        f"{_get(c, 'background.normal_min_alt')} molecules, VAF &ge; {_get(c, 'background.normal_min_vaf')}).",
        "<b>MRD calling.</b> Per sample, the panel loci were combined in a likelihood-ratio test of tumor fraction "
        f"0 against &gt; 0, the threshold set so that a share {_get(c, 'calling.false_positive_rate')} of null "
        "scores is positive. The tumor fraction is the maximum-likelihood estimate with a profile-likelihood "
        f"{_get(c, 'calling.ci_level')} CI; LOD95 is the tumor fraction detected with probability "
        f"{_get(c, 'calling.lod_power')}. A sample is indeterminate with fewer than {_get(c, 'calling.min_loci')} "
        f"usable loci or {_get(c, 'calling.min_molecules')} molecules, or when negative with a LOD95 above "
        f"{_get(c, 'calling.max_lod95')}. Mutant molecules weighed by their fragment length's tumor/non-tumor "
        "likelihood ratio (learned from the cohort's mutant molecules, leaving each sample's own out): "
        f"{_get(c, 'calling.fragment_lengths')}.",
        "<b>Survival.</b> Baseline MRD is the plasma sample closest to enrollment from "
        f"{_get(c, 'clinical_join.baseline_window_days_before')} days before to "
        f"{_get(c, 'clinical_join.baseline_window_days_after')} days after it. Kaplan-Meier PFS "
        f"({_get(c, 'survival.curve_ci')} CIs), log-rank tests and Cox models (unadjusted; adjusted for "
        f"{_get(c, 'survival.covariates') or 'none'}; landmarks at {_get(c, 'survival.landmarks_months')} "
        "months; MRD status as a time-varying covariate). Months are days / 30.4375. The trial endpoint is PFS at "
        f"{_get(c, 'survival.pfs_endpoint_months')} months per cohort; the {_get(c, 'survival.design')} Simon "
        f"two-stage design for cohort {_get(c, 'survival.design_cohort')} tests p0 = {_get(c, 'survival.p0')} "
        f"against p1 = {_get(c, 'survival.p1')} (one-sided alpha {_get(c, 'survival.alpha')}, power "
        f"{_get(c, 'survival.power')}).",
        "<b>Figures.</b> Okabe-Ito colors ("
        + ", ".join(f"{_status_label(k)} {v}" for k, v in list(MRD_COLORS.items())[:3])
        + f"). A tumor fraction of 0 is drawn at the plotting floor {ctx.tf_floor():g} on log axes.",
    ]
    params = "".join(
        f"<tr><th>{html.escape(k)}</th><td>{html.escape(_plain(v))}</td></tr>" for k, v in _flatten(c).items()
    )
    table = f'<table class="facts">{params}</table>' if params else "<p>No configuration was given.</p>"
    return (
        '<h2 id="methods">Methods and parameters</h2><div class="methods">'
        + "".join(f"<p>{p}</p>" for p in prose)
        + '<p class="meta">Values not set in the configuration are the steps\' defaults.</p>'
        + f"<h4>All configuration parameters of this run</h4>{table}</div>"
    )
