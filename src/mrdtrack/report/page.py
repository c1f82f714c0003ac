"""Assembling the page: every chapter's sections (a section that fails is shown as a message, not raised), the
header, the table of contents and the methods, rendered to one self-contained HTML file plus one HTML per figure.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio

import mrdtrack
from mrdtrack.report.answer import section_answer
from mrdtrack.report.context import Context, PathLike, ReportInputs, load_tables, survival_notes, text_column
from mrdtrack.report.dynamics import section_lead_time, section_swimmer
from mrdtrack.report.forest import section_forest
from mrdtrack.report.formatting import count_noun
from mrdtrack.report.landmarks import section_landmark_km
from mrdtrack.report.methods import methods_section
from mrdtrack.report.models import plain_note, recorded_covariates
from mrdtrack.report.prediction import section_prediction
from mrdtrack.report.qc import (
    section_background,
    section_chip_loci,
    section_excluded,
    section_flagged,
    section_fraglen,
    section_locus_noise,
    section_lod,
    section_qc_samples,
)
from mrdtrack.report.render import plotly_library, render
from mrdtrack.report.section import Section
from mrdtrack.report.settings import ReportSettings
from mrdtrack.report.style import PLOTLY_CONFIG, STATUS_ORDER, status_color, status_label
from mrdtrack.report.survival import section_endpoints, sections_km
from mrdtrack.report.trajectories import section_trajectories
from mrdtrack.tables import atomic_path
from mrdtrack.vocabulary import POSITIVE

log = logging.getLogger(__name__)

Builder = Callable[[Context], "Section | list[Section]"]
# The answer the trial exists for, on the first screen: above the table of contents.
LEAD: tuple[Builder, ...] = (section_answer,)
CHAPTERS: tuple[tuple[str, str, tuple[Builder, ...]], ...] = (
    ("survival", "MRD and progression-free survival", (sections_km, section_landmark_km, section_forest,
                                                         section_endpoints, section_prediction)),
    ("dynamics", "MRD dynamics", (section_swimmer, section_trajectories, section_lead_time)),
    ("qc", "Quality control", (section_qc_samples, section_lod, section_background, section_fraglen,
                               section_excluded, section_chip_loci, section_locus_noise, section_flagged)),
)  # fmt: skip
FIGURE_INDEX = "index.html"
STATIC_WIDTH = 1180  # px, the figure width on the page (plotly's default, 700, wraps the legends)


@dataclass
class Chapter:
    """A heading of the page and the sections under it."""

    anchor: str
    title: str
    sections: list[Section]


@dataclass
class NoteGroup:
    """Notes folded away under the header, under one summary line."""

    summary: str
    notes: list[str]


@dataclass
class Report:
    """The rendered page and the sections it shows (tests and the per-figure files use the sections).

    Parameters
    ----------
    html : str
        The self-contained page.
    sections : list of Section
        Every section of the page, in page order.
    """

    html: str
    sections: list[Section]


def build_report(
    inputs: ReportInputs,
    settings: ReportSettings,
    config: Mapping[str, Any] | None = None,
    strict: bool = False,
) -> Report:
    """Read the inputs and render the report.

    Parameters
    ----------
    inputs : ReportInputs
        Paths of the run's tables; a missing or unreadable one degrades the sections that need it.
    settings : ReportSettings
        The `report:` settings.
    config : mapping, optional
        The whole run configuration, shown as a table in the methods.
    strict : bool
        Re-raise a section builder's error instead of showing it as "Not drawn" (for tests).

    Returns
    -------
    Report
        The page and its sections.
    """
    ctx = Context.build(load_tables(inputs), settings, config or {})
    lead = _run_builders(LEAD, ctx, strict)
    chapters = [
        Chapter(anchor, title, _run_builders(builders, ctx, strict)) for anchor, title, builders in CHAPTERS
    ]
    page = render(
        "report.html.j2",
        title=settings.title,
        study_name=settings.study_name,
        version=mrdtrack.__version__,
        report_date=_report_date(ctx),
        plotlyjs=plotly_library(),
        lead=lead,
        chapters=chapters,
        methods=methods_section(ctx),
        **_header(ctx),
    )
    return Report(page, [*lead, *(section for chapter in chapters for section in chapter.sections)])


def write_report(
    inputs: ReportInputs,
    html_path: PathLike,
    figures_dir: PathLike,
    settings: ReportSettings,
    config: Mapping[str, Any] | None = None,
    strict: bool = False,
) -> Report:
    """Write the report and one HTML (plus any static images) per figure, each atomically.

    Parameters
    ----------
    inputs : ReportInputs
        Paths of the run's tables.
    html_path : str or os.PathLike
        Where the page goes.
    figures_dir : str or os.PathLike
        The folder of per-figure files (replaced as a whole).
    settings : ReportSettings
        The `report:` settings.
    config : mapping, optional
        The whole run configuration, shown as a table in the methods.
    strict : bool
        Re-raise a section builder's error instead of showing it as "Not drawn".

    Returns
    -------
    Report
        The page and its sections, as written.
    """
    report = build_report(inputs, settings, config, strict)
    with atomic_path(html_path) as tmp:
        tmp.write_text(report.html, encoding="utf-8")
    with _atomic_dir(figures_dir) as folder:
        write_figures(report.sections, folder, settings.static_formats, settings.title)
    log.info("report: %s (%d sections, %.1f MB)", html_path, len(report.sections), len(report.html) / 1e6)
    return report


def write_figures(
    sections: Sequence[Section], folder: Path, static_formats: Sequence[str] = (), title: str = "Figures"
) -> None:
    """figures/<key>.html sharing one plotly.min.js in the folder (offline), an index.html showing them all with
    their captions (the entry page of `snakemake --report`), and static images only where kaleido works."""
    (folder / FIGURE_INDEX).write_text(_figure_index(sections, title), encoding="utf-8")
    images: list[tuple[go.Figure, Path]] = []
    for section in sections:
        if section.figure is None:
            continue
        fig = _titled(section)
        pio.write_html(fig, folder / f"{section.key}.html", include_plotlyjs="directory", config=PLOTLY_CONFIG,
                       div_id=f"fig-{section.key}", post_script=section.script or None)  # fmt: skip
        if static_formats:  # a picture of the page's figure: its width, and no buttons (nothing to click)
            still = go.Figure(fig).update_layout(updatemenus=[], width=STATIC_WIDTH)
            images += [(still, folder / f"{section.key}.{fmt}") for fmt in static_formats]
    if images:
        _write_images(images)


def _figure_index(sections: Sequence[Section], title: str) -> str:
    """Every drawn figure in an iframe with its caption; the figures not drawn are listed with the reason."""
    drawn = [s for s in sections if s.figure is not None]
    missing = [s for s in sections if s.figure is None and s.message.startswith("Not ")]
    return render("figure_index.html.j2", title=title, drawn=drawn, missing=missing)


def _titled(section: Section) -> go.Figure:
    """The figure with its section title in the top band, above the legend (the page shows it as a heading)."""
    fig = go.Figure(section.figure)
    height = fig.layout.height or 450
    text = f"{section.title} \u00b7 {fig.layout.title.text}" if fig.layout.title.text else section.title
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


def _run_builders(builders: Sequence[Builder], ctx: Context, strict: bool) -> list[Section]:
    sections: list[Section] = []
    for builder in builders:
        try:
            result = builder(ctx)
        except Exception as error:  # one broken figure must not take the other sections down
            if strict:
                raise
            log.exception("report: section %s failed", builder.__name__)
            title = (builder.__doc__ or builder.__name__).strip().splitlines()[0]
            result = Section(
                builder.__name__.split("_", 1)[-1],
                title,
                message=f"Not drawn: {type(error).__name__}: {error}",
            )
        sections.extend(result if isinstance(result, list) else [result])
    return sections


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
    types = text_column(sheet, "sample_type").str.lower()
    plasma = int((types == "plasma").sum()) if len(sheet) else len(ctx.samples)
    batches = text_column(sheet if "batch" in sheet.columns else ctx.tables.calls, "batch")
    return {
        "patients": len(ctx.patients),
        "plasma samples": plasma,
        "batches": int(batches[batches != ""].nunique()),
        "healthy controls": int((types == "control").sum()),
        "normal (WBC) samples": int((types == "normal").sum()),
        "MRD-positive samples": int((ctx.samples["status"] == POSITIVE).sum()),
        "PFS events": int((ctx.patients["pfs_event"] == 1).sum()) if "pfs_event" in ctx.patients else 0,
    }


def _header(ctx: Context) -> dict[str, Any]:
    """What templates/header.html.j2 shows besides the title, study, date and version."""
    cohorts = ctx.patients["cohort"].value_counts().sort_index()
    return {
        "per_cohort": ", ".join(f"{k}: {v}" for k, v in cohorts.items()) or "none",
        "counts": input_summary(ctx),
        "status_key": [(status_label(s), status_color(s)) for s in STATUS_ORDER[:3]],
        "note_groups": _note_groups(ctx),
    }


def _note_groups(ctx: Context) -> list[NoteGroup]:
    """Missing or unreadable inputs, and the survival step's notes on its models, folded away under the header."""
    problems = [f"{name}: {why}" for name, why in sorted(ctx.tables.problems.items())]
    covariates = recorded_covariates(ctx)
    notes = [plain_note(note, covariates) for note in survival_notes(ctx.tables.summary)]
    groups = [
        NoteGroup(f"{count_noun(len(problems), 'input')} missing or unreadable", problems),
        NoteGroup(count_noun(len(notes), "survival-model note"), notes),
    ]
    return [group for group in groups if group.notes]
