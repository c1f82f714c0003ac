"""The survival step's settings: config section `survival` (every key is documented in config/README.md)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from mrdtrack.outcomes.prediction import PredictionSettings
from mrdtrack.settings import StepSettings


@dataclass(frozen=True)
class SurvivalSettings(StepSettings):
    """Config section `survival`; config/README.md documents each key at length.

    Parameters
    ----------
    covariates : tuple of str
        Clinical-sheet columns the adjusted Cox models adjust for (at their baseline value) and the third
        prediction model adds.
    landmarks_months : tuple of float
        Landmark times (months from enrollment): status at the landmark vs PFS counted from it.
    landmark_closest_window_days : float or None
        The second landmark rule: the determinate sample closest to the landmark within this many days either
        side (it may be drawn after the landmark); None turns the rule off.
    timepoints_months : tuple of float
        Times at which km_summary.tsv reports Kaplan-Meier survival, its CIs and the number at risk.
    conf_level : float
        Confidence level of every KM, Cox and endpoint interval.
    stratify_by_cohort : bool
        Whether pooled (all-cohort) Cox models are stratified by cohort.
    ph_transform : str
        Time transform of the proportional-hazards test, as R's `cox.zph`: `km`, `identity`, `rank` or `log`.
    curve_ci : str
        CI transform of the curves in km_curves.tsv: `log` or `log-log`.
    endpoint_ci : str
        CI transform of the KM trial endpoints in endpoints.tsv: `log` or `log-log`.
    pfs_endpoint_months : float
        The primary endpoint's time: PFS at this many months per cohort, also the horizon of the Simon design's
        binary outcome.
    os_endpoint_months : float
        OS is reported at this many months per cohort.
    design : str
        The Simon two-stage design that makes the decision: `optimal` or `minimax` (both are tabulated).
    design_cohort : str
        The cohort the Simon design applies to.
    p0, p1 : float
        The Simon design's uninteresting PFS rate at the horizon (H0: rate <= p0) and the rate at which it has
        the requested power.
    alpha : float
        The Simon design's one-sided type I error.
    power : float
        The Simon design's power at `p1`.
    design_nmax : int
        Largest total sample size the Simon design search considers.
    design_censored : str
        Patients censored before the horizon without progression: `exclude` (not evaluable) or `failure`.
    prediction : PredictionSettings
        Section `survival: prediction:`.
    """

    SECTION: ClassVar[str] = "survival"

    covariates: tuple[str, ...] = ()
    landmarks_months: tuple[float, ...] = (3.0, 6.0, 12.0)
    landmark_closest_window_days: float | None = 45.0
    timepoints_months: tuple[float, ...] = (6.0, 12.0, 24.0)
    conf_level: float = 0.95
    stratify_by_cohort: bool = True
    ph_transform: str = "km"
    curve_ci: str = "log-log"
    endpoint_ci: str = "log-log"
    pfs_endpoint_months: float = 12.0
    os_endpoint_months: float = 36.0
    design: str = "optimal"
    design_cohort: str = "stop"
    p0: float = 0.50
    p1: float = 0.68
    alpha: float = 0.10
    power: float = 0.80
    design_nmax: int = 100
    design_censored: str = "exclude"
    prediction: PredictionSettings = field(default_factory=PredictionSettings)

    def check_combination(self) -> list[str]:
        return [] if self.p0 < self.p1 else [f"p0 ({self.p0}) must be below p1 ({self.p1})"]
