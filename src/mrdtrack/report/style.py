"""One look for every figure: the Okabe-Ito colors, a marker shape per MRD status, and the shared layout."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import plotly.graph_objects as go

from mrdtrack.vocabulary import INDETERMINATE, NEGATIVE, POSITIVE

# Okabe & Ito (2008): distinguishable under the common colour-vision deficiencies.
MRD_COLORS = {POSITIVE: "#D55E00", NEGATIVE: "#0072B2", INDETERMINATE: "#8C8C8C", "no call": "#C8C8C8"}

# A shape per status too, so the status still reads in grey-scale print.
MRD_SYMBOLS = {
    POSITIVE: "diamond",
    NEGATIVE: "circle",
    INDETERMINATE: "circle-open",
    "no call": "x-thin-open",
}

MRD_LABELS = {
    POSITIVE: "MRD-positive",
    NEGATIVE: "MRD-negative",
    INDETERMINATE: "indeterminate",
    "none": "no baseline sample",
    "all": "all patients",
}

MRD_SHORT = {
    POSITIVE: "MRD+",
    NEGATIVE: "MRD\u2212",
    INDETERMINATE: "indet.",
    "none": "none",
    "all": "all",
}

STATUS_ORDER = (POSITIVE, NEGATIVE, INDETERMINATE, "no call", "none", "all")

COHORT_COLORS = ("#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442")

PLOTLY_CONFIG = {"displaylogo": False, "responsive": True}


def status_label(status: str) -> str:
    """The legend label of an MRD status ('MRD-positive')."""
    return MRD_LABELS.get(status, status)


def status_color(status: str) -> str:
    """The Okabe-Ito color of an MRD status (black for the all-patients reference)."""
    return "#000000" if status == "all" else MRD_COLORS.get(status, "#BBBBBB")


def ordered_statuses(statuses: Sequence[str]) -> list[str]:
    """The distinct statuses of `statuses` in the legend order (positive, negative, indeterminate, ...)."""
    present = list(dict.fromkeys(statuses))
    return [s for s in STATUS_ORDER if s in present] + sorted(s for s in present if s not in STATUS_ORDER)


def base_layout(fig: go.Figure, height: int, **extra: Any) -> go.Figure:
    """One look for every figure; `extra` layout keys override the defaults."""
    layout = {
        "template": "simple_white",
        "height": height,
        "margin": {"l": 70, "r": 30, "t": 85, "b": 60},
        "font": {"family": "Arial, sans-serif", "size": 13},
        "hoverlabel": {"namelength": -1},
        # The legend sits in its own band below the mode bar (34 px from the top), the buttons (if any) just
        # above the plot area, so none of the three overlap.
        "legend": {
            "orientation": "h",
            "yref": "container",
            "y": 1 - 34 / height,
            "yanchor": "top",
            "x": 0,
            "xanchor": "left",
        },
    }
    fig.update_layout(**{**layout, **extra})
    return fig


def button_menu(buttons: list[dict[str, Any]], active: int = 0) -> dict[str, Any]:
    """Buttons right-aligned just above the plot area."""
    return {"type": "buttons", "direction": "right", "x": 1, "xanchor": "right", "y": 1.0, "yanchor": "bottom",
            "buttons": buttons, "active": active, "pad": {"b": 6}, "showactive": True}  # fmt: skip


def reference_line(fig: go.Figure, axis: str, value: float, **line: Any) -> None:
    """A dashed reference line; the 'simple_white' template draws shape lines with width 0 unless told."""
    style = {"dash": "dash", "color": "#8C8C8C", "width": 1.5} | line
    if axis == "x":
        fig.add_vline(x=value, line=style)
    else:
        fig.add_hline(y=value, line=style)


def status_legend(fig: go.Figure, statuses: Sequence[str], **trace_kwargs: Any) -> None:
    """Legend-only traces so every figure explains its MRD colors the same way."""
    for status in ordered_statuses(statuses):
        fig.add_trace(
            go.Scatter(
                x=[None],
                y=[None],
                mode="markers",
                name=status_label(status),
                legendgroup=f"status-{status}",
                marker={
                    "color": status_color(status),
                    "symbol": MRD_SYMBOLS.get(status, "circle"),
                    "size": 9,
                },
                **trace_kwargs,
            )
        )


def rgba(color: str, alpha: float) -> str:
    """A '#RRGGBB' color as an rgba() string with opacity `alpha`."""
    r, g, b = (int(color[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r},{g},{b},{alpha})"
