"""Baseline MRD status and survival: the log-rank tests (per cohort, pooled, and stratified by cohort), Cox
models of positive vs negative baseline (pooled and per cohort) and the restricted mean survival time by
baseline status. PFS by default; the same analyses of OS take the OS columns (`OS`)."""

from __future__ import annotations

import pandas as pd

from mrdtrack.outcomes.firth import fit_cox_or_firth
from mrdtrack.outcomes.fitting import cohort_spec, cox_table_rows, note_model
from mrdtrack.outcomes.km import logrank
from mrdtrack.outcomes.logrank import stratified_logrank
from mrdtrack.outcomes.patients import MRD_TERM, Notes, cohort_subsets
from mrdtrack.outcomes.rmst import HORIZONS_MONTHS, rmst_comparison
from mrdtrack.outcomes.survival_settings import SurvivalSettings
from mrdtrack.tables import columns_of
from mrdtrack.vocabulary import DETERMINATE_STATUSES, POSITIVE

# (duration, event) columns of the two endpoints
PFS = ("pfs_months", "pfs_event")
OS = ("os_months", "os_event")
RMST_COLUMNS = columns_of("rmst")  # mrdtrack.tables.CONTRACTS


def logrank_summary(pats: pd.DataFrame, notes: Notes, endpoint: tuple[str, str] = PFS) -> dict:
    """Positive vs negative baseline: pooled (unstratified), per cohort, and stratified by cohort (the test
    beside the cohort-stratified pooled Cox model; R's survdiff with strata(cohort))."""
    duration, event = endpoint
    label = "log-rank" if endpoint == PFS else "OS log-rank"
    result: dict = {"per_cohort": {}}
    for analysis, cohort, subset in cohort_subsets(pats):
        test = logrank(subset, duration, event, "group", DETERMINATE_STATUSES)
        if test["note"]:
            notes.add(f"{label} ({cohort}): {test['note']}")
        if analysis == "overall":
            result["overall"] = test
        else:
            result["per_cohort"][cohort] = test
    result["stratified"] = stratified_logrank(
        pats, duration, event, "group", DETERMINATE_STATUSES, ["cohort"]
    )
    return result


def baseline_cox(
    pats: pd.DataFrame,
    covariates: list[str],
    settings: SurvivalSettings,
    notes: Notes,
    endpoint: tuple[str, str] = PFS,
) -> tuple[list[dict], dict]:
    """Baseline MRD (positive vs negative), unadjusted and adjusted for the covariates; pooled and per cohort.

    Models `baseline_unadjusted`, `baseline_adjusted` (PFS) or `os_baseline_unadjusted`, `os_baseline_adjusted`
    (OS); a fit that diverges (monotone likelihood) is the Firth-penalized one."""
    duration, event = endpoint
    prefix = "" if endpoint == PFS else "os_"
    determinate = pats[pats["group"].isin(DETERMINATE_STATUSES)].assign(
        mrd_positive=lambda f: (f["group"] == POSITIVE).astype(int)
    )
    models = {f"{prefix}baseline_unadjusted": [MRD_TERM]}
    if covariates:
        models[f"{prefix}baseline_adjusted"] = [MRD_TERM, *covariates]
    else:
        notes.add("no covariates configured: no adjusted Cox model")
    rows, summary = [], {}
    for model, terms in models.items():
        summary[model] = {}
        for _analysis, cohort, subset in cohort_subsets(determinate):
            spec = cohort_spec(terms, cohort, subset, settings, duration=duration, event=event)
            result = fit_cox_or_firth(subset, spec)
            note_model(notes, model, cohort, result, len(subset))
            rows += cox_table_rows(model, cohort, result)
            summary[model][cohort] = result.summary() | {"strata": spec.strata}
    return rows, summary


def rmst_table(pats: pd.DataFrame, settings: SurvivalSettings, horizons=HORIZONS_MONTHS) -> pd.DataFrame:
    """Restricted mean PFS up to each horizon by baseline status, positive minus negative and positive over
    negative, per cohort and pooled (all cohorts together, unstratified): rmst.tsv."""
    rows = []
    for _analysis, cohort, subset in cohort_subsets(pats):
        for result in rmst_comparison(
            subset, *PFS, "group", DETERMINATE_STATUSES, horizons, settings.conf_level
        ):
            rows.append({"cohort": cohort, "tau_months": result["tau"]} | _by_group(result) | result)
    return pd.DataFrame(rows).reindex(columns=RMST_COLUMNS)


def _by_group(result: dict) -> dict:
    """The per-group lists of rmst_comparison as columns: n_positive, rmst_negative_se, ..."""
    per_group = ("n", "events", "rmst", "rmst_se", "rmst_ci_low", "rmst_ci_high")
    columns = {}
    for index, group in enumerate(result["groups"]):
        for key in per_group:
            name = f"{key}_{group}" if key in ("n", "events") else key.replace("rmst", f"rmst_{group}", 1)
            columns[name] = result[key][index]
    return columns
