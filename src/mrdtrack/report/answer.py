"""The report's first screen: who may safely stop anti-HER2 therapy, by the MRD status of the baseline sample.

Per cohort (and all cohorts pooled): 1-year PFS of the MRD-negative and MRD-positive patients (Kaplan-Meier with
its CI, and the share progression-free among the patients evaluable at 1 year, with an exact CI), the negative
predictive value of a negative baseline test for staying progression-free for a year with the counts behind it,
and the Kaplan-Meier curves with the 1-year mark. The numbers are results/survival/safe_to_stop.tsv and
safe_to_stop_accuracy.tsv as the survival step wrote them; without them the 1-year PFS comes from the
Kaplan-Meier summary and the rest is "not computed".
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from mrdtrack.report.context import ALL, Context, normalize_cohort, numeric_column, text_column
from mrdtrack.report.formatting import count_noun, fmt_number, fmt_percent, percent_ci
from mrdtrack.report.recorded import setting
from mrdtrack.report.section import Block, Cell, Note, Section, Table, data_table
from mrdtrack.report.style import MRD_SHORT, base_layout, rgba, status_color, status_label
from mrdtrack.report.survival import km_band_outline, km_curve_rows, km_hover_data
from mrdtrack.tables import exact_text
from mrdtrack.vocabulary import NEGATIVE, POSITIVE

HORIZON_MONTHS = 12.0
BASELINE = "baseline"
# Who may stop first: the MRD-negative patients' figures lead.
STATUSES = (NEGATIVE, POSITIVE)
PFS_COLUMNS = ("n", "evaluable", "progressed_1y", "not_evaluable", "km_pfs_1y", "km_ci_low", "km_ci_high",
               "rate_pfs_1y", "rate_ci_low", "rate_ci_high")  # fmt: skip
ACCURACY_MEASURES = ("sensitivity", "specificity", "ppv", "npv")
NOT_COMPUTED = "not computed"


def section_answer(ctx: Context) -> Section:
    """Who may safely stop"""
    section = Section("answer", "Who may safely stop: 1-year PFS by baseline MRD status")
    pfs = one_year_pfs(ctx, BASELINE)
    if pfs.empty:
        section.message = f"Not estimable: {_why_nothing(ctx)}"
        return section
    accuracy = accuracy_rows(ctx, BASELINE)
    cohorts = [c for c in [*ctx.cohorts(), ALL] if c in set(pfs["cohort"])]
    level = _ci_level(ctx)
    section.above.append(_answer_table(pfs, accuracy, cohorts, level))
    if _source(ctx) != "safe_to_stop":
        section.above.append(Note(_fallback_note(ctx)))
    section.figure = _answer_figure(ctx, pfs, cohorts, level)
    section.caption = _caption(level, landmarks=bool(_landmark_timepoints(ctx)))
    section.blocks += _detail_tables(ctx)
    section.downloads |= _downloads(ctx)
    return section


# ---------------------------------------------------------------------------------------------------- the numbers


def _source(ctx: Context) -> str:
    """Where the 1-year PFS comes from: the survival step's safe-to-stop table, else the Kaplan-Meier summary."""
    return (
        "safe_to_stop" if not ctx.unavailable("safe_to_stop", ["cohort", "timepoint", "mrd_status"]) else "km"
    )


def one_year_pfs(ctx: Context, timepoint: str) -> pd.DataFrame:
    """One row per cohort and MRD status (positive / negative) at `timepoint`, with the columns of
    safe_to_stop.tsv (`cohort` normalized: the pooled cohort is 'all'); without that table, the Kaplan-Meier
    summary's 12-month values, the other columns missing."""
    if _source(ctx) == "safe_to_stop":
        table = ctx.tables.safe_to_stop
        rows = table[text_column(table, "timepoint") == timepoint]
        out = pd.DataFrame({"cohort": rows["cohort"].map(normalize_cohort),
                            "mrd_status": text_column(rows, "mrd_status").str.lower()})  # fmt: skip
        for column in PFS_COLUMNS:
            out[column] = numeric_column(rows, column)
        # A group without patients has no estimate, whatever the table holds: the page says "no patients".
        return out[out["mrd_status"].isin(STATUSES) & (out["n"] > 0)].reset_index(drop=True)
    return _pfs_from_km_summary(ctx) if timepoint == BASELINE else pd.DataFrame()


def _pfs_from_km_summary(ctx: Context) -> pd.DataFrame:
    summary = ctx.tables.km_summary
    if ctx.unavailable("km_summary", ["cohort", "group", "timepoint_months", "survival"]):
        return pd.DataFrame()
    at_horizon = summary[np.isclose(numeric_column(summary, "timepoint_months"), HORIZON_MONTHS)]
    suffix = "log" if _curve_ci(ctx) == "log" else "loglog"
    out = pd.DataFrame({"cohort": at_horizon["cohort"].map(normalize_cohort),
                        "mrd_status": text_column(at_horizon, "group").str.lower()})  # fmt: skip
    for column in PFS_COLUMNS:
        out[column] = np.nan
    out["n"] = numeric_column(at_horizon, "n")
    out["km_pfs_1y"] = numeric_column(at_horizon, "survival")
    out["km_ci_low"] = numeric_column(at_horizon, f"ci_low_{suffix}")
    out["km_ci_high"] = numeric_column(at_horizon, f"ci_high_{suffix}")
    keep = out["mrd_status"].isin(STATUSES) & (out["n"] > 0)
    return out[keep].drop_duplicates(["cohort", "mrd_status"]).reset_index(drop=True)


def accuracy_rows(ctx: Context, timepoint: str) -> pd.DataFrame:
    """safe_to_stop_accuracy.tsv's rows at `timepoint` (cohort normalized), or no rows when not computed."""
    table = ctx.tables.safe_to_stop_accuracy
    if ctx.unavailable("safe_to_stop_accuracy", ["cohort", "timepoint", "npv"]):
        return pd.DataFrame(columns=["cohort"])
    rows = table[text_column(table, "timepoint") == timepoint]
    return rows.assign(cohort=rows["cohort"].map(normalize_cohort)).reset_index(drop=True)


def _curve_ci(ctx: Context) -> str:
    return str(setting(ctx.tables.settings, "survival", "curve_ci") or "log-log")


def _ci_level(ctx: Context) -> str:
    level = setting(ctx.tables.settings, "survival", "conf_level")
    return f"{fmt_number(100 * float(level), '.0f')}% CI" if isinstance(level, int | float) else "95% CI"


def _why_nothing(ctx: Context) -> str:
    problem = ctx.unavailable("km_summary", ["cohort", "group", "timepoint_months", "survival"])
    return "no 1-year PFS by baseline MRD status was computed" + (
        f" ({problem})" if problem else " (no patient with a positive or negative baseline sample)"
    )


def _fallback_note(ctx: Context) -> str:
    problem = ctx.tables.problems.get("safe_to_stop")
    why = f"safe_to_stop.tsv {problem}" if problem else "this run's survival step wrote no safe_to_stop.tsv"
    return (
        f"1-year PFS from the Kaplan-Meier summary ({why}); the share progression-free among evaluable patients "
        f"and the NPV are {NOT_COMPUTED}."
    )


# ---------------------------------------------------------------------------------------------------- the table


def _answer_table(pfs: pd.DataFrame, accuracy: pd.DataFrame, cohorts: Sequence[str], level: str) -> Table:
    header = ["Cohort", "MRD-negative at baseline: 1-year PFS", "MRD-positive at baseline: 1-year PFS",
              "NPV of a negative baseline test"]  # fmt: skip
    rows: list[list[str | Cell]] = []
    for cohort in cohorts:
        mine = pfs[pfs["cohort"] == cohort].set_index("mrd_status")
        cells: list[str | Cell] = [cohort_label(cohort)]
        for status in STATUSES:
            cells.append(_pfs_cell(mine.loc[status], cohort, status, level) if status in mine.index else
                         Cell("no patients", attrs={"data-cohort": cohort, "data-status": status}))  # fmt: skip
        npv = accuracy[accuracy["cohort"] == cohort]
        cells.append(_npv_cell(npv.iloc[0], cohort, level) if len(npv) else Cell(NOT_COMPUTED))
        rows.append(cells)
    return Table(rows, header, "answer")


def cohort_label(cohort: str) -> str:
    return "All cohorts (pooled)" if cohort == ALL else f"Cohort {cohort}"


def _pfs_cell(row: pd.Series, cohort: str, status: str, level: str) -> Cell:
    detail = f"n = {fmt_number(row['n'], '.0f')}"
    if pd.notna(row["evaluable"]):
        free = row["evaluable"] - row["progressed_1y"]
        rate = percent_ci(row["rate_pfs_1y"], row["rate_ci_low"], row["rate_ci_high"], "exact CI")
        detail += (
            f" \u00b7 {fmt_number(free, '.0f')} of {fmt_number(row['evaluable'], '.0f')} evaluable at 1 year "
            f"progression-free: {rate}"
        )
    attrs = {"data-cohort": cohort, "data-status": status, "data-n": fmt_number(row["n"], ".0f", ""),
             "data-value": _exact(row["km_pfs_1y"])}  # fmt: skip
    return Cell(percent_ci(row["km_pfs_1y"], row["km_ci_low"], row["km_ci_high"], level), detail, attrs)


def _npv_cell(row: pd.Series, cohort: str, level: str) -> Cell:
    negatives = numeric_column(row.to_frame().T, "true_negative").iloc[0]
    missed = numeric_column(row.to_frame().T, "false_negative").iloc[0]
    detail = (
        f"{fmt_number(negatives, '.0f')} of {fmt_number(negatives + missed, '.0f')} evaluable MRD-negative patients "
        "progression-free at 1 year"
    )
    not_evaluable = pd.to_numeric(row.get("not_evaluable"), errors="coerce")
    if pd.notna(not_evaluable) and not_evaluable > 0:
        detail += f" \u00b7 {fmt_number(not_evaluable, '.0f')} not evaluable (censored before 1 year)"
    exact = level.replace("CI", "exact CI")
    attrs = {"data-cohort": cohort, "data-status": "npv", "data-value": _exact(row.get("npv"))}
    return Cell(
        percent_ci(row.get("npv"), row.get("npv_ci_low"), row.get("npv_ci_high"), exact), detail, attrs
    )


def _exact(value: object) -> str:
    """The value as the table wrote it (the browser tests compare it with the table)."""
    number = pd.to_numeric(value, errors="coerce")
    return "" if pd.isna(number) else exact_text(float(number))


def _detail_tables(ctx: Context) -> list[Block]:
    """Folded away under the figure: the landmarks' 1-year PFS, and the accuracy of MRD-positivity."""
    blocks: list[Block] = []
    landmarks = _landmark_timepoints(ctx)
    if landmarks:
        table = pd.concat([_pfs_detail(ctx, t) for t in landmarks], ignore_index=True)
        blocks.append(_folded(data_table(table, len(table)), "1-year PFS by MRD status at each landmark"))
    accuracy = ctx.tables.safe_to_stop_accuracy
    if not ctx.unavailable("safe_to_stop_accuracy", ["cohort", "timepoint", *ACCURACY_MEASURES]):
        table = _accuracy_detail(accuracy)
        title = "Sensitivity, specificity, PPV and NPV of MRD-positivity for progression within 1 year"
        blocks.append(_folded(data_table(table, len(table)), title))
    return blocks


def _folded(table: Table, summary: str) -> Table:
    table.folded = summary
    return table


def _landmark_timepoints(ctx: Context) -> list[str]:
    if _source(ctx) != "safe_to_stop":
        return []
    timepoints = text_column(ctx.tables.safe_to_stop, "timepoint")
    return [t for t in dict.fromkeys(timepoints) if t != BASELINE and t]


def timepoint_label(timepoint: str) -> str:
    """'baseline', 'landmark_3m' -> 'at 3 months (landmark)'."""
    if timepoint.startswith("landmark_") and timepoint.endswith("m"):
        return f"at {timepoint.removeprefix('landmark_').removesuffix('m')} months (landmark)"
    return timepoint.replace("_", " ")


def _pfs_detail(ctx: Context, timepoint: str) -> pd.DataFrame:
    rows = one_year_pfs(ctx, timepoint)
    level = _ci_level(ctx)
    return pd.DataFrame({
        "MRD status": [f"{status_label(s)} {timepoint_label(timepoint)}" for s in rows["mrd_status"]],
        "cohort": rows["cohort"],
        "n": rows["n"].map(lambda v: fmt_number(v, ".0f")),
        f"1-year PFS, Kaplan-Meier ({level})": [percent_ci(*r) for r in
                                                 rows[["km_pfs_1y", "km_ci_low", "km_ci_high"]].to_numpy()],
        "progression-free of evaluable (exact CI)": [
            f"{fmt_number(e - p, '.0f')} of {fmt_number(e, '.0f')}: {percent_ci(r, lo, hi, 'exact CI')}"
            for e, p, r, lo, hi in rows[["evaluable", "progressed_1y", "rate_pfs_1y", "rate_ci_low",
                                         "rate_ci_high"]].to_numpy()],
        "not evaluable": rows["not_evaluable"].map(lambda v: fmt_number(v, ".0f")),
    })  # fmt: skip


def _accuracy_detail(accuracy: pd.DataFrame) -> pd.DataFrame:
    out = pd.DataFrame({
        "MRD status": text_column(accuracy, "timepoint").map(timepoint_label),
        "cohort": accuracy["cohort"].map(normalize_cohort),
        "TP / FP / TN / FN": [" / ".join(fmt_number(v, ".0f") for v in row) for row in
                              accuracy[["true_positive", "false_positive", "true_negative", "false_negative"]]
                              .apply(pd.to_numeric, errors="coerce").to_numpy()],
        "not evaluable": numeric_column(accuracy, "not_evaluable").map(lambda v: fmt_number(v, ".0f")),
    })  # fmt: skip
    names = {"sensitivity": "sensitivity", "specificity": "specificity", "ppv": "PPV", "npv": "NPV"}
    for measure, name in names.items():
        values = [numeric_column(accuracy, f"{measure}{suffix}") for suffix in ("", "_ci_low", "_ci_high")]
        out[f"{name} (exact CI)"] = [percent_ci(e, lo, hi, "") for e, lo, hi in zip(*values, strict=True)]
    return out


def _downloads(ctx: Context) -> dict[str, pd.DataFrame]:
    names = {"safe_to_stop": "safe_to_stop.tsv", "safe_to_stop_accuracy": "safe_to_stop_accuracy.tsv"}
    return {
        file: ctx.tables.frames[name] for name, file in names.items() if not ctx.tables.frames[name].empty
    }


# ---------------------------------------------------------------------------------------------------- the figure


def _answer_figure(ctx: Context, pfs: pd.DataFrame, cohorts: Sequence[str], level: str) -> go.Figure:
    """One panel per cohort: the baseline MRD groups' Kaplan-Meier curves, the 1-year mark and its estimate."""
    titles = [_panel_title(pfs[pfs["cohort"] == c], c) for c in cohorts]
    fig = make_subplots(rows=1, cols=len(cohorts), shared_yaxes=True, subplot_titles=titles,
                        horizontal_spacing=0.035)  # fmt: skip
    curves = ctx.tables.km_curves
    in_legend: set[str] = set()
    for col, cohort in enumerate(cohorts, start=1):
        rows = km_curve_rows(curves, cohort)
        for status in STATUSES:
            curve = rows[rows["status"] == status]
            one_year = pfs[(pfs["cohort"] == cohort) & (pfs["mrd_status"] == status)]
            if len(curve) and len(one_year):
                _add_curve(fig, curve, status, col, first=status not in in_legend)
                in_legend.add(status)
            if len(one_year):
                _add_one_year_mark(fig, one_year.iloc[0], curve, status, cohort, col, level)
        fig.add_vline(x=HORIZON_MONTHS, line={"dash": "dot", "color": "#5F5F5F", "width": 1}, row=1, col=col)
    base_layout(fig, 380, hovermode="closest", margin={"l": 60, "r": 20, "t": 92, "b": 50})
    fig.update_yaxes(range=[0, 1.04], tickformat=".0%")
    fig.update_yaxes(title_text="Progression-free", row=1, col=1)
    t_max = float(numeric_column(curves, "time").max()) if "time" in curves.columns else HORIZON_MONTHS
    step = 12 if t_max > 30 else 6
    fig.update_xaxes(range=[0, max(t_max, HORIZON_MONTHS) * 1.02], dtick=step, title_text="Months")
    fig.update_annotations(font={"size": 13})  # the panel titles
    return fig


def _panel_title(rows: pd.DataFrame, cohort: str) -> str:
    """'Cohort stop: 30 MRD\u2212, 22 MRD+' (the patients with a baseline call)."""
    n = rows.set_index("mrd_status")["n"]
    counts = ", ".join(f"{fmt_number(n[s], '.0f')} {MRD_SHORT[s]}" for s in STATUSES if s in n.index)
    return f"{cohort_label(cohort)}: {counts}"


def _add_curve(fig: go.Figure, curve: pd.DataFrame, status: str, col: int, first: bool) -> None:
    color, label = status_color(status), status_label(status)
    x, y = km_band_outline(curve["time"], curve["survival"], curve["ci_low"], curve["ci_high"])
    if x:
        fig.add_trace(go.Scatter(x=x, y=y, mode="lines", fill="toself", fillcolor=rgba(color, 0.14),
                                 line={"width": 0}, legendgroup=status, showlegend=False, hoverinfo="skip"),
                      row=1, col=col)  # fmt: skip
    fig.add_trace(
        go.Scatter(
            x=curve["time"], y=curve["survival"], mode="lines", name=f"{label} at baseline", legendgroup=status,
            showlegend=first, line={"color": color, "width": 2.5, "shape": "hv"}, customdata=km_hover_data(curve),
            hovertemplate=f"{label}<br>%{{x:.1f}} months: PFS %{{y:.0%}}<br>%{{customdata[0]}} at risk, "
            "%{customdata[1]} progression events so far<extra></extra>",
        ),
        row=1, col=col,
    )  # fmt: skip


def _add_one_year_mark(
    fig: go.Figure, row: pd.Series, curve: pd.DataFrame, status: str, cohort: str, col: int, level: str
) -> None:
    """The 1-year estimate with its CI at 12 months; the hover says how many progressed by then."""
    estimate, low, high = row["km_pfs_1y"], row["km_ci_low"], row["km_ci_high"]
    if pd.isna(estimate):
        return
    events = row["progressed_1y"]
    if pd.isna(events) and len(curve):
        events = curve.loc[curve["time"] <= HORIZON_MONTHS, "events"].fillna(0).sum()
    hover = (
        f"{status_label(status)} at baseline \u00b7 {cohort_label(cohort)}<br>1-year PFS "
        f"{percent_ci(estimate, low, high, level)}<br>n = {fmt_number(row['n'], '.0f')}; "
        f"{count_noun(events, 'progression event')} by 12 months"
    )
    color = status_color(status)
    error = {
        "type": "data",
        "symmetric": False,
        "array": [high - estimate if pd.notna(high) else 0],
        "arrayminus": [estimate - low if pd.notna(low) else 0],
        "color": color,
        "thickness": 2,
        "width": 5,
    }
    fig.add_trace(
        go.Scatter(x=[HORIZON_MONTHS], y=[estimate], mode="markers+text", legendgroup=status, showlegend=False,
                   marker={"color": color, "size": 10, "symbol": "diamond" if status == POSITIVE else "circle",
                           "line": {"color": "#FFFFFF", "width": 1}},
                   text=[fmt_percent(estimate)], textposition="middle right", textfont={"color": color, "size": 13},
                   error_y=error, hovertext=[hover], hovertemplate="%{hovertext}<extra></extra>",
                   cliponaxis=False),
        row=1, col=col,
    )  # fmt: skip


def _caption(level: str, landmarks: bool) -> str:
    return (
        "Progression-free survival (PFS) by the MRD status of the baseline plasma sample, per cohort. Table: the "
        f"Kaplan-Meier estimate at 1 year with its {level}; under it the number of patients and, among those "
        "evaluable at 1 year (progressed by then, or followed beyond it), the share progression-free with an "
        "exact (Clopper-Pearson) CI; patients censored before 1 year without progression are not evaluable. "
        "NPV: the share of evaluable patients with a negative baseline test who stayed progression-free for a "
        "year. Figure: the Kaplan-Meier curves with their pointwise CIs; the dotted line and the marker are the "
        "1-year estimate (hover for the events by 12 months)."
        + (" The landmark rows below use the MRD status at each landmark among patients progression-free then."
           if landmarks else "")
    )  # fmt: skip
