"""Overall survival by baseline MRD status: Kaplan-Meier curves and timepoint summaries, the log-rank tests and
the Cox models, as for progression-free survival (mrdtrack.outcomes.baseline), on the OS columns. Patients
without a usable OS time or event are left out (counted in a note)."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from mrdtrack.outcomes.baseline import OS, baseline_cox, logrank_summary
from mrdtrack.outcomes.fitting import km_outputs
from mrdtrack.outcomes.patients import Notes, usable_os
from mrdtrack.outcomes.survival_settings import SurvivalSettings


@dataclass
class OverallSurvival:
    """os_km_curves.tsv, os_km_summary.tsv, the OS rows of cox.tsv and summary.json's `os` and its Cox models."""

    km_curves: pd.DataFrame
    km_summary: pd.DataFrame
    cox_rows: list[dict]
    cox_summary: dict
    summary: dict


def overall_survival(
    pats: pd.DataFrame, covariates: list[str], settings: SurvivalSettings, notes: Notes
) -> OverallSurvival:
    """OS by baseline status: KM (groups as the PFS curves), log-rank tests and the Cox models
    `os_baseline_unadjusted` and `os_baseline_adjusted` (pooled ones stratified by cohort, Firth under
    monotone likelihood)."""
    known = usable_os(pats)
    if len(known) < len(pats):
        notes.add(f"OS: {len(pats) - len(known)} patient(s) without a usable OS time/event left out")
    curves, km_rows = km_outputs(known, settings, *OS)
    cox_rows, cox_summary = baseline_cox(known, covariates, settings, notes, endpoint=OS)
    summary = {
        "n_patients": len(known),
        "n_events": int(known["os_event"].sum()),
        "n_left_out": len(pats) - len(known),
        "logrank": logrank_summary(known, notes, endpoint=OS),
    }
    return OverallSurvival(curves, km_rows, cox_rows, cox_summary, summary)
