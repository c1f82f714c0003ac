"""Landmark Kaplan-Meier curves: PFS from each landmark among the patients still progression-free then, by the
MRD status of their last sample at or before it (no look-ahead), all patients or one cohort at a time."""

from __future__ import annotations

from collections.abc import Mapping
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
    text_column,
)
from mrdtrack.report.formatting import fmt_number, p_text
from mrdtrack.report.section import Section
from mrdtrack.report.style import MRD_SHORT, base_layout, button_menu, rgba, status_color, status_label
from mrdtrack.report.survival import km_band_outline, km_hover_data
from mrdtrack.vocabulary import NEGATIVE, POSITIVE

PRIMARY_RULE = "last_at_or_before"
STATUSES = (NEGATIVE, POSITIVE)


def section_landmark_km(ctx: Context) -> Section:
    """Landmark Kaplan-Meier curves"""
    section = Section("landmark_km", "PFS from each landmark by the MRD status then")
    problem = ctx.unavailable(
        "landmark_km_curves", ["landmark_months", "cohort", "group", "time", "survival"]
    )
    curves = _primary_curves(ctx.tables.landmark_km_curves) if not problem else pd.DataFrame()
    if curves.empty:
        section.message = (
            f"Not estimable: {problem or 'no patient had a positive or negative status at a landmark'}"
        )
        return section
    landmarks = sorted(curves["landmark_months"].unique())
    cohorts = [ALL, *(c for c in ctx.cohorts() if c in set(curves["cohort"]))]
    section.figure = _landmark_figure(ctx, curves, landmarks, cohorts)
    section.caption = (
        "Kaplan-Meier PFS counted from each landmark, among the patients still progression-free at it, by the MRD "
        "status of their last sample at or before the landmark (no look-ahead: a later sample would be "
        "information from the future); patients without a known status then are left out. Shaded bands: "
        "pointwise 95% CI. Panel titles: the patients in each group and the log-rank test (all patients). The "
        "buttons show one cohort. The Cox models of the same data are in the hazard-ratio plot."
    )
    section.downloads["landmark_km_curves.tsv"] = ctx.tables.landmark_km_curves
    return section


def _primary_curves(curves: pd.DataFrame) -> pd.DataFrame:
    rule = text_column(curves, "status_rule", PRIMARY_RULE)
    rows = curves[rule == PRIMARY_RULE].assign(
        cohort=lambda f: f["cohort"].map(normalize_cohort), status=lambda f: f["group"].map(normalize_status)
    )
    for column in ("landmark_months", "time", "survival", "ci_low", "ci_high", "at_risk", "events"):
        rows[column] = numeric_column(rows, column)
    return rows[rows["status"].isin(STATUSES)].sort_values(["landmark_months", "status", "time"])


def _landmark_figure(
    ctx: Context, curves: pd.DataFrame, landmarks: list[float], cohorts: list[str]
) -> go.Figure:
    titles = [_panel_title(ctx.tables.summary, curves[curves["cohort"] == ALL], m) for m in landmarks]
    fig = make_subplots(rows=1, cols=len(landmarks), shared_yaxes=True, subplot_titles=titles,
                        horizontal_spacing=0.04)  # fmt: skip
    tags: list[str] = []
    for cohort in cohorts:
        for col, months in enumerate(landmarks, start=1):
            rows = curves[(curves["cohort"] == cohort) & (curves["landmark_months"] == months)]
            for status in STATUSES:
                curve = rows[rows["status"] == status]
                if curve.empty:
                    continue
                _add_curve(fig, curve, status, col, visible=cohort == ALL)
                tags += [cohort, cohort]  # the band and the curve
    buttons = [{"label": "All patients" if c == ALL else f"cohort {c}", "method": "restyle",
                "args": [{"visible": [t == c for t in tags]}]} for c in cohorts]  # fmt: skip
    # The buttons sit above the panel titles (two lines each), below the legend.
    height, top, bottom = 460, 150, 60
    menus = [button_menu(buttons) | {"y": 1 + 48 / (height - top - bottom)}]  # paper units of the plot area
    base_layout(fig, height, hovermode="closest", updatemenus=menus if len(cohorts) > 1 else [])
    fig.update_layout(margin={"t": top, "b": bottom})
    fig.update_yaxes(range=[0, 1.04], tickformat=".0%")
    fig.update_yaxes(title_text="Progression-free", row=1, col=1)
    fig.update_xaxes(title_text="Months since the landmark", rangemode="tozero")
    fig.update_annotations(font={"size": 13})  # the panel titles
    return fig


def _panel_title(summary: Mapping[str, Any], pooled: pd.DataFrame, months: float) -> str:
    at_start = pooled[(pooled["landmark_months"] == months)].sort_values("time").drop_duplicates("status")
    counts = ", ".join(
        f"{fmt_number(n, '.0f')} {MRD_SHORT[s]}"
        for s, n in zip(at_start["status"], at_start["at_risk"], strict=True)
    )
    test = f"<br>{p_text(p, 'log-rank p')}" if (p := _logrank_p(summary, months)) is not None else ""
    return f"{months:g}-month landmark: {counts}{test}"


def _logrank_p(summary: Mapping[str, Any], months: float) -> float | None:
    landmarks = summary.get("landmarks")
    entry = landmarks.get(f"{months:g}") if isinstance(landmarks, Mapping) else None
    test = entry.get("logrank") if isinstance(entry, Mapping) else None
    value = pd.to_numeric(test.get("p"), errors="coerce") if isinstance(test, Mapping) else np.nan
    return None if pd.isna(value) else float(value)


def _add_curve(fig: go.Figure, curve: pd.DataFrame, status: str, col: int, visible: bool) -> None:
    """The band and the curve of one group (the legend names the groups once, from the first panel)."""
    color, label = status_color(status), status_label(status)
    x, y = km_band_outline(curve["time"], curve["survival"], curve["ci_low"], curve["ci_high"])
    fig.add_trace(go.Scatter(x=x, y=y, mode="lines", fill="toself", fillcolor=rgba(color, 0.14), line={"width": 0},
                             legendgroup=status, showlegend=False, hoverinfo="skip", visible=visible),
                  row=1, col=col)  # fmt: skip
    fig.add_trace(
        go.Scatter(x=curve["time"], y=curve["survival"], mode="lines", name=f"{label} at the landmark",
                   legendgroup=status, showlegend=col == 1, visible=visible,
                   line={"color": color, "width": 2.5, "shape": "hv"}, customdata=km_hover_data(curve),
                   hovertemplate=f"{label} at the landmark<br>%{{x:.1f}} months on: PFS %{{y:.0%}}<br>"
                   "%{customdata[0]} at risk, %{customdata[1]} progression events so far<extra></extra>"),
        row=1, col=col,
    )  # fmt: skip
