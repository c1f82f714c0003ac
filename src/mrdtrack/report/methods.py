"""The methods section: what each step did, stated with the setting values in force, and every config parameter.

The prose lives in templates/methods.html.j2; this module supplies the values it quotes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from mrdtrack.report.context import Context
from mrdtrack.report.formatting import flatten, plain
from mrdtrack.report.recorded import setting
from mrdtrack.report.style import MRD_COLORS, status_label
from mrdtrack.report.threshold import CallingThreshold, calling_threshold

NOT_RECORDED = "(not recorded)"


@dataclass
class Methods:
    """What templates/methods.html.j2 shows."""

    used: Callable[[str], str]  # "section.key" -> the value that step used, as text
    threshold: CallingThreshold
    support: str  # what else a positive call needs ('' when the caller does not say)
    colors: str
    tf_floor: str
    parameters: list[tuple[str, str]]


def methods_section(ctx: Context) -> Methods:
    """The values the methods prose quotes, and every configuration parameter of the run."""
    return Methods(
        used=lambda dotted: used_setting(ctx, dotted),
        threshold=calling_threshold(ctx),
        support=_support(ctx),
        colors=", ".join(f"{status_label(k)} {v}" for k, v in list(MRD_COLORS.items())[:3]),
        tf_floor=f"{ctx.tf_floor():g}",
        parameters=[(key, plain(value)) for key, value in flatten(ctx.config).items()],
    )


def used_setting(ctx: Context, dotted: str) -> str:
    """The value of `section.key` that step used, as text ('(not recorded)' when unknown)."""
    value = setting(ctx.tables.settings, *dotted.split(".", 1))
    return plain(value) if value not in (None, "") else NOT_RECORDED


def _support(ctx: Context) -> str:
    """'at least 2 distinct mutant fragments at 2 loci' when the caller has that rule, else ''."""
    fragments = used_setting(ctx, "calling.min_mutant_fragments")
    loci = used_setting(ctx, "calling.min_mutant_loci")
    if NOT_RECORDED in (fragments, loci):
        return ""
    return f"at least {fragments} distinct mutant fragments at {loci} loci"
