"""HTML from the jinja2 templates in templates/, with autoescape on.

Every value a template shows is escaped, except what plotly generates itself: plotly.js and each figure's div with
its Plotly.newPlot script (which runs the section's own script from templates/, if any, once the figure is drawn).
Those two are marked safe here, explicitly, and nothing else is.
"""

from __future__ import annotations

import base64
from importlib import resources
from typing import Any

import jinja2
import pandas as pd
import plotly.io as pio
import plotly.offline
from markupsafe import Markup

from mrdtrack.report.formatting import link_segments
from mrdtrack.report.section import Section
from mrdtrack.report.style import PLOTLY_CONFIG


def plotly_library() -> Markup:
    """plotly.js itself, embedded once in the page head so the page opens offline."""
    return Markup(plotly.offline.get_plotlyjs())


def figure_html(section: Section) -> Markup:
    """The figure's div and the script that draws it, as plotly writes them (JSON data, our own post-script)."""
    return Markup(
        pio.to_html(
            section.figure,
            include_plotlyjs=False,
            full_html=False,
            div_id=f"fig-{section.key}",
            config={**PLOTLY_CONFIG, "toImageButtonOptions": {"filename": section.key}},
            post_script=section.script or None,
        )
    )


def tsv_text(frame: pd.DataFrame) -> str:
    """A table as the TSV the workflow writes (tab-separated, %.6g floats, empty = missing)."""
    return frame.to_csv(sep="\t", index=False, float_format="%.6g", lineterminator="\n")


def tsv_data_uri(frame: pd.DataFrame) -> str:
    """A download link's target that carries the table itself, so the page needs no files beside it."""
    encoded = base64.b64encode(tsv_text(frame).encode()).decode()
    return f"data:text/tab-separated-values;charset=utf-8;base64,{encoded}"


def static_text(name: str) -> str:
    """A file of templates/ used as it is (a figure's script), not as a jinja2 template."""
    return resources.files("mrdtrack.report").joinpath("templates", name).read_text(encoding="utf-8")


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("mrdtrack.report", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,  # a misspelt name fails the tests instead of rendering empty
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.globals.update(figure_html=figure_html, tsv_data_uri=tsv_data_uri)
    env.filters["link_segments"] = link_segments
    return env


ENVIRONMENT = _environment()


def render(template: str, **context: Any) -> str:
    """The named template (templates/`template`) filled with `context`."""
    return ENVIRONMENT.get_template(template).render(**context)
