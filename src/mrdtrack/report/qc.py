"""Quality-control sections: molecules and loci per sample, LOD95, background error by context, fragment lengths,
excluded loci, loci in clonal-hematopoiesis genes, per-locus noise and flagged samples."""

from __future__ import annotations

import html
import math
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from mrdtrack.report.context import (
    MUTANT_EVIDENCE,
    Context,
    normalize_status,
    numeric_column,
    sample_table,
    text_column,
)
from mrdtrack.report.formatting import (
    DASH,
    count_noun,
    fmt_number,
    mutant_evidence_text,
    positive_float,
)
from mrdtrack.report.recorded import setting
from mrdtrack.report.section import Section, data_table
from mrdtrack.report.style import (
    base_layout,
    button_menu,
    ordered_statuses,
    reference_line,
    rgba,
    status_color,
    status_label,
)
from mrdtrack.report.threshold import calling_threshold
from mrdtrack.vocabulary import POSITIVE, SUBSTITUTIONS

BASES = "ACGT"

# Fragment-length lines: (color, dash). Mutant molecules of MRD-positive samples take the MRD-positive color.
FRAGLEN_GROUPS = {
    "wild-type (REF)": ("#000000", "solid"),
    "mutant (ALT)": ("#E69F00", "solid"),
    "mutant (ALT), MRD-positive samples": ("#D55E00", "dot"),
}


def section_qc_samples(ctx: Context) -> Section:
    """Molecules and loci per sample"""
    section = Section("qc_samples", "QC: informative molecules and panel loci used per plasma sample")
    problem = ctx.unavailable("calls", ["sample_id", "total_molecules"])
    if problem:
        section.message = f"Not drawn: {problem}"
        return section
    samples = _qc_sample_table(ctx)
    # The sample labels sit under the bottom panel only (_qc_samples_layout), so a small gap suffices.
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.08, row_heights=[0.55, 0.45])
    for status in ordered_statuses(samples["status"].tolist()):
        rows = samples[samples["status"] == status]
        color = status_color(status)
        common = {
            "x": rows["sample_id"],
            "marker_color": color,
            "legendgroup": status,
            "text": rows["hover"],
            "textposition": "none",  # the text is for the hover; plotly would print it inside the bars
            "hovertemplate": "%{text}<extra></extra>",
        }
        fig.add_trace(go.Bar(y=rows["total_molecules"], name=status_label(status), **common), row=1, col=1)
        fig.add_trace(go.Bar(y=rows["n_loci_used"], showlegend=False, **common), row=2, col=1)
    _add_qc_markers(fig, samples)
    min_molecules = positive_float(setting(ctx.tables.settings, "calling", "min_molecules"))
    _qc_samples_layout(fig, samples, min_molecules)
    section.figure = fig
    flagged = int((samples["flags"] != "").sum())
    marks = (
        f"\u25bc marks the {count_noun(flagged, 'flagged sample')}." if flagged else "No sample is flagged."
    )
    cut = (
        f" Dashed line: calling.min_molecules = {min_molecules:,.0f}; a sample below it is indeterminate."
        if min_molecules
        else ""
    )
    section.caption = (
        "Top: informative (deduplicated) molecules summed over the sample's panel loci, log scale."
        f"{cut} Bottom: loci used for calling (bars) of the patient's panel (dashes). {marks} "
        + _unused_reasons_text(ctx.tables.loci)
        + _threshold_text(ctx)
    )
    section.downloads["qc_samples.tsv"] = samples.drop(columns=["hover"])
    return section


def _threshold_text(ctx: Context) -> str:
    described = calling_threshold(ctx).describe()
    return f" Calling threshold: {described}." if described else ""


def _qc_samples_layout(fig: go.Figure, samples: pd.DataFrame, min_molecules: float | None) -> None:
    base_layout(fig, 580, barmode="overlay", bargap=0.15)
    fig.update_xaxes(type="category", categoryorder="array", categoryarray=samples["sample_id"].tolist())
    # Labels under the bottom panel only: under the top one they ran into the bottom panel's bars.
    fig.update_xaxes(showticklabels=False, row=1, col=1)
    fig.update_xaxes(showticklabels=len(samples) <= 60, tickangle=-60, tickfont={"size": 9},
                     title_text=f"Plasma samples ({len(samples)}; by batch, patient, date)", row=2, col=1)  # fmt: skip
    y_range = _molecule_range(samples, min_molecules)
    ticks = _one_two_five(y_range) if y_range else None
    fig.update_yaxes(type="log", title_text="Molecules (all loci)", range=y_range, tickvals=ticks,
                     tickformat=",.0f", row=1, col=1)  # fmt: skip
    fig.update_yaxes(title_text="Loci used", rangemode="tozero", row=2, col=1)
    if min_molecules:
        line = {"dash": "dash", "color": "#000000", "width": 1.5}
        fig.add_hline(y=min_molecules, line=line, layer="above", row=1, col=1)
        # Annotations on a log axis take log10 coordinates.
        fig.add_annotation(text=f"calling.min_molecules = {min_molecules:,.0f}", x=1, xref="x domain",
                           y=math.log10(min_molecules), yref="y", xanchor="right", yanchor="bottom",
                           showarrow=False, bgcolor="rgba(255,255,255,0.85)", font={"size": 11})  # fmt: skip


def _molecule_range(samples: pd.DataFrame, min_molecules: float | None) -> list[float] | None:
    """The log10 range of the molecules axis, wide enough for the bars, the flag markers and the cut line."""
    values = samples["total_molecules"][lambda v: v > 0]
    if values.empty:
        return None
    low = min(float(values.min()), min_molecules or math.inf)
    return [math.log10(low) - 0.3, math.log10(float(values.max()) * 1.6) + 0.15]


def _one_two_five(log_range: list[float]) -> list[float]:
    """Ticks at 1, 2 and 5 times the powers of ten inside a log10 axis range (plotly labels every digit)."""
    low, high = log_range
    decades = range(math.floor(low), math.ceil(high) + 1)
    return [m * 10.0**e for e in decades for m in (1, 2, 5) if low <= math.log10(m * 10.0**e) <= high]


def _qc_sample_table(ctx: Context) -> pd.DataFrame:
    calls = ctx.tables.calls
    samples = pd.DataFrame(
        {
            "sample_id": calls["sample_id"],
            "patient_id": text_column(calls, "patient_id"),
            "batch": text_column(calls, "batch"),
            "collection_date": text_column(calls, "collection_date"),
            "status": text_column(calls, "mrd_status").map(normalize_status),
            "total_molecules": numeric_column(calls, "total_molecules"),
            "mutant_molecules": numeric_column(calls, "mutant_molecules"),
            "n_loci_used": numeric_column(calls, "n_loci_used"),
            "n_loci_panel": numeric_column(calls, "n_loci_panel"),
            "lod95": numeric_column(calls, "lod95"),
            "flags": text_column(calls, "flags"),
        }
    )
    # Newer calls.tsv columns, shown when the caller wrote them.
    for column in MUTANT_EVIDENCE:
        if column in calls.columns:
            samples[column] = numeric_column(calls, column)
    if "threshold_source" in calls.columns:
        samples["threshold_source"] = text_column(calls, "threshold_source")
    chip = _chip_loci_per_sample(ctx.tables.loci)
    if chip is not None:
        samples = samples.merge(chip, on="sample_id", how="left").fillna({c: 0 for c in chip.columns[1:]})
    qc = ctx.tables.qc
    extra = [c for c in ("duplicate_rate", "mean_family_size", "median_fragment_length") if c in qc.columns]
    if extra:
        samples = samples.merge(qc[["sample_id", *extra]], on="sample_id", how="left")
    samples = samples.sort_values(["batch", "patient_id", "collection_date", "sample_id"]).reset_index(
        drop=True
    )
    samples["hover"] = [_qc_hover(r, extra) for r in samples.itertuples()]
    return samples


def _qc_hover(r: Any, extra: list[str]) -> str:
    lines = [
        f"<b>{r.sample_id}</b> ({r.patient_id}, batch {r.batch or DASH})",
        status_label(r.status),
        f"molecules {fmt_number(r.total_molecules, ',.0f')}, mutant {fmt_number(r.mutant_molecules, ',.0f')}"
        + mutant_evidence_text(r).replace("<br>", "; "),
        f"loci used {fmt_number(r.n_loci_used, '.0f')} of {fmt_number(r.n_loci_panel, '.0f')}",
    ]
    if getattr(r, "chip_suspect_loci", 0):
        lines.append(
            f"CHIP-suspect loci {r.chip_suspect_loci:.0f} ({r.chip_suspect_loci_with_alt:.0f} with ALT)"
        )
    if getattr(r, "threshold_source", ""):
        lines.append(f"threshold: {r.threshold_source}")
    lines += [f"{c.replace('_', ' ')} {fmt_number(getattr(r, c), '.3g')}" for c in extra]
    if r.flags:
        # plotly reads hover text as its own HTML subset: a '<' in a producer's flag must not start a tag
        lines.append(f"flags: {html.escape(r.flags)}")
    return "<br>".join(lines)


def _chip_loci_per_sample(loci: pd.DataFrame) -> pd.DataFrame | None:
    """Per sample, its loci in clonal-hematopoiesis genes and those with mutant molecules (None when loci.tsv
    has no chip_suspect column)."""
    if not {"sample_id", "chip_suspect"} <= set(loci.columns):
        return None
    suspect = loci[_is_true(loci["chip_suspect"])]
    with_alt = numeric_column(suspect, "alt_molecules").fillna(0) > 0
    counts = pd.DataFrame({"sample_id": suspect["sample_id"], "with_alt": with_alt})
    grouped = counts.groupby("sample_id")["with_alt"]
    return pd.DataFrame(
        {"chip_suspect_loci": grouped.size(), "chip_suspect_loci_with_alt": grouped.sum()}
    ).reset_index()


def _is_true(column: pd.Series) -> pd.Series:
    """A producer's boolean column (True/False, 1/0, yes/no) as booleans; anything else is False."""
    return column.astype(str).str.strip().str.lower().isin(["true", "1", "yes"])


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
    used = _is_true(loci["used"])
    reasons = text_column(loci[~used], "reason", "unspecified").replace("", "unspecified").value_counts()
    if reasons.empty:
        return "Every panel locus was used in every sample."
    top = ", ".join(f"{reason} ({count})" for reason, count in reasons.head(5).items())
    return f"Sample-locus pairs not used, by reason: {top}."


def section_lod(ctx: Context) -> Section:
    """Limit of detection"""
    section = Section("lod", "QC: limit of detection (LOD95) per sample, by batch and MRD status")
    problem = ctx.unavailable("calls", ["lod95"])
    samples = ctx.samples.dropna(subset=["lod95"]) if not problem else ctx.samples
    if problem or samples.empty:
        section.message = f"Not drawn: {problem or 'no sample has a LOD95'}"
        return section
    samples = samples.assign(batch=text_column(samples, "batch", "").replace("", "no batch"))
    fig = go.Figure(
        [
            _lod_box(samples[samples["status"] == st], st)
            for st in ordered_statuses(samples["status"].tolist())
        ]
    )
    base_layout(fig, 440, boxmode="group")
    fig.update_yaxes(type="log", title_text="LOD95 (tumor fraction)", exponentformat="power")
    max_lod = positive_float(setting(ctx.tables.settings, "calling", "max_lod95"))
    if max_lod:
        reference_line(fig, "y", max_lod)
        # Annotations on a log axis take log10 coordinates.
        fig.add_annotation(text=f"calling.max_lod95 = {max_lod:g}", xref="paper", x=1, y=math.log10(max_lod),
                           xanchor="right", yanchor="bottom", showarrow=False, font={"color": "#5F5F5F"})  # fmt: skip
    fig.update_xaxes(type="category", categoryorder="category ascending", title_text="Batch")
    section.figure = fig
    lod = samples["lod95"]
    section.caption = (
        "Tumor fraction detected with 95% probability given the sample's depth and background (LOD95), log "
        f"scale; median {lod.median():.2g} (range {lod.min():.2g}\u2013{lod.max():.2g}). A sample whose LOD is "
        "too high to rule MRD out is indeterminate rather than negative (dashed line: the caller's maximum LOD95 "
        "for a negative call, when known)."
    )
    section.downloads["lod.tsv"] = sample_table(samples).assign(batch=samples["batch"])
    return section


def _lod_box(rows: pd.DataFrame, status: str) -> go.Box:
    color = status_color(status)
    return go.Box(
        x=rows["batch"], y=rows["lod95"], name=status_label(status), boxpoints="all", jitter=0.45, pointpos=0,
        marker={"color": color, "size": 5, "opacity": 0.7}, line={"color": color}, fillcolor=rgba(color, 0.12),
        text=rows["sample_id"], hovertemplate="%{text}: LOD95 %{y:.3g}<extra></extra>",
    )  # fmt: skip


def context_matrix(rates: pd.DataFrame, orientation: str) -> pd.DataFrame:
    """The 96-class error rates as a 6 substitution x 16 flank matrix (missing classes stay NaN)."""
    flanks = [f"{a}_{b}" for a in BASES for b in BASES]
    matrix = pd.DataFrame(np.nan, index=list(SUBSTITUTIONS), columns=flanks)
    rows = rates[text_column(rates, "orientation", "all").str.lower() == orientation]
    for sub, ctx, rate in zip(
        rows["substitution"], rows["context"], numeric_column(rows, "rate"), strict=True
    ):
        ctx = str(ctx).upper()
        flank = f"{ctx[0]}_{ctx[2]}" if len(ctx) == 3 else ""
        if sub in matrix.index and flank in matrix.columns:  # .loc would add a column for an N context
            matrix.loc[sub, flank] = rate
    return matrix


def section_background(ctx: Context) -> Section:
    """Background error by context"""
    section = Section(
        "background", "QC: background error rate by substitution and trinucleotide context (96 classes)"
    )
    rates = ctx.tables.context_rates
    problem = ctx.unavailable("context_rates", ["substitution", "context", "rate"])
    if problem:
        section.message = f"Not drawn: {problem}"
        return section
    orientations = [
        o
        for o in ("all", "f1r2", "f2r1")
        if (text_column(rates, "orientation", "all").str.lower() == o).any()
    ]
    positive = numeric_column(rates, "rate")[lambda r: r > 0]
    floor = float(positive.min()) / 10 if len(positive) else 1e-7
    fig = _background_figure(rates, orientations, floor)
    section.figure = fig
    section.caption = (
        "Error rate (mutant molecules / molecules) per pyrimidine-centred substitution class and flanking bases, "
        "from healthy controls and other patients' loci; log10 color scale (Viridis), a zero rate is drawn at "
        f"{floor:.2g}. Read orientations (F1R2 / F2R1) separate strand-specific damage such as oxidative G>T."
    )
    section.downloads["context_rates.tsv"] = rates
    return section


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
    base_layout(fig, 420, updatemenus=[button_menu(buttons)])
    fig.update_xaxes(title_text="5' base _ 3' base around the mutated (pyrimidine) base", tickangle=-45)
    fig.update_yaxes(autorange="reversed", title_text="Substitution")
    return fig


def _fmt_rate(value: float) -> str:
    return fmt_number(value, ".2e", "no data")


def section_fraglen(ctx: Context) -> Section:
    """Fragment lengths"""
    section = Section("fraglen", "QC: fragment-length distributions, mutant vs wild-type molecules")
    histogram = _fraglen_table(ctx)
    if histogram.empty:
        section.message = "Not drawn: no fragment-length histogram (results/counts/*.fraglen.tsv) was given"
        return section
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
    base_layout(fig, 420)
    fig.update_xaxes(title_text="Fragment length (bp)", range=[40, 450])
    fig.update_yaxes(title_text="Fraction of molecules per bp", tickformat=".1%", rangemode="tozero")
    section.figure = fig
    section.caption = (
        "Fragment-length histograms of wild-type and mutant molecules pooled over plasma samples (normalized per "
        "line; a line with few molecules is binned more coarsely, so every line shows the fraction per bp and "
        "empty bins are drawn at 0). Tumor-derived cfDNA is shorter; mutant molecules in MRD-negative samples are mostly background "
        f"errors, so MRD-positive samples' mutant molecules are shown apart. Medians: {'; '.join(medians)}."
    )
    section.downloads["fragment_lengths.tsv"] = histogram
    return section


def _fraglen_table(ctx: Context) -> pd.DataFrame:
    frame = ctx.tables.fraglen
    if frame.empty:
        return frame
    sheet = ctx.tables.samples
    if {"sample_id", "sample_type"} <= set(sheet.columns):
        plasma = set(sheet.loc[sheet["sample_type"].str.lower() == "plasma", "sample_id"])
        frame = frame[frame["sample_id"].isin(plasma)] if plasma else frame
    allele = frame["allele"].astype(str).str.upper().replace({"WT": "REF", "MUT": "ALT", "MUTANT": "ALT"})
    frame = frame.assign(
        length=numeric_column(frame, "length"), molecules=numeric_column(frame, "molecules"), allele=allele
    )
    positive = set(ctx.samples.loc[ctx.samples["status"] == POSITIVE, "sample_id"])
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


def section_excluded(ctx: Context) -> Section:
    """Excluded loci"""
    section = Section("excluded", "QC: panel loci excluded from calling, by reason")
    excluded = ctx.tables.excluded
    problem = ctx.unavailable("excluded", ["reason"])
    if problem:
        # A readable table without rows is good news; a missing one is a problem.
        quiet = "no rows" in problem and "excluded" not in ctx.tables.problems
        section.message = "No panel locus was excluded." if quiet else f"Not drawn: {problem}"
        return section
    scope = np.where(text_column(excluded, "patient_id").isin(["", "nan"]), "every patient", "one patient")
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
    base_layout(fig, max(260, 40 * counts["reason"].nunique() + 140), barmode="stack")
    fig.update_yaxes(type="category", automargin=True, title_text="Reason")
    most = int(counts.groupby("reason")["loci"].sum().max())
    fig.update_xaxes(title_text="Loci", tickformat="d", rangemode="tozero", dtick=1 if most <= 10 else None)
    section.figure = fig
    section.caption = (
        f"{len(excluded)} exclusions: a locus far noisier than its context, or seen in the patient's matched "
        "normal (CHIP / germline), is dropped for every patient or for one patient. The table lists them all."
    )
    section.blocks.append(data_table(excluded, ctx.settings.max_table_rows))
    section.downloads["excluded_loci.tsv"] = excluded
    return section


def section_locus_noise(ctx: Context) -> Section:
    """Per-locus noise"""
    section = Section("locus_noise", "QC: per-locus background rate vs its context rate")
    rates = ctx.tables.locus_rates
    problem = ctx.unavailable("locus_rates", ["rate", "context_rate"])
    if problem:
        section.message = f"Not drawn: {problem}"
        return section
    excluded = _is_true(text_column(rates, "excluded"))
    fig = go.Figure()
    for flag, name, color in ((False, "kept", "#56B4E9"), (True, "excluded", "#000000")):
        rows = rates[excluded == flag]
        text = text_column(rows, "chrom") + ":" + text_column(rows, "pos") + " " + text_column(rows, "reason")
        fig.add_trace(
            go.Scatter(
                x=numeric_column(rows, "context_rate"),
                y=numeric_column(rows, "rate"),
                mode="markers",
                name=f"{name} ({len(rows)})",
                marker={"color": color, "size": 6, "opacity": 0.7, "symbol": "x" if flag else "circle"},
                text=text,
                hovertemplate="%{text}<br>context %{x:.2e}, locus %{y:.2e}<extra></extra>",
            )
        )
    known = pd.concat([numeric_column(rates, "context_rate"), numeric_column(rates, "rate")])[lambda v: v > 0]
    if len(known):
        diagonal = [float(known.min()), float(known.max())]
        fig.add_trace(go.Scatter(x=diagonal, y=diagonal, mode="lines", name="locus = context", hoverinfo="skip",
                                 line={"dash": "dash", "color": "#8C8C8C", "width": 1}))  # fmt: skip
    base_layout(fig, 440)
    fig.update_xaxes(type="log", title_text="Context error rate", exponentformat="power")
    fig.update_yaxes(type="log", title_text="Shrunk per-locus error rate", exponentformat="power")
    section.figure = fig
    section.caption = (
        "Each panel locus's empirical-Bayes error rate against its trinucleotide context's rate (dashed: equal); "
        "loci far above their context are excluded."
    )
    section.downloads["locus_rates.tsv"] = rates
    return section


def section_chip_loci(ctx: Context) -> list[Section]:
    """Loci in clonal-hematopoiesis genes"""
    loci = ctx.tables.loci
    if "chip_suspect" not in loci.columns:
        return []  # a caller that does not mark them: nothing to show
    section = Section("chip_loci", "QC: panel loci in clonal-hematopoiesis genes (possible CHIP)")
    suspect = loci[_is_true(loci["chip_suspect"])]
    if suspect.empty:
        section.message = "No panel locus is in a clonal-hematopoiesis gene."
        return [section]
    table = _chip_locus_table(suspect)
    seen = int((table["samples_with_alt"] > 0).sum())
    section.caption = (
        f"{count_noun(len(table), 'panel locus', 'panel loci')} of "
        f"{count_noun(table['patient_id'].nunique(), 'patient')} lie in genes often mutated in clonal "
        "hematopoiesis (CHIP, e.g. DNMT3A, TET2): mutant molecules there may come from the patient's blood cells "
        "rather than the tumor, which only a matched normal (WBC) sample can tell apart. Read a call that rests "
        f"on them with care. {seen} of them show mutant molecules in at least one plasma sample; 'used' counts "
        "the samples whose call included the locus."
    )
    section.blocks.append(data_table(table, ctx.settings.max_table_rows))
    section.downloads["chip_suspect_loci.tsv"] = table
    return [section]


def _chip_locus_table(suspect: pd.DataFrame) -> pd.DataFrame:
    """One row per patient and CHIP-suspect locus: samples, samples with mutant molecules, used in calls."""
    keys = [c for c in ("patient_id", "gene", "chrom", "pos", "ref", "alt") if c in suspect.columns]
    rows = suspect.assign(
        alt_=numeric_column(suspect, "alt_molecules").fillna(0),
        used_=_is_true(text_column(suspect, "used")),
    )
    table = rows.groupby(keys, sort=True, dropna=False).agg(
        samples=("alt_", "size"),
        samples_with_alt=("alt_", lambda a: int((a > 0).sum())),
        alt_molecules=("alt_", "sum"),
        used=("used_", "sum"),
    )
    return table.reset_index().astype({"alt_molecules": int, "used": int})


def section_flagged(ctx: Context) -> Section:
    """Flagged samples"""
    section = Section("flagged", "QC: flagged samples")
    calls = ctx.tables.calls
    if "sample_id" not in calls.columns:
        section.message = f"Not drawn: {ctx.unavailable('calls', ['sample_id'])}"
        return section
    flagged = calls[text_column(calls, "flags") != ""]
    if flagged.empty:
        section.message = f"No flagged sample among the {len(calls)} plasma samples."
        return section
    qc = ctx.tables.qc
    if "sample_id" in qc.columns:
        flagged = flagged.merge(qc.drop(columns=["dedup_mode"], errors="ignore"), on="sample_id", how="left",
                                suffixes=("", "_qc"))  # fmt: skip
    readable = flagged_table(flagged)
    section.blocks.append(data_table(readable, ctx.settings.max_table_rows))
    section.caption = (
        f"{len(flagged)} of {len(calls)} plasma samples {'carries' if len(flagged) == 1 else 'carry'} a QC flag "
        "from the caller. The TSV has every "
        "column of the call and of the sample's counting QC."
    )
    section.downloads["flagged_samples.tsv"] = flagged
    return section


# The flagged-samples table: the columns a reader needs, in words, so it fits a 1024-pixel screen.
FLAGGED_COLUMNS = {
    "sample_id": ("sample", str),
    "patient_id": ("patient", str),
    "batch": ("batch", str),
    "mrd_status": ("MRD status", str),
    "flags": ("flags", lambda v: flag_text(str(v))),
    "status_reason": ("why this status", str),
    "lod95": ("LOD95", lambda v: fmt_number(v, ".2g")),
    "total_molecules": ("molecules", lambda v: fmt_number(v, ",.0f")),
    "n_loci_used": ("loci used", lambda v: fmt_number(v, ".0f")),
    "duplicate_rate": (
        "duplicates",
        lambda v: fmt_number(100 * float(v), ".0f") + "%" if positive_float(v) else DASH,
    ),
}


def flagged_table(flagged: pd.DataFrame) -> pd.DataFrame:
    """The flagged samples with the columns of FLAGGED_COLUMNS that the calls and QC have, formatted."""
    present = {column: spec for column, spec in FLAGGED_COLUMNS.items() if column in flagged.columns}
    return pd.DataFrame({name: [show(v) if pd.notna(v) else "" for v in flagged[column]]
                         for column, (name, show) in present.items()})  # fmt: skip


def flag_text(flags: str) -> str:
    """'possible_contamination:P012;outlier_loci:2' -> 'possible contamination (P012's panel); 2 outlier loci'."""
    words = []
    for flag in filter(None, (f.strip() for f in flags.split(";"))):
        name, _, value = flag.partition(":")
        if name == "possible_contamination" and value:
            words.append(f"possible contamination (scores positive at {value}'s panel)")
        elif name == "outlier_loci" and value:
            words.append(f"{value} outlier loci")
        else:
            words.append(flag.replace("_", " ").replace(":", ": "))
    return "; ".join(words)
