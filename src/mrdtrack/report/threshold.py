"""How the MRD calling threshold was set, as calls.tsv records it (`threshold`, `threshold_source`,
`n_null_scores`), in words for the methods and the QC section.

Each sample's p-value cut is calibrated on its own null (synthetic panels drawn from its own flank positions,
`own_null_panels`), else on the cohort's null scores (samples scored at other patients' panels), only when there
are enough of them to resolve the target false-positive rate; otherwise it is the rate itself ("nominal").
Calls written before these columns existed give the older sentence without the source.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from mrdtrack.calling import null_scores_needed
from mrdtrack.report.context import Context, numeric_column, text_column
from mrdtrack.report.formatting import positive_float
from mrdtrack.report.recorded import setting


@dataclass(frozen=True)
class CallingThreshold:
    value: float | None  # the p-value cut (positive: p <= value)
    source: str  # "empirical", "nominal", or "" when calls.tsv does not say
    n_null_scores: int | None
    false_positive_rate: float | None  # calling.false_positive_rate
    needed: int | None  # null scores needed for an empirical threshold at that rate
    own_null: OwnNull | None = None  # per-sample thresholds from each sample's own null, when recorded

    def describe(self) -> str:
        """'p <= 0.01, nominal: only 140 null scores, fewer than the 1,000 needed to resolve a 1% false-positive
        rate', 'p <= 0.0073, empirical, from 3,820 null scores', or '' when calls.tsv does not say."""
        if not self.source:
            return ""
        if self.own_null is not None:
            return self.own_null.describe()
        cut = f"p \u2264 {self.value:.3g}" if self.value is not None else "p-value cut not recorded"
        scores = "an unknown number of" if self.n_null_scores is None else f"{self.n_null_scores:,}"
        if self.source == "empirical":
            return f"{cut}, empirical, from {scores} null scores"
        rate = f" to resolve a {self.rate_percent()} false-positive rate" if self.false_positive_rate else ""
        if self.needed is not None:
            return f"{cut}, {self.source}: only {scores} null scores, fewer than the {self.needed:,} needed{rate}"
        return f"{cut}, {self.source}: only {scores} null scores, too few{rate}"

    def rate_percent(self) -> str:
        """The target false-positive rate as '1%'."""
        return f"{self.false_positive_rate * 100:g}%" if self.false_positive_rate else ""


@dataclass(frozen=True)
class OwnNull:
    """Thresholds set per sample on its own synthetic null panels."""

    low: float
    high: float
    panels: int  # the largest own null (synthetic panels per sample)
    empirical: int  # calls whose threshold is empirical
    calls: int

    def describe(self) -> str:
        """'p <= 0.0014-0.01 per sample, empirical for 510 of 510 calls, each from its own null of up to 1,000
        synthetic panels'."""
        cut = f"p \u2264 {self.low:.3g}" + (f"-{self.high:.3g}" if self.high > self.low else "")
        return (
            f"{cut} per sample, empirical for {self.empirical:,} of {self.calls:,} calls, each from its own null "
            f"of up to {self.panels:,} synthetic panels"
        )


def own_null(calls: pd.DataFrame) -> OwnNull | None:
    """The per-sample thresholds, when calls.tsv records own nulls (`own_null_panels`)."""
    panels = numeric_column(calls, "own_null_panels").dropna()
    thresholds = numeric_column(calls, "threshold").dropna()
    if not len(panels) or panels.max() <= 0 or not len(thresholds):
        return None
    sources = text_column(calls, "threshold_source").str.strip()
    return OwnNull(
        low=float(thresholds.min()),
        high=float(thresholds.max()),
        panels=int(panels.max()),
        empirical=int((sources == "empirical").sum()),
        calls=len(calls),
    )


def calling_threshold(ctx: Context) -> CallingThreshold:
    """The threshold of this run's calls: per sample when each has its own null, else the cohort's (the same
    for every row; the first recorded value is used)."""
    calls = ctx.tables.calls
    rate = positive_float(setting(ctx.tables.settings, "calling", "false_positive_rate"))
    min_expected = positive_float(setting(ctx.tables.settings, "calling", "empirical_min_expected"))
    needed = null_scores_needed(rate, min_expected) if rate and min_expected else None
    return CallingThreshold(
        value=_first(numeric_column(calls, "threshold")),
        source=next((s for s in text_column(calls, "threshold_source").str.strip() if s), ""),
        n_null_scores=_as_int(_first(numeric_column(calls, "n_null_scores"))),
        false_positive_rate=rate,
        needed=needed,
        own_null=own_null(calls),
    )


def _first(values: pd.Series) -> float | None:
    known = values.dropna()
    return float(known.iloc[0]) if len(known) else None


def _as_int(value: float | None) -> int | None:
    return None if value is None else int(round(value))
