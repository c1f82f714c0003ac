"""The forest plot of the Cox models' hazard ratios, grouped by model and named in words.

Each model is a heading with its fits (per cohort, and pooled: stratified by cohort) under it. The axis is cut
to where the estimates are (a diverging fit's interval to exp(+-40) would squash the rest): an interval beyond it
ends in an arrow. A fit in which a compared group has fewer than CAUTION_PATIENTS patients carries a caution,
and a Firth-penalized fit says so.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from mrdtrack.report.context import ALL, Context, normalize_cohort, numeric_column, text_column
from mrdtrack.report.formatting import count_noun, fmt_number, p_text
from mrdtrack.report.models import (
    LANDMARK,
    cohort_text,
    is_stratified,
    model_label,
    plain_note,
    recorded_covariates,
    term_label,
)
from mrdtrack.report.recorded import setting
from mrdtrack.report.section import Section, Table
from mrdtrack.report.style import base_layout, reference_line
from mrdtrack.vocabulary import DETERMINATE_STATUSES, NEGATIVE, POSITIVE

CAUTION_PATIENTS = 5
INFINITY = "\u221e"
CAUTION = "\u26a0"
# The axis spans at least this (HR 1 in view, with room around it), and at most this: an interval or an
# estimate beyond it ends at the edge in a triangle (its value is in the column of estimates).
MIN_AXIS = (0.5, 2.0)
MAX_AXIS = (0.01, 100.0)
GROUP_NAMES = {POSITIVE: "MRD-positive", NEGATIVE: "MRD-negative", "ever": "ever MRD-positive",
               "never": "never MRD-positive"}  # fmt: skip


@dataclass
class ForestRow:
    """One hazard ratio on the plot."""

    heading: str  # the model's heading
    label: str  # the row under it: who, which term, the method
    hr: float
    low: float
    high: float
    hover: str
    caution: str  # '' or why the estimate rests on very few patients


def section_forest(ctx: Context) -> Section:
    """Hazard ratios (Cox models)"""
    section = Section("forest", "Hazard ratios for progression (Cox models)")
    cox = ctx.tables.cox
    problem = ctx.unavailable("cox", ["model", "hr"])
    if problem:
        section.message = f"Not estimable: {problem}"
        return section
    rows = cox.assign(hr_=numeric_column(cox, "hr"), lo_=numeric_column(cox, "hr_ci_low"),
                      hi_=numeric_column(cox, "hr_ci_high"), cohort_=text_column(cox, "cohort", ALL)
                      .map(normalize_cohort))  # fmt: skip
    ok = np.isfinite(rows["hr_"]) & (rows["hr_"] > 0)
    section.downloads["cox.tsv"] = cox
    skipped = _not_estimable_models(ctx, rows[~ok & ~_estimated_model(rows, ok)])
    section.blocks += _skipped_models_table(skipped, expanded=not ok.any())
    if not ok.any():
        section.message = f"Not estimable: none of the {count_noun(len(skipped), 'model')} gave a hazard ratio (reasons below)"
        return section
    forest = forest_rows(ctx, rows[ok])
    section.figure = forest_figure(forest)
    section.caption = _caption(forest, len(skipped))
    return section


def _caption(forest: Sequence[ForestRow], skipped: int) -> str:
    cautions = sum(bool(r.caution) for r in forest)
    return (
        "Hazard ratio of progression with its 95% CI, log scale (HR > 1: higher hazard), grouped by model. "
        "Baseline models compare the baseline MRD status; landmark models only patients still progression-free "
        "at the landmark, with time counted from it; time-varying models the status of the latest sample "
        "(counting process), avoiding immortal-time bias. Pooled models (all patients) are stratified by cohort "
        "where so labelled: each cohort keeps its own baseline hazard. An interval that ends in a triangle goes "
        "beyond the axis. Firth: Firth-penalized Cox, a finite estimate where the ordinary fit has none (no "
        "progression in one group)."
        + (f" {CAUTION} ({cautions}): a compared group has fewer than {CAUTION_PATIENTS} patients, so the "
           "estimate rests on very few." if cautions else "")
        + (f" {count_noun(skipped, 'model')} could not be estimated (listed below)." if skipped else "")
    )  # fmt: skip


# ---------------------------------------------------------------------------------------------------- the rows


def forest_rows(ctx: Context, rows: pd.DataFrame) -> list[ForestRow]:
    """The estimable cox.tsv rows as forest rows, grouped by model in the order the table lists them."""
    covariates = recorded_covariates(ctx)
    stratify = setting(ctx.tables.settings, "survival", "stratify_by_cohort") is not False
    order = {model: i for i, model in enumerate(dict.fromkeys(rows["model"]))}
    rows = rows.assign(order_=rows["model"].map(order)).sort_values("order_", kind="stable")
    terms_per_model = rows.groupby("model")["term"].nunique() if "term" in rows.columns else None
    out = []
    for row in rows.itertuples():
        model, cohort, term = str(row.model), row.cohort_, str(getattr(row, "term", "") or "")
        several_terms = terms_per_model is not None and terms_per_model[model] > 1
        heading = model_label(model, covariates) + ("" if several_terms else f": {term_label(term)}")
        stratified = is_stratified(ctx.tables.summary, model, cohort, stratify and len(ctx.cohorts()) > 1)
        label = cohort_text(cohort, stratified) + (f" \u00b7 {term_label(term)}" if several_terms else "")
        if str(getattr(row, "method", "")).lower() == "firth":
            label += " (Firth)"
        caution = _caution(group_sizes(ctx, model, cohort)) if term in _GROUP_TERMS else ""
        out.append(ForestRow(heading, label + (f" {CAUTION}" if caution else ""), row.hr_, row.lo_, row.hi_,
                             _hover(row, heading, label, caution), caution))  # fmt: skip
    return out


_GROUP_TERMS = ("mrd_positive", "ever_positive")


def _hover(row: object, heading: str, label: str, caution: str) -> str:
    p = getattr(row, "p_wald", np.nan)
    p = getattr(row, "p_lr", np.nan) if pd.isna(p) else p
    ph = getattr(row, "ph_p", np.nan)
    lines = [
        f"<b>{heading}</b>",
        f"{label}: HR {fmt_number(row.hr_, '.2f')} (95% CI {fmt_number(row.lo_, '.2f')}\u2013"  # type: ignore[attr-defined]
        f"{fmt_number(row.hi_, '.2f', 'not reached')})",  # type: ignore[attr-defined]
        f"n = {fmt_number(getattr(row, 'n', np.nan), '.0f')}, events = "
        f"{fmt_number(getattr(row, 'events', np.nan), '.0f')}, {p_text(_number(p))}",
    ]
    if not pd.isna(ph):
        lines.append(f"proportional-hazards test {p_text(_number(ph))}")
    if caution:
        lines.append(f"{CAUTION} {caution}")
    return "<br>".join(lines)


def _number(value: object) -> float | None:
    number = pd.to_numeric(value, errors="coerce")
    return None if pd.isna(number) else float(number)


def group_sizes(ctx: Context, model: str, cohort: str) -> dict[str, int]:
    """The patients in each group a model compares ({} when unknown or not a comparison of groups)."""
    key = model.removesuffix("_adjusted")
    landmark = LANDMARK.fullmatch(key)
    if key in ("baseline_unadjusted", "baseline"):
        patients = _in_cohort(ctx.patients, cohort)
        statuses = patients["baseline_status"].value_counts()
        return {GROUP_NAMES[s]: int(statuses.get(s, 0)) for s in (POSITIVE, NEGATIVE)}
    if landmark:
        return _landmark_sizes(ctx, float(landmark.group(1)), bool(landmark.group(2)), cohort)
    if key in ("time_varying_status", "time_varying_ever_positive"):
        samples = _in_cohort(ctx.samples, cohort)
        determinate = samples[samples["status"].isin(DETERMINATE_STATUSES)]
        ever = determinate.groupby("patient_id")["status"].agg(lambda s: (s == POSITIVE).any())
        return {GROUP_NAMES["ever"]: int(ever.sum()), GROUP_NAMES["never"]: int((~ever).sum())}
    return {}


def _in_cohort(frame: pd.DataFrame, cohort: str) -> pd.DataFrame:
    return frame if cohort == ALL or "cohort" not in frame.columns else frame[frame["cohort"] == cohort]


def _landmark_sizes(ctx: Context, months: float, closest: bool, cohort: str) -> dict[str, int]:
    summary = ctx.tables.landmark_km_summary
    if ctx.unavailable("landmark_km_summary", ["landmark_months", "status_rule", "cohort", "group", "n"]):
        return {}
    rule = "closest_within_window" if closest else "last_at_or_before"
    mine = summary[np.isclose(numeric_column(summary, "landmark_months"), months)
                   & (text_column(summary, "status_rule") == rule)
                   & (summary["cohort"].map(normalize_cohort) == cohort)]  # fmt: skip
    first = mine.drop_duplicates("group").set_index("group")["n"]
    return {GROUP_NAMES[s]: int(first[s]) for s in (POSITIVE, NEGATIVE) if s in first.index}


def _caution(sizes: dict[str, int]) -> str:
    small = {name: n for name, n in sizes.items() if n < CAUTION_PATIENTS}
    if not small:
        return ""
    name, n = min(small.items(), key=lambda item: item[1])
    who = f"no {name} patient" if n == 0 else f"only {count_noun(n, name + ' patient')}"
    return f"{who}: the estimate rests on very few"


def _estimated_model(rows: pd.DataFrame, ok: pd.Series) -> pd.Series:
    """Rows of a (model, cohort) fit that gave some hazard ratio (an adjusted model's covariate rows)."""
    keys = text_column(rows, "model") + "\t" + rows["cohort_"]
    return keys.isin(set(keys[ok]))


def _not_estimable_models(ctx: Context, rows: pd.DataFrame) -> pd.DataFrame:
    """One row per model and cohort that gave no hazard ratio, with the reason in words."""
    covariates = recorded_covariates(ctx)
    notes = text_column(rows, "note", "no estimate").replace("", "no estimate")
    table = pd.DataFrame({
        "model": [model_label(m, covariates) for m in text_column(rows, "model")],
        "patients": [cohort_text(c, False) for c in rows["cohort_"]],
        "why not": [plain_note(n, covariates) for n in notes],
    })  # fmt: skip
    return table.drop_duplicates(["model", "patients"]).reset_index(drop=True)


def _skipped_models_table(skipped: pd.DataFrame, expanded: bool) -> list[Table]:
    """The models that gave no hazard ratio, folded away unless no model gave one."""
    if skipped.empty:
        return []
    rows = [list(map(str, row)) for row in skipped.itertuples(index=False)]
    table = Table(rows, list(skipped.columns), "data")
    table.folded, table.open = f"{count_noun(len(skipped), 'model')} not estimable", expanded
    return [table]


# ---------------------------------------------------------------------------------------------------- the figure


def axis_range(forest: Sequence[ForestRow]) -> tuple[float, float]:
    """The hazard-ratio axis: every estimate and interval, at least MIN_AXIS, at most MAX_AXIS."""
    hrs = [r.hr for r in forest]
    lows = [r.low for r in forest if np.isfinite(r.low) and r.low > 0] + hrs
    highs = [r.high for r in forest if np.isfinite(r.high)] + hrs
    low = max(min(min(lows) / 1.2, MIN_AXIS[0]), MAX_AXIS[0])
    high = min(max(max(highs) * 1.2, MIN_AXIS[1]), MAX_AXIS[1])
    return low, high


def hr_ticks(low: float, high: float) -> list[float]:
    """Powers of ten between `low` and `high`, with 2 and 5 times them on a short axis (plotly would label
    every digit of a log axis)."""
    decades = range(math.floor(math.log10(low)), math.ceil(math.log10(high)) + 1)
    steps = (1, 2, 5) if math.log10(high / low) <= 2.5 else (1, 3) if math.log10(high / low) <= 3.5 else (1,)
    return [m * 10.0**e for e in decades for m in steps if low <= m * 10.0**e <= high * (1 + 1e-9)]


def forest_figure(forest: Sequence[ForestRow]) -> go.Figure:
    """Headings and rows on a numeric y axis (top down), the estimates' text in a column at the right."""
    positions, ticks = _layout_rows(forest)
    low, high = axis_range(forest)
    fig = go.Figure()
    _add_intervals(fig, forest, positions, low, high)
    _add_estimates(fig, forest, positions, low, high)
    for row, y in zip(forest, positions, strict=True):
        fig.add_annotation(text=_estimate_text(row), x=1, xref="paper", xanchor="left", xshift=10, y=y,
                           yref="y", showarrow=False, font={"size": 12})  # fmt: skip
    # An invisible trace on the top axis: plotly draws an axis only where a trace lives.
    fig.add_trace(go.Scatter(x=[1], y=[positions[0]], xaxis="x2", mode="markers", marker={"opacity": 0},
                             hoverinfo="skip", showlegend=False))  # fmt: skip
    reference_line(fig, "x", 1)
    height = 26 * len(ticks) + 150
    base_layout(fig, height, margin={"l": 20, "r": 150, "t": 70, "b": 60}, hovermode="closest")
    ticks_x = hr_ticks(low, high)
    axis = {"type": "log", "range": [math.log10(low), math.log10(high)], "ticks": "outside", "tickvals": ticks_x,
            "ticktext": [f"{t:g}" for t in ticks_x], "showline": True}  # fmt: skip
    fig.update_layout(
        xaxis={**axis, "title": {"text": "Hazard ratio (95% CI), log scale"}},
        # The same axis again at the top, so a long plot is readable at either end.
        xaxis2={**axis, "overlaying": "x", "side": "top"},
        yaxis={"tickvals": [t for t, _ in ticks], "ticktext": [text for _, text in ticks], "showgrid": False,
               "range": [min(positions) - 0.8, 0.6], "automargin": True, "zeroline": False, "ticks": ""},
    )  # fmt: skip
    fig.add_annotation(text="<b>HR (95% CI)</b>", x=1, xref="paper", xanchor="left", xshift=10, y=0.6, yref="y",
                       yanchor="bottom", showarrow=False, font={"size": 12})  # fmt: skip
    return fig


def _layout_rows(forest: Sequence[ForestRow]) -> tuple[list[float], list[tuple[float, str]]]:
    """y of each row (top down: 0, -1, ...), the tick labels with a bold heading above each model's rows."""
    positions, ticks = [], []
    y = 0.0
    heading = None
    for row in forest:
        if row.heading != heading:
            heading = row.heading
            ticks.append((y, f"<b>{heading}</b>"))
            y -= 1
        ticks.append((y, "\u00a0\u00a0\u00a0" + row.label))
        positions.append(y)
        y -= 1
    return positions, ticks


def _estimate_text(row: ForestRow) -> str:
    """'3.40 (1.20\u20139.60)'; an interval without an upper end (a Firth profile that never closes) ends in \u221e."""
    return f"{hr_text(row.hr)} ({hr_text(row.low)}\u2013{hr_text(row.high, INFINITY)})"


def hr_text(value: float, missing: str = "\u2013") -> str:
    """A hazard ratio to about three significant digits: 0.68, 9.93, 62.2, 1439."""
    if not np.isfinite(value):
        return missing
    return fmt_number(value, ".2f" if value < 10 else ".1f" if value < 100 else ",.0f")


def _add_intervals(fig: go.Figure, forest: Sequence[ForestRow], positions: list[float], low: float,
                   high: float) -> None:  # fmt: skip
    """The intervals, cut at the axis ends; a cut end is a triangle pointing on."""
    seg_x: list[float | None] = []
    seg_y: list[float | None] = []
    arrows: dict[str, tuple[list[float], list[float]]] = {"left": ([], []), "right": ([], [])}
    for row, y in zip(forest, positions, strict=True):
        start = row.low if np.isfinite(row.low) and row.low > 0 else 0.0
        end = row.high if np.isfinite(row.high) else math.inf
        seg_x += [max(start, low), min(end, high), None]
        seg_y += [y, y, None]
        for side, beyond, edge in (("left", start < low, low), ("right", end > high, high)):
            if beyond:
                arrows[side][0].append(edge)
                arrows[side][1].append(y)
    fig.add_trace(go.Scatter(x=seg_x, y=seg_y, mode="lines", line={"color": "#333333", "width": 2},
                             hoverinfo="skip", showlegend=False, cliponaxis=False))  # fmt: skip
    for side, (xs, ys) in arrows.items():
        if xs:
            fig.add_trace(go.Scatter(x=xs, y=ys, mode="markers", name=f"interval beyond the axis ({side})",
                                     marker={"symbol": f"triangle-{side}", "size": 11, "color": "#333333"},
                                     hoverinfo="skip", showlegend=False, cliponaxis=False))  # fmt: skip


def _add_estimates(fig: go.Figure, forest: Sequence[ForestRow], positions: list[float], low: float,
                   high: float) -> None:  # fmt: skip
    """Squares; a fit with a caution an open square, so it reads as less certain in grey-scale too; an estimate
    beyond the axis a triangle at its edge."""
    symbols = [
        "triangle-right" if r.hr > high else "triangle-left" if r.hr < low else "square-open" if r.caution
        else "square"
        for r in forest
    ]  # fmt: skip
    fig.add_trace(
        go.Scatter(
            x=[min(max(r.hr, low), high) for r in forest], y=positions, mode="markers", showlegend=False,
            cliponaxis=False, text=[r.hover for r in forest], hovertemplate="%{text}<extra></extra>",
            marker={"symbol": symbols, "size": 10, "color": ["#8C8C8C" if r.caution else "#000000" for r in forest],
                    "line": {"width": 2}},
        )
    )  # fmt: skip
