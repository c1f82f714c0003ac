"""The survival step's settings: config section `survival` (every key is documented in config/README.md)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from mrdtrack.outcomes.prediction import PredictionSettings
from mrdtrack.settings import StepSettings


@dataclass(frozen=True)
class SurvivalSettings(StepSettings):
    """Config section `survival`; every key is documented in config/README.md."""

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
