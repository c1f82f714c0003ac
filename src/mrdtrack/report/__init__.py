"""The investigator report: one self-contained HTML file with every figure of an mrdtrack run.

plotly.js is embedded once in the page head and every figure is a plotly div drawn by it, so the file opens
offline and can be e-mailed. Each figure's data is embedded as a TSV `data:` link. Every section degrades to a
"not estimable / not drawn: reason" box instead of failing.

The entry points are listed in `__all__`: `write_report` (what the workflow's report rule runs) and
`build_report` take the paths of a run's tables (`ReportInputs`) and the `report:` settings (`ReportSettings`),
and give a `Report` whose `sections` are the page's figures (`Section`).

Modules: `settings` (the `report:` config section), `context` (reading the results into one Context); the section
builders: `answer` (the first screen: who may safely stop), `survival` (Kaplan-Meier, endpoints), `landmarks`,
`forest` (hazard ratios), `prediction`, `dynamics` (swimmer, lead time), `trajectories` and `qc`; `models` (the
survival models, terms and notes in words), `section` (what a builder returns), `methods`, `page` (assembling the
page) and `render` (jinja2 templates in templates/, autoescaped). `recorded` reads the settings each producing
step wrote beside its outputs.
"""

from mrdtrack.report.context import ReportInputs
from mrdtrack.report.page import Report, build_report, write_report
from mrdtrack.report.section import Section
from mrdtrack.report.settings import ReportSettings

__all__ = ["Report", "ReportInputs", "ReportSettings", "Section", "build_report", "write_report"]
