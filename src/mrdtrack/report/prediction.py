"""Predicting progression within the horizon from baseline features: each model's cross-validated AUC with its
CI, next to chance (0.5)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd
import plotly.graph_objects as go

from mrdtrack.report.context import Context, numeric_column
from mrdtrack.report.formatting import fmt_number
from mrdtrack.report.models import plain_note
from mrdtrack.report.section import Note, Section
from mrdtrack.report.style import base_layout, reference_line

FEATURE_NAMES = {
    "baseline_mrd_positive": "baseline MRD status",
    "baseline_log10_tf": "baseline tumor fraction",
}


def section_prediction(ctx: Context) -> Section:
    """Prediction of progression"""
    horizon = _horizon(ctx.tables.summary)
    section = Section("prediction", f"Predicting progression within {horizon:g} months: cross-validated AUC")
    table = ctx.tables.prediction
    problem = ctx.unavailable("prediction", ["model", "features", "auc"])
    if problem:
        section.message = f"Not estimable: {problem}"
        return section
    section.downloads["prediction.tsv"] = table
    fitted = table[numeric_column(table, "auc").notna()]
    unfitted = table[numeric_column(table, "auc").isna()]
    section.blocks += [Note(f"{features_label(r.features)}: {plain_note(str(r.note) or 'no model fitted')}.")
                       for r in unfitted.itertuples()]  # fmt: skip
    if fitted.empty:
        section.message = "Not estimable: no model was fitted (reasons below)"
        return section
    section.figure = _auc_figure(fitted)
    first = fitted.iloc[0]
    section.caption = (
        f"Area under the ROC curve (AUC) of progression within {horizon:g} months, predicted from baseline "
        "features by penalized logistic regression. Every prediction is out-of-fold: "
        f"{fmt_number(first.get('n_repeats'), '.0f')} repeats of {fmt_number(first.get('n_splits'), '.0f')}-fold "
        "stratified cross-validation, the AUC the mean over repeats; the interval is a bootstrap CI over "
        "patients, the thin bar the range of the repeats' AUCs. Dashed line: chance (0.5). Patients censored "
        "before the horizon without progression are not evaluable and left out (hover for the counts)."
    )
    return section


def _horizon(summary: Mapping[str, Any]) -> float:
    prediction = summary.get("prediction")
    value = prediction.get("horizon_months") if isinstance(prediction, Mapping) else None
    number = pd.to_numeric(value, errors="coerce")
    return 12.0 if pd.isna(number) else float(number)


def features_label(features: object) -> str:
    """'baseline_mrd_positive,baseline_log10_tf,age' -> 'baseline MRD status + baseline tumor fraction + age'
    (a covariate keeps the clinical sheet's name)."""
    names = [f.strip() for f in str(features).split(",") if f.strip()]
    return " + ".join(FEATURE_NAMES.get(n, n) for n in names) or "no feature"


def _auc_figure(fitted: pd.DataFrame) -> go.Figure:
    labels = [features_label(f) for f in fitted["features"]]
    auc, low, high = (numeric_column(fitted, c) for c in ("auc", "auc_ci_low", "auc_ci_high"))
    fig = go.Figure()
    fig.add_trace(go.Scatter(
        x=numeric_column(fitted, "auc_repeat_min").tolist(), y=labels, mode="markers", showlegend=False,
        marker={"size": 0.1, "color": "#8C8C8C"}, hoverinfo="skip",
        error_x={"type": "data", "symmetric": False, "thickness": 6, "width": 0, "color": "#BDBDBD",
                 "array": (numeric_column(fitted, "auc_repeat_max") - numeric_column(fitted, "auc_repeat_min")).tolist(),
                 "arrayminus": [0] * len(fitted)},
    ))  # fmt: skip
    fig.add_trace(go.Scatter(
        x=auc, y=labels, mode="markers+text", showlegend=False, hovertext=[_hover(r) for r in fitted.itertuples()],
        text=[f"AUC {fmt_number(a, '.2f')}" for a in auc], textposition="top center",
        hovertemplate="%{hovertext}<extra></extra>", marker={"symbol": "square", "size": 11, "color": "#000000"},
        error_x={"type": "data", "symmetric": False, "array": (high - auc).tolist(),
                 "arrayminus": (auc - low).tolist(), "color": "#000000", "thickness": 2, "width": 6},
    ))  # fmt: skip
    reference_line(fig, "x", 0.5)
    base_layout(fig, 130 + 55 * len(fitted), margin={"l": 20, "r": 30, "t": 50, "b": 60}, hovermode="closest")
    fig.update_xaxes(range=[0.3, 1.0], title_text="AUC (95% CI), out-of-fold", dtick=0.1)
    # The range leaves room above the top row for its AUC label.
    fig.update_yaxes(type="category", categoryorder="array", categoryarray=labels[::-1], automargin=True,
                     range=[-0.6, len(labels) - 0.25])  # fmt: skip
    return fig


def _hover(row: Any) -> str:
    return (
        f"<b>{features_label(row.features)}</b><br>AUC {fmt_number(row.auc, '.2f')} (95% CI "
        f"{fmt_number(row.auc_ci_low, '.2f')}\u2013{fmt_number(row.auc_ci_high, '.2f')}); repeats "
        f"{fmt_number(row.auc_repeat_min, '.2f')}\u2013{fmt_number(row.auc_repeat_max, '.2f')}<br>"
        f"Brier score {fmt_number(row.brier, '.3f')}<br>{fmt_number(row.n, '.0f')} patients, "
        f"{fmt_number(row.n_events, '.0f')} progressed by the horizon; {fmt_number(row.n_not_evaluable, '.0f')} "
        "not evaluable"
    )
