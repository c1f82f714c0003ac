"""Tumor-fraction trajectories: one line per patient on a log axis, progression in a band of its own.

A tumor fraction below the sample's LOD95 (including 0: no mutant molecule beyond background) says only that
the tumor fraction is below what the sample could detect, so such a sample is drawn at its LOD95 with a
"below LOD" marker, not at an arbitrary floor: the lines then show what each sample could see. A sample
without a LOD95 and no tumor fraction above 0 is drawn at the plotting floor (report.tf_floor).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from mrdtrack.report.context import Context, sample_table
from mrdtrack.report.dynamics import EVENT_STYLE, lane_frame, sample_hover
from mrdtrack.report.formatting import count_noun
from mrdtrack.report.render import static_text
from mrdtrack.report.section import Section
from mrdtrack.report.style import (
    MRD_SYMBOLS,
    base_layout,
    button_menu,
    rgba,
    status_color,
    status_legend,
)
from mrdtrack.vocabulary import POSITIVE

BELOW_LOD_SYMBOL = "triangle-down"
# How a sample is placed on the log axis: its tumor fraction, its LOD95 (below it), or the floor (neither).
PLACED = ("tumor fraction", "below LOD95", "floor")


def section_trajectories(ctx: Context) -> Section:
    """Tumor-fraction trajectories"""
    section = Section("trajectories", "Tumor-fraction trajectories per patient (log scale)")
    samples = ctx.samples.dropna(subset=["months"])
    if samples.empty or samples["tumor_fraction"].isna().all() and samples["lod95"].isna().all():
        section.message = (
            f"Not drawn: no plasma sample with a tumor fraction ({ctx.unavailable('calls', []) or 'no TF'})"
        )
        return section
    floor = ctx.tf_floor()
    samples = placed_samples(samples.sort_values(["patient_id", "months"]), floor)
    lanes = lane_frame(ctx.patients, samples).dropna(subset=["progression"])
    cohorts = sorted(samples["cohort"].astype(str).unique())
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.04,
                        row_heights=[1 - _band_share(cohorts), _band_share(cohorts)])  # fmt: skip
    tags = _add_lines(fig, ctx, samples)
    tags += _add_lod_marks(fig, samples)
    tags += _add_progression_band(fig, lanes, cohorts)
    status_legend(fig, samples["status"].tolist())
    if (samples["placed"] == PLACED[1]).any():
        fig.add_trace(_below_lod_legend(), row=1, col=1)
    tags += [""] * (len(fig.data) - len(tags))
    uses_floor = bool((samples["placed"] == "floor").any())
    _trajectory_layout(
        fig, samples, floor if uses_floor else None, _cohort_menu(tags, ctx.cohorts()), cohorts
    )
    section.figure = fig
    section.script = static_text("highlight_patient.js")
    section.caption = _caption(samples, floor, uses_floor)
    section.downloads["tf_trajectories.tsv"] = sample_table(samples).assign(
        plotted_at=samples["tf_plot"], placed=samples["placed"]
    )
    return section


def placed_samples(samples: pd.DataFrame, floor: float) -> pd.DataFrame:
    """The samples with `tf_plot`, where each is drawn, and `placed`, why there (PLACED).

    A positive sample keeps its tumor fraction when it is > 0 (a positive call may sit below the LOD95, which
    is the fraction detected 95% of the time); any other sample below its LOD95 is drawn at it."""
    tf, lod = samples["tumor_fraction"], samples["lod95"]
    has_lod = lod > 0
    shown = (tf > 0) & ((samples["status"] == POSITIVE) | ~has_lod | (tf >= lod))
    placed = np.where(shown, PLACED[0], np.where(has_lod, PLACED[1], PLACED[2]))
    plotted = np.where(shown, tf, np.where(has_lod, lod, floor))
    return samples.assign(tf_plot=plotted.astype(float), placed=placed)


def _band_share(cohorts: list[str]) -> float:
    return 0.05 + 0.035 * len(cohorts)


def _caption(samples: pd.DataFrame, floor: float, uses_floor: bool) -> str:
    below = int((samples["placed"] == PLACED[1]).sum())
    return (
        "Maximum-likelihood tumor fraction of each plasma sample, one line per patient colored by cohort, marker "
        "by MRD status (open circle: indeterminate). Hover a sample to bring its patient forward (click to keep "
        "it; click a cohort in the legend to hide or show its lines). A sample whose tumor fraction is below its "
        "95% limit of detection (LOD95), including 0, is drawn at its LOD95 with a \u25bc: the tumor fraction is "
        f"below what that sample could detect ({count_noun(below, 'sample')}; the hover shows the estimate). "
        "Grey dashes: the LOD95 of the samples drawn at their tumor fraction. The band below the plot marks "
        "each patient's progression (\u00d7), per cohort."
        + (f" Samples without a LOD95 and a tumor fraction of 0 are drawn at the plotting floor {floor:g} (dotted "
           "line; report.tf_floor)." if uses_floor else "")
        + " Use the buttons to show one cohort."
    )  # fmt: skip


def _add_lines(fig: go.Figure, ctx: Context, samples: pd.DataFrame) -> list[str]:
    """A legend entry per cohort, then a line per patient; returns each trace's cohort (for the buttons)."""
    tags = []
    for cohort, rows in samples.groupby("cohort", sort=True):
        fig.add_trace(_cohort_line_legend(ctx, str(cohort), rows["patient_id"].nunique()), row=1, col=1)
        tags.append(str(cohort))
    for (patient, cohort), rows in samples.groupby(["patient_id", "cohort"], sort=True):
        fig.add_trace(
            _trajectory_trace(str(patient), str(cohort), ctx.cohort_color(str(cohort)), rows), row=1, col=1
        )
        tags.append(str(cohort))
    return tags


def _cohort_line_legend(ctx: Context, cohort: str, n_patients: int) -> go.Scatter:
    """The legend entry of a cohort's lines; clicking it hides or shows them all (one legend group)."""
    return go.Scatter(
        x=[None],
        y=[None],
        mode="lines",
        name=f"cohort {cohort} ({count_noun(n_patients, 'patient')})",
        legendgroup=f"cohort-{cohort}",
        line={"color": ctx.cohort_color(cohort), "width": 2.5},
        hoverinfo="skip",
    )


def _trajectory_trace(patient: str, cohort: str, color: str, rows: pd.DataFrame) -> go.Scatter:
    statuses = rows["status"].tolist()
    colors = [status_color(s) for s in statuses]
    below = (rows["placed"] == PLACED[1]).tolist()
    hover = [
        text + ("<br><i>below its LOD95: drawn at the LOD95</i>" if low else "")
        for text, low in zip(sample_hover(rows), below, strict=True)
    ]
    return go.Scatter(
        x=rows["months"],
        y=rows["tf_plot"],
        mode="lines+markers",
        name=patient,
        meta="patient",  # templates/highlight_patient.js finds the patients' lines by it
        legendgroup=f"cohort-{cohort}",
        showlegend=False,
        line={"color": rgba(color, 0.6), "width": 1.5},
        marker={
            "color": colors,
            "symbol": [
                BELOW_LOD_SYMBOL if low else MRD_SYMBOLS.get(s, "circle")
                for s, low in zip(statuses, below, strict=True)
            ],
            "size": 8,
            "line": {"color": colors, "width": 1.5},
        },
        text=hover,
        hovertemplate="%{text}<extra></extra>",
    )


def _below_lod_legend() -> go.Scatter:
    return go.Scatter(x=[None], y=[None], mode="markers", name="below LOD95 (drawn at it)",
                      marker={"symbol": BELOW_LOD_SYMBOL, "size": 9, "color": "#5F5F5F"})  # fmt: skip


def _add_lod_marks(fig: go.Figure, samples: pd.DataFrame) -> list[str]:
    """Grey dashes at the LOD95 of the samples drawn at their tumor fraction, per cohort."""
    tags: list[str] = []
    shown = samples[(samples["placed"] == PLACED[0]) & (samples["lod95"] > 0)]
    for cohort, rows in shown.groupby("cohort", sort=True):
        fig.add_trace(
            go.Scatter(
                x=rows["months"], y=rows["lod95"], mode="markers", name="LOD95 of the sample", legendgroup="lod",
                showlegend=not tags, text=rows["sample_id"], hovertemplate="%{text}: LOD95 %{y:.3g}<extra></extra>",
                marker={"symbol": "line-ew-open", "size": 12, "color": "#5F5F5F", "line": {"width": 2}},
            ),
            row=1, col=1,
        )  # fmt: skip
        tags.append(str(cohort))
    return tags


def _add_progression_band(fig: go.Figure, lanes: pd.DataFrame, cohorts: list[str]) -> list[str]:
    """Each progression as a \u00d7 in the band under the plot, on its cohort's line of the band."""
    symbol, color, size = EVENT_STYLE["progression"]
    tags: list[str] = []
    for cohort in cohorts:
        rows = lanes[lanes["cohort"].astype(str) == cohort]
        if rows.empty:
            continue
        fig.add_trace(
            go.Scatter(
                x=rows["progression"], y=[cohort] * len(rows), mode="markers", name="progression",
                legendgroup="progression", showlegend=not tags, text=rows["patient_id"],
                marker={"symbol": symbol, "size": size, "color": color, "line": {"width": 2, "color": color}},
                hovertemplate="%{text}: progression at %{x:.1f} months<extra></extra>",
            ),
            row=2, col=1,
        )  # fmt: skip
        tags.append(cohort)
    return tags


def _cohort_menu(tags: list[str], cohorts: list[str]) -> list[dict[str, Any]]:
    buttons = [{"label": "All cohorts", "method": "restyle", "args": [{"visible": [True] * len(tags)}]}]
    for cohort in cohorts:
        visible = [tag in ("", cohort) for tag in tags]
        buttons.append({"label": f"cohort {cohort}", "method": "restyle", "args": [{"visible": visible}]})
    return [button_menu(buttons)]


def _trajectory_layout(
    fig: go.Figure,
    samples: pd.DataFrame,
    floor: float | None,
    menus: list[dict[str, Any]],
    cohorts: list[str],
) -> None:
    values = pd.concat([samples["tf_plot"], samples["lod95"]])
    values = values[values > 0]
    top = float(values.max()) if len(values) else 1.0
    bottom = float(values.min()) if len(values) else 1e-6
    base_layout(fig, 560 + 24 * len(cohorts), updatemenus=menus, hovermode="closest")
    fig.update_layout(margin={"t": 125})
    if floor is not None:
        fig.add_hline(y=floor, line={"dash": "dot", "color": "#8C8C8C", "width": 1.5}, row=1, col=1)
        # Annotations on a log axis take log10 coordinates (shapes take data values).
        fig.add_annotation(text=f"TF 0 without a LOD95 drawn at {floor:g}", xref="x domain", x=1,
                           y=math.log10(floor), yref="y", xanchor="right", yanchor="top", showarrow=False,
                           font={"color": "#5F5F5F", "size": 11})  # fmt: skip
    fig.update_yaxes(
        type="log",
        title_text="Tumor fraction",
        exponentformat="power",
        dtick=1,  # a label per decade: minor-digit labels crowd a short log axis
        range=[math.log10(bottom) - 0.4, math.log10(max(top, bottom * 10)) + 0.3],
        row=1,
        col=1,
    )
    fig.update_yaxes(type="category", categoryorder="array", categoryarray=cohorts[::-1], showgrid=False,
                     title_text="progressed", title_font={"size": 12}, ticks="", row=2, col=1)  # fmt: skip
    fig.update_xaxes(showticklabels=False, row=1, col=1)  # the band below carries the month labels
    fig.update_xaxes(title_text="Months since enrollment", row=2, col=1)
