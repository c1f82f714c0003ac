"""Baseline MRD status and progression-free survival: the log-rank test and Cox models of positive vs
negative baseline, pooled and per cohort."""

from __future__ import annotations

import pandas as pd

from mrdtrack.outcomes.cox import fit_cox
from mrdtrack.outcomes.fitting import cohort_spec, cox_table_rows, note_model
from mrdtrack.outcomes.km import logrank
from mrdtrack.outcomes.patients import MRD_TERM, Notes, cohort_subsets
from mrdtrack.outcomes.survival_settings import SurvivalSettings
from mrdtrack.vocabulary import DETERMINATE_STATUSES, POSITIVE


def logrank_summary(pats: pd.DataFrame, notes: Notes) -> dict:
    """Positive vs negative baseline: pooled (unstratified) and per cohort."""
    result: dict = {"per_cohort": {}}
    for analysis, cohort, subset in cohort_subsets(pats):
        test = logrank(subset, "pfs_months", "pfs_event", "group", DETERMINATE_STATUSES)
        if test["note"]:
            notes.add(f"log-rank ({cohort}): {test['note']}")
        if analysis == "overall":
            result["overall"] = test
        else:
            result["per_cohort"][cohort] = test
    return result


def baseline_cox(
    pats: pd.DataFrame, covariates: list[str], settings: SurvivalSettings, notes: Notes
) -> tuple[list[dict], dict]:
    """Baseline MRD (positive vs negative), unadjusted and adjusted for the covariates; pooled and per cohort."""
    determinate = pats[pats["group"].isin(DETERMINATE_STATUSES)].assign(
        mrd_positive=lambda f: (f["group"] == POSITIVE).astype(int)
    )
    models = {"baseline_unadjusted": [MRD_TERM]}
    if covariates:
        models["baseline_adjusted"] = [MRD_TERM, *covariates]
    else:
        notes.add("no covariates configured: no adjusted Cox model")
    rows, summary = [], {}
    for model, terms in models.items():
        summary[model] = {}
        for _analysis, cohort, subset in cohort_subsets(determinate):
            spec = cohort_spec(terms, cohort, subset, settings, duration="pfs_months", event="pfs_event")
            result = fit_cox(subset, spec)
            note_model(notes, model, cohort, result, len(subset))
            rows += cox_table_rows(model, cohort, result)
            summary[model][cohort] = result.summary() | {"strata": spec.strata}
    return rows, summary
