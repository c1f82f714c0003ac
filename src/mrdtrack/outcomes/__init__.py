"""Stage 4, outcomes (workflow/rules/clinical.smk): calls joined with clinical follow-up (`clinical`), then the
survival step (`survival`): Kaplan-Meier and Cox models, landmark and time-varying analyses, trial endpoints,
the Simon two-stage design (`simon`) and prediction."""

from mrdtrack.outcomes.clinical import ClinicalSettings, ClinicalTables, run_clinical
from mrdtrack.outcomes.prediction import PredictionSettings
from mrdtrack.outcomes.survival import SURVIVAL_TABLES, SurvivalResults, run_survival
from mrdtrack.outcomes.survival_settings import SurvivalSettings

__all__ = [
    "ClinicalSettings",
    "ClinicalTables",
    "PredictionSettings",
    "SURVIVAL_TABLES",
    "SurvivalResults",
    "SurvivalSettings",
    "run_clinical",
    "run_survival",
]
