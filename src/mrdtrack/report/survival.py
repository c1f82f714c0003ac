"""Survival sections: Kaplan-Meier PFS by baseline MRD status (pooled and per cohort), the Cox forest plot and the
trial endpoints with the two-stage design."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from mrdtrack.report.context import (
    ALL,
    Context,
    normalize_cohort,
    normalize_status,
    numeric_column,
    survival_notes,
    text_column,
)
from mrdtrack.report.formatting import (
    count_noun,
    flatten,
    fmt_number,
    p_text,
    plain,
    slug,
)
from mrdtrack.report.models import is_stratified, plain_note, term_label
from mrdtrack.report.recorded import setting
from mrdtrack.report.section import Block, Note, Section, Table, facts_table, transposed_table
from mrdtrack.report.style import (
    MRD_SHORT,
    base_layout,
    ordered_statuses,
    rgba,
    status_color,
    status_label,
)
from mrdtrack.vocabulary import DETERMINATE_STATUSES


def sections_km(ctx: Context) -> list[Section]:
    """Kaplan-Meier PFS by baseline MRD status"""
    return [_km_section(ctx, ALL)] + [_km_section(ctx, cohort) for cohort in ctx.cohorts()]


def km_curve_rows(curves: pd.DataFrame, cohort: str) -> pd.DataFrame:
    """The km_curves rows of `cohort` ('all': the pooled analysis) with `status` the normalized group, numeric."""
    if curves.empty or not {"group", "time", "survival"} <= set(curves.columns):
        return pd.DataFrame(columns=["status", "time", "survival", "ci_low", "ci_high", "at_risk", "events"])
    cohorts = curves["cohort"].map(normalize_cohort) if "cohort" in curves.columns else ALL
    analysis = text_column(curves, "analysis", "overall" if cohort == ALL else "cohort")
    wanted = (analysis == ("overall" if cohort == ALL else "cohort")) & (cohorts == cohort)
    rows = curves[wanted].copy()
    rows["status"] = rows["group"].map(normalize_status)
    for column in ("time", "survival", "ci_low", "ci_high", "at_risk", "events", "censored"):
        rows[column] = numeric_column(rows, column)
    return rows.dropna(subset=["time", "survival"]).sort_values(["status", "time"])


def _km_section(ctx: Context, cohort: str) -> Section:
    key = "km_pooled" if cohort == ALL else f"km_{slug(cohort)}"
    who = "all patients (cohorts pooled)" if cohort == ALL else f"cohort {cohort}"
    section = Section(key, f"PFS by baseline MRD status: {who}")
    curves = ctx.tables.km_curves
    rows = km_curve_rows(curves, cohort)
    if rows.empty:
        section.message = f"Not estimable: {_km_reason(ctx, cohort)}"
        return section
    stats = _km_stats_text(ctx, cohort)
    section.figure = _km_figure(rows, stats, ctx.settings.risk_table_step_months)
    banded = any(t.fill == "toself" for t in section.figure.data)
    section.caption = (
        "Kaplan-Meier estimate of progression-free survival by MRD status of the baseline plasma sample; "
        + (f"shaded bands: pointwise 95% CI ({_curve_ci(ctx)}); " if banded else "")
        + "vertical ticks: censored patients; table: number at risk. "
        + f"{stats}. {_km_medians(ctx.tables.km_summary, cohort)}{_km_ungrouped(ctx, rows, cohort)}"
    )
    section.downloads[f"{key}.tsv"] = curves.loc[rows.index].sort_index()
    return section


def _curve_ci(ctx: Context) -> str:
    """How the survival step transformed the curves' CIs (survival.curve_ci)."""
    return plain(setting(ctx.tables.settings, "survival", "curve_ci")) or "log-log"


def _km_ungrouped(ctx: Context, rows: pd.DataFrame, cohort: str) -> str:
    """Patients in no MRD group (no baseline sample in the window): they are only in the all-patients curve."""
    patients = ctx.patients if cohort == ALL else ctx.patients[ctx.patients["cohort"] == cohort]
    outside = patients[~patients["baseline_status"].isin(set(rows["status"]) - {ALL})]
    if outside.empty:
        return ""
    ids = ", ".join(outside["patient_id"].astype(str).head(10)) + (", \u2026" if len(outside) > 10 else "")
    where = ' only in "all patients"' if ALL in set(rows["status"]) else " not shown"
    verb = "has" if len(outside) == 1 else "have"
    return f" {count_noun(len(outside), 'patient')} ({ids}) {verb} no baseline MRD call and {'is' if len(outside) == 1 else 'are'}{where}."


def _km_reason(ctx: Context, cohort: str) -> str:
    """Why no curve: the producer's note if it wrote one, otherwise what the patient table shows."""
    problem = ctx.unavailable("km_curves", ["group", "time", "survival"])
    notes = [plain_note(n) for n in survival_notes(ctx.tables.summary) if cohort == ALL or cohort in n]
    patients = ctx.patients if cohort == ALL else ctx.patients[ctx.patients["cohort"] == cohort]
    called = patients["baseline_status"].isin(DETERMINATE_STATUSES).sum()
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


def _km_figure(rows: pd.DataFrame, stats: str, step: float) -> go.Figure:
    statuses = ordered_statuses(rows["status"].tolist())
    table_share = 0.08 + 0.055 * len(statuses)
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[1 - table_share, table_share],
                        vertical_spacing=0.16)  # fmt: skip
    ticks = _risk_ticks(float(rows["time"].max()), step)
    for status in statuses:
        curve = rows[rows["status"] == status]
        _add_km_curve(fig, curve, status)
        _add_risk_row(fig, curve, status, ticks)
    height = 560 + 22 * len(statuses)
    base_layout(fig, height, hovermode="closest")
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
    color, label = status_color(status), status_label(status)
    n = fmt_number(curve["at_risk"].iloc[0], ".0f", "?")
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
            x=curve["time"], y=curve["survival"], mode="lines", line=line, name=f"{label} (n={n}, {count_noun(events, 'event')})",
            legendgroup=status, customdata=km_hover_data(curve),
            hovertemplate=f"{label}<br>%{{x:.1f}} months: PFS %{{y:.1%}}<br>%{{customdata[0]}} at risk, "
            "%{customdata[1]} events so far<extra></extra>",
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


def km_hover_data(curve: pd.DataFrame) -> np.ndarray:
    """Per curve row: the number at risk and the events up to and including its time (for the hover)."""
    at_risk = [fmt_number(v, ".0f", "?") for v in curve["at_risk"]]
    events = curve["events"].fillna(0).cumsum().astype(int)
    return np.stack([np.array(at_risk, dtype=object), events.to_numpy(dtype=object)], axis=1)


def _add_km_band(fig: go.Figure, curve: pd.DataFrame, status: str) -> None:
    """The pointwise CI as a shaded band, step-shaped like the curve, in the curve's legend group."""
    x, y = km_band_outline(curve["time"], curve["survival"], curve["ci_low"], curve["ci_high"])
    if not x:
        return
    fig.add_trace(
        go.Scatter(x=x, y=y, mode="lines", fill="toself", fillcolor=rgba(status_color(status), 0.16),
                   line={"width": 0}, legendgroup=status, showlegend=False, hoverinfo="skip"),
        row=1, col=1,
    )  # fmt: skip


def km_band_outline(
    time: pd.Series, survival: pd.Series, low: pd.Series, high: pd.Series
) -> tuple[list[float | None], list[float | None]]:
    """The outline of a step-shaped CI band: per stretch of rows with a CI, the upper edge forward and the lower
    edge back, stretches separated by None (plotly closes each into its own shape).

    Row i's interval holds from its time to the next row's. The producers leave the CI empty where S = 1 (log-log
    CIs are undefined there; the band is the curve itself) and where S = 0 (the band ends)."""
    t = time.to_numpy(dtype=float)
    at_one = survival.to_numpy(dtype=float) >= 1
    lo = np.where(at_one, 1.0, low.to_numpy(dtype=float))
    hi = np.where(at_one, 1.0, high.to_numpy(dtype=float))
    ends = np.append(t[1:], t[-1]) if len(t) else t
    x: list[float | None] = []
    y: list[float | None] = []
    for rows in _runs(np.isfinite(lo) & np.isfinite(hi)):
        upper_x = [v for i in rows for v in (t[i], ends[i])]
        upper_y = [v for i in rows for v in (hi[i], hi[i])]
        lower_y = [v for i in rows for v in (lo[i], lo[i])]
        x += [*upper_x, *upper_x[::-1], None]
        y += [*upper_y, *lower_y[::-1], None]
    return [None if v is None else float(v) for v in x[:-1]], [
        None if v is None else float(v) for v in y[:-1]
    ]


def _runs(mask: np.ndarray) -> list[list[int]]:
    """The indexes of each stretch of consecutive True values."""
    runs: list[list[int]] = []
    for i, value in enumerate(mask):
        if value and runs and runs[-1][-1] == i - 1:
            runs[-1].append(i)
        elif value:
            runs.append([i])
    return runs


def _add_risk_row(fig: go.Figure, curve: pd.DataFrame, status: str, ticks: list[float]) -> None:
    if curve["at_risk"].isna().all():
        return
    times, at_risk = curve["time"].to_numpy(), curve["at_risk"].to_numpy()
    # Rows are one per distinct time, so the number at risk at t is that of the first row at or after t.
    counts = []
    for tick in ticks:
        later = np.flatnonzero(times >= tick - 1e-9)
        counts.append(fmt_number(at_risk[later[0]], ".0f") if len(later) else "0")
    label = MRD_SHORT.get(status, status)
    fig.add_trace(
        go.Scatter(
            x=ticks,
            y=[label] * len(ticks),
            mode="text",
            text=counts,
            showlegend=False,
            legendgroup=status,
            textfont={"color": status_color(status), "size": 13},
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
    cohorts = cox["cohort"].map(normalize_cohort) if "cohort" in cox.columns else ALL
    rows = cox[(cox["model"] == "baseline_unadjusted") & (cohorts == cohort)]
    rows = rows[np.isfinite(numeric_column(rows, "hr"))]
    return rows.iloc[0] if len(rows) else None


def _hr_text(row: pd.Series) -> str:
    hr = f"HR {fmt_number(row.get('hr'), '.2f')} (95% CI {fmt_number(row.get('hr_ci_low'), '.2f')}\u2013"
    return hr + f"{fmt_number(row.get('hr_ci_high'), '.2f')})"


def _logrank_note(summary: Mapping[str, Any], cohort: str) -> str:
    logrank = summary.get("logrank") or {}
    if not isinstance(logrank, Mapping):
        return ""
    entry = logrank.get("overall") if cohort == ALL else _cohort_entry(logrank.get("per_cohort"), cohort)
    return str(entry.get("note") or "") if isinstance(entry, Mapping) else ""


def _km_stats_text(ctx: Context, cohort: str) -> str:
    p = _logrank_p(ctx.tables.summary, cohort)
    note = _logrank_note(ctx.tables.summary, cohort)
    parts = [p_text(p, "log-rank p") if p is not None or not note else f"log-rank: {plain_note(note)}"]
    hr = _baseline_hr(ctx.tables.cox, cohort)
    if hr is None:
        parts.append("HR not estimable")
    else:
        default = setting(ctx.tables.settings, "survival", "stratify_by_cohort") is not False
        strata = is_stratified(
            ctx.tables.summary, "baseline_unadjusted", cohort, default and len(ctx.cohorts()) > 1
        )
        method = " (Firth)" if str(hr.get("method", "")).lower() == "firth" else ""
        parts.append(
            f"{term_label(str(hr.get('term') or 'mrd_positive'))}: {_hr_text(hr)}{method}"
            + (", Cox stratified by cohort" if strata else "")
        )
    return "; ".join(parts)


def _first_present(row: pd.Series, names: Iterable[str]) -> Any:
    return next((row[n] for n in names if n in row.index and pd.notna(row[n])), np.nan)


def _km_medians(summary: pd.DataFrame, cohort: str) -> str:
    if not {"group", "median"} <= set(summary.columns):
        return ""
    cohorts = summary["cohort"].map(normalize_cohort) if "cohort" in summary.columns else ALL
    analysis = text_column(summary, "analysis", "overall" if cohort == ALL else "cohort")
    rows = summary[(cohorts == cohort) & (analysis == ("overall" if cohort == ALL else "cohort"))]
    firsts = rows.groupby("group", sort=False).first()
    firsts.index = firsts.index.map(normalize_status)
    parts = []
    for group, first in firsts.loc[ordered_statuses(list(firsts.index))].iterrows():
        if pd.notna(first.get("n")) and float(first.get("n")) == 0:
            continue
        median = first.get("median")
        low, high = (
            _first_present(first, [f"median_ci_{side}{x}" for x in ("_loglog", "_log", "")])
            for side in ("low", "high")
        )
        known = pd.notna(low) or pd.notna(high)
        ci = (
            f" (95% CI {fmt_number(low, '.1f')}\u2013{fmt_number(high, '.1f', 'not reached')})"
            if known
            else ""
        )
        value = "not reached" if pd.isna(median) else f"{fmt_number(median, '.1f')} months{ci}"
        parts.append(f"{status_label(str(group))} {value}")
    return ("Median PFS: " + "; ".join(parts) + ".") if parts else ""


def section_endpoints(ctx: Context) -> Section:
    """Trial endpoints"""
    section = Section("endpoints", "Trial endpoints per cohort and the two-stage decision")
    endpoints = ctx.tables.endpoints
    design = _design_values(ctx)
    section.blocks += _design_blocks(ctx, design)
    if not ctx.tables.design.empty:
        section.downloads["design.tsv"] = ctx.tables.design
    problem = ctx.unavailable("endpoints", ["cohort", "endpoint", "estimate"])
    if problem:
        section.message = f"Not estimable: {problem}"
        return section
    section.downloads["endpoints.tsv"] = endpoints
    section.figure = _endpoints_figure(ctx, endpoints, design)
    section.caption = (
        "Trial endpoints per cohort with their CI (PFS / OS: Kaplan-Meier at the horizon; hover for the events "
        "by then). "
        + _design_lines_text(ctx, endpoints, design)
        + " The two-stage design and its decision are "
        "tabulated below." + _endpoint_gaps(endpoints) + _notes_about(ctx, ("endpoint", "design"))
    )
    return section


def _design_lines_text(ctx: Context, endpoints: pd.DataFrame, design: Mapping[str, Any]) -> str:
    cohort = _design_cohort(ctx, design)
    if cohort not in set(endpoints["cohort"].map(normalize_cohort)):
        return "The two-stage design's cohort is not among these."
    return (
        f"Dashed lines over cohort {cohort}, the cohort the Simon two-stage design is for: its null (p0) and "
        "target (p1) progression-free rate."
    )


def _endpoint_gaps(endpoints: pd.DataFrame) -> str:
    """Which endpoint / cohort has no estimate, and the producer's reason."""
    missing = endpoints[numeric_column(endpoints, "estimate").isna()]
    parts = []
    for (endpoint, note), rows in missing.groupby(
        [
            endpoints["endpoint"].astype(str),
            text_column(endpoints, "note", "no estimate").replace("", "no estimate"),
        ],
        sort=False,
    ):
        cohorts = ", ".join(rows["cohort"].map(normalize_cohort).astype(str))
        parts.append(f"{endpoint_label(str(endpoint))} ({cohorts}): {note}")
    return (" Not estimable: " + "; ".join(parts) + ".") if parts else ""


def _notes_about(ctx: Context, words: Sequence[str]) -> str:
    notes = [plain_note(n) for n in survival_notes(ctx.tables.summary) if any(w in n.lower() for w in words)]
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
        flat = flatten(summary_design)
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


def endpoint_months(endpoint: str) -> float:
    """pfs_12m -> 12, os_3y -> 36; NaN for other names."""
    match = re.fullmatch(r"(?:pfs|os)_(\d+(?:\.\d+)?)(m|y)", endpoint.lower())
    if not match:
        return float("nan")
    return float(match.group(1)) * (12 if match.group(2) == "y" else 1)


def endpoint_label(endpoint: str) -> str:
    """pfs_12m -> 'PFS at 12 months', os_3y -> 'OS at 3 years'; other names are shown as they are."""
    match = re.fullmatch(r"(pfs|os)_(\d+(?:\.\d+)?)(m|y)", endpoint.lower())
    if not match:
        return endpoint.replace("_", " ")
    what, amount, unit = match.groups()
    word = "month" if unit == "m" else "year"
    return f"{what.upper()} at {amount} {word if float(amount) == 1 else word + 's'}"


def _endpoints_figure(ctx: Context, endpoints: pd.DataFrame, design: Mapping[str, Any]) -> go.Figure:
    fig = go.Figure()
    styles = {"pfs": ("#000000", "circle"), "os": ("#5F5F5F", "diamond")}
    cohorts = list(dict.fromkeys(endpoints["cohort"].map(normalize_cohort)))
    for endpoint, rows in endpoints.groupby("endpoint", sort=False):
        color, symbol = styles.get(str(endpoint).split("_", 1)[0].lower(), ("#56B4E9", "square"))
        est = numeric_column(rows, "estimate")
        name = endpoint_label(str(endpoint)) + (" (not estimable)" if est.isna().all() else "")
        fig.add_trace(
            go.Scatter(
                x=rows["cohort"].map(normalize_cohort), y=est, mode="markers", name=name,
                marker={"color": color, "symbol": symbol, "size": 12},
                error_y={"type": "data", "symmetric": False, "array": numeric_column(rows, "ci_high") - est,
                         "arrayminus": est - numeric_column(rows, "ci_low"), "color": color, "thickness": 2},
                hovertext=[_endpoint_hover(ctx, row) for _, row in rows.iterrows()],
                hovertemplate="%{hovertext}<extra></extra>",
            )
        )  # fmt: skip
    _add_design_lines(fig, design, _design_cohort(ctx, design), cohorts)
    base_layout(fig, 400, scattermode="group", scattergap=0.6)
    fig.update_yaxes(range=[0, 1.02], tickformat=".0%", title_text="Estimate (95% CI)")
    fig.update_xaxes(type="category", categoryorder="array", categoryarray=cohorts, title_text="Cohort")
    return fig


def _design_cohort(ctx: Context, design: Mapping[str, Any]) -> str:
    """The cohort the two-stage design is for: as the design records it, else survival.design_cohort."""
    cohort = design.get("cohort") or setting(ctx.tables.settings, "survival", "design_cohort")
    return normalize_cohort(cohort) if cohort not in (None, "") else ""


def _add_design_lines(fig: go.Figure, design: Mapping[str, Any], cohort: str, cohorts: Sequence[str]) -> None:
    """The design's null and target rates as dashed lines over its own cohort only (a category is 1 wide)."""
    if cohort not in cohorts:
        return
    center = cohorts.index(cohort)
    for names, label in ((("p0", "null"), "null"), (("p1", "alternative", "target"), "target")):
        value = _design_reference(design, names)
        if value is None:
            continue
        fig.add_shape(type="line", x0=center - 0.42, x1=center + 0.42, y0=value, y1=value, xref="x", yref="y",
                      line={"dash": "dash", "color": "#8C8C8C", "width": 1.5})  # fmt: skip
        fig.add_annotation(text=f"{label} {value:.0%}", x=center + 0.42, y=value, xref="x", yref="y",
                           xanchor="left", yanchor="middle", showarrow=False,
                           font={"color": "#5F5F5F", "size": 12})  # fmt: skip


def _endpoint_hover(ctx: Context, row: pd.Series) -> str:
    """The estimate with its CI and what it rests on: for PFS at a time point, the progression events by then."""
    cohort, endpoint = normalize_cohort(row["cohort"]), str(row["endpoint"])
    level = _ci_text(row.get("ci_low"), row.get("ci_high"))
    lines = [
        f"<b>{endpoint_label(endpoint)}</b> \u00b7 {cohort}",
        f"{fmt_number(100 * _float(row.get('estimate')), '.1f', 'not estimable')}%{level}",
    ]
    n, events = fmt_number(row.get("n"), ".0f"), row.get("events")
    months = _float(row.get("timepoint_months"))
    if math.isnan(months):
        months = endpoint_months(endpoint)
    kind = endpoint.split("_", 1)[0].lower()
    if kind == "pfs" and not math.isnan(months):
        by_then = events_by(ctx.tables.km_curves, cohort, months)
        told = (
            f"{count_noun(by_then, 'progression event')} by {months:g} months"
            if by_then is not None
            else (f"{count_noun(_float(events), 'event')} over the whole follow-up")
        )
        lines.append(f"n = {n}; {told}")
    elif kind == "os":
        lines.append(f"n = {n}; {count_noun(_float(events), 'death')} over the whole follow-up")
    else:
        lines.append(f"{fmt_number(events, '.0f')} of {n}")
    return "<br>".join(lines)


def _ci_text(low: Any, high: Any) -> str:
    low, high = _float(low), _float(high)
    if math.isnan(low) or math.isnan(high):
        return ""
    return f" (95% CI {100 * low:.1f}\u2013{100 * high:.1f}%)"


def _float(value: Any) -> float:
    number = pd.to_numeric(value, errors="coerce")
    return float("nan") if pd.isna(number) else float(number)


def events_by(curves: pd.DataFrame, cohort: str, months: float) -> int | None:
    """The progression events of the all-patients curve of `cohort` up to `months` (None without curves)."""
    rows = km_curve_rows(curves, cohort)
    rows = rows[rows["status"] == ALL]
    if rows.empty:
        return None
    return int(rows.loc[rows["time"] <= months + 1e-9, "events"].fillna(0).sum())


def _design_table(table: pd.DataFrame) -> Table:
    """One column per candidate design (optimal, minimax): their ~25 fields as rows fit the page, as columns
    they ran off its right edge."""
    names = text_column(table, "design") if "design" in table.columns else None
    if names is None or (names == "").any() or names.duplicated().any():
        names = pd.Series([f"design {i + 1}" for i in range(len(table))])
    return transposed_table(table.drop(columns=["design"], errors="ignore"), list(names), "Design table")


def _design_blocks(ctx: Context, design: Mapping[str, Any]) -> list[Block]:
    table = ctx.tables.design
    blocks: list[Block] = []
    if design:
        blocks.append(facts_table(design, "Two-stage design"))
    if not table.empty and table.shape[1] != 2:
        blocks.append(_design_table(table.head(ctx.settings.max_table_rows)))
    return blocks or [Note("No two-stage design result was given.")]
