"""The investigator report: one self-contained HTML file with every figure of an mrdtrack run.

plotly.js is embedded once in the page head and every figure is a plotly div drawn by it, so the file opens
offline and can be e-mailed. Each figure's data is embedded as a TSV `data:` link. Every section degrades to a
"not estimable / not drawn: reason" box instead of failing.

Modules: `settings` (the `report:` config section), `context` (reading the results into one Context), `survival`,
`dynamics` and `qc` (the sections), `methods`, `page` (assembling the page) and `render` (jinja2 templates in
templates/, autoescaped). `recorded` reads the settings each producing step wrote beside its outputs.
"""

from mrdtrack.report.context import (
    Context,
    ReportInputs,
    Tables,
    load_tables,
    normalize_status,
    patient_frame,
    sample_frame,
)
from mrdtrack.report.dynamics import lane_frame
from mrdtrack.report.page import Report, build_report, input_summary, write_figures, write_report
from mrdtrack.report.qc import context_matrix, fraglen_bin_width, fraglen_bins
from mrdtrack.report.recorded import setting
from mrdtrack.report.render import tsv_text
from mrdtrack.report.section import Section
from mrdtrack.report.settings import ReportSettings
from mrdtrack.report.survival import endpoint_label

__all__ = [
    "Context", "Section", "Report", "ReportInputs", "ReportSettings", "Tables", "build_report", "context_matrix",
    "endpoint_label", "fraglen_bin_width", "fraglen_bins", "input_summary", "lane_frame", "load_tables",
    "normalize_status", "patient_frame", "sample_frame", "setting", "tsv_text", "write_figures", "write_report",
]  # fmt: skip
