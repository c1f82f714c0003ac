"""MRD dynamics sections: the swimmer plot and the lead time to progression (the tumor-fraction trajectories are
in `trajectories`)."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from mrdtrack.report.context import Context, months_between, numeric_column, sample_table
from mrdtrack.report.formatting import fmt_number, mutant_evidence_text, text_or
from mrdtrack.report.section import Section
from mrdtrack.report.style import (
    MRD_COLORS,
    MRD_SYMBOLS,
    base_layout,
    button_menu,
    ordered_statuses,
    status_color,
    status_label,
)
from mrdtrack.vocabulary import INDETERMINATE, POSITIVE

EVENT_STYLE = {  # swimmer and trajectory event markers: (symbol, color, size)
    "progression": ("x", "#000000", 11),
    "death": ("square", "#000000", 9),
    "restart": ("triangle-right", "#E69F00", 11),
    "censored": ("line-ns-open", "#5F5F5F", 12),
}


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


def sample_hover(samples: pd.DataFrame) -> list[str]:
    """A hover text per plasma sample: patient, sample, time, status, tumor fraction with CI, LOD95, and the
    mutant fragments and loci behind the call when the caller wrote them."""
    return [
        f"<b>{r.patient_id}</b> \u00b7 {r.sample_id}<br>{fmt_number(r.months, '.1f')} months"
        f" ({text_or(r, 'collection_date', '')})<br>{status_label(r.status)}<br>"
        f"TF {fmt_number(r.tumor_fraction, '.3g')} (95% CI {fmt_number(r.tf_ci_low, '.2g')}\u2013{fmt_number(r.tf_ci_high, '.2g')})"
        f"<br>LOD95 {fmt_number(r.lod95, '.3g')}" + mutant_evidence_text(r)
        for r in samples.itertuples()
    ]


def section_swimmer(ctx: Context) -> Section:
    """Swimmer plot"""
    section = Section("swimmer", "Swimmer plot: plasma samples and clinical events per patient")
    if ctx.patients.empty:
        section.message = f"Not drawn: no patients ({ctx.unavailable('patients', ['patient_id']) or 'empty'})"
        return section
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
    section.figure = fig
    section.attrs["data-lanes"] = str(len(lanes))
    section.caption = (
        f"{len(lanes)} patients, one lane each (grey: follow-up). Markers: plasma samples colored by MRD status "
        "(hover for tumor fraction and the sample's LOD95); \u00d7 progression, \u25a0 death, \u25b6 anti-HER2 "
        "restart, | censored. The buttons re-sort the lanes by cohort or by time to progression."
    )
    section.downloads["swimmer_patients.tsv"] = lanes
    section.downloads["swimmer_samples.tsv"] = sample_table(ctx.samples)
    return section


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
    for status in ordered_statuses(samples["status"].tolist()):
        rows = samples[samples["status"] == status]
        color = status_color(status)
        fig.add_trace(
            go.Scatter(
                x=rows["months"],
                y=rows["patient_id"],
                mode="markers",
                name=status_label(status),
                marker={
                    "color": color,
                    "symbol": MRD_SYMBOLS.get(status, "circle"),
                    "size": 8,
                    "line": {"width": 1.5 if status == INDETERMINATE else 0.5, "color": color},
                },
                text=sample_hover(rows),
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
    menu = button_menu(buttons, active=0 if default == "cohort" else 1)
    base_layout(fig, max(400, 17 * len(lanes) + 200), barmode="overlay", updatemenus=[menu])
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


def section_lead_time(ctx: Context) -> Section:
    """Lead time"""
    section = Section("lead_time", "Lead time: first MRD-positive sample to radiographic progression")
    table = _lead_times(ctx.patients)
    progressed = int((ctx.patients["pfs_event"] == 1).sum())
    with_lead = table.dropna(subset=["lead_time_months"])
    if with_lead.empty:
        section.message = (
            "Not estimable: no patient had an MRD-positive sample before progression "
            f"({progressed} progressed)"
        )
        return section
    with_lead = with_lead.sort_values("lead_time_months")
    section.figure = _lead_figure(with_lead)
    lead = with_lead["lead_time_months"]
    section.caption = (
        f"{len(with_lead)} of {progressed} patients who progressed had an MRD-positive sample first; median lead "
        f"time {lead.median():.1f} months (IQR {lead.quantile(0.25):.1f}\u2013{lead.quantile(0.75):.1f}, range "
        f"{lead.min():.1f}\u2013{lead.max():.1f}). {progressed - len(with_lead)} progressed with no positive "
        f"sample before; {int(table['first_positive'].notna().sum() - len(with_lead))} patients were positive "
        "without progression (so far) or only after it."
    )
    section.downloads["lead_time.tsv"] = table
    return section


def _lead_times(patients: pd.DataFrame) -> pd.DataFrame:
    out = patients[["patient_id", "cohort"]].copy()
    first = numeric_column(patients, "first_positive_months")
    if "first_positive_date" in patients.columns and "enrollment_date" in patients.columns:
        first = first.fillna(months_between(patients["first_positive_date"], patients["enrollment_date"]))
    progression = patients["pfs_months"].where(patients["pfs_event"] == 1)
    lead = numeric_column(patients, "lead_time_months").fillna(progression - first)
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
            marker={"color": MRD_COLORS[POSITIVE], "symbol": MRD_SYMBOLS[POSITIVE], "size": 10},
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
    base_layout(fig, max(300, 20 * len(ids) + 150))
    fig.update_yaxes(
        type="category", categoryorder="array", categoryarray=ids, title_text="Patient", tickfont={"size": 10}
    )
    fig.update_xaxes(title_text="Months since enrollment")
    return fig
